//! The shared profile files (`~/.aws/credentials`, `~/.aws/config`) and what a profile
//! says about credentials: static keys, a web identity, a role to assume from another
//! profile's keys or from a named credential source; `credential_process` and SSO are
//! refused with a clear message.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use secrecy::SecretString;

use super::{AwsCredentials, Provider, RoleSource, WebIdentity};
use crate::fetchers::env::EnvSource;

/// A profile file larger than this is not read (a profile file is a few KiB).
const MAX_FILE: u64 = 1024 * 1024;

/// How many `source_profile` hops a role may take (a loop ends earlier, by name).
const MAX_HOPS: usize = 8;

/// The profiles of both files, merged: a key of the credentials file wins over the same
/// key of the config file.
#[derive(Default)]
pub(super) struct Profiles {
    profiles: HashMap<String, HashMap<String, String>>,
    /// The files read, for messages (`~/.aws/credentials`, ...): paths, never contents.
    pub(super) files: Vec<String>,
    /// Files that exist and could not be read (named in the "nothing found" message).
    pub(super) unreadable: Vec<String>,
}

/// The profile in use: `AWS_PROFILE`, then `AWS_DEFAULT_PROFILE`, else `default`; and
/// whether it was named explicitly (a named profile that does not exist is an error, the
/// absent `default` is not).
pub(super) fn profile_name(env: &EnvSource) -> (String, bool) {
    ["AWS_PROFILE", "AWS_DEFAULT_PROFILE"]
        .iter()
        .filter_map(|n| env.get(n))
        .map(|v| v.trim().to_owned())
        .find(|v| !v.is_empty())
        .map_or_else(|| ("default".to_owned(), false), |v| (v, true))
}

fn home(env: &EnvSource) -> Option<PathBuf> {
    ["HOME", "USERPROFILE"]
        .iter()
        .filter_map(|n| env.get(n))
        .find(|v| !v.trim().is_empty())
        .map(PathBuf::from)
}

/// `value` with a leading `~/` replaced by the home directory.
fn expand(value: &str, env: &EnvSource) -> Option<PathBuf> {
    let value = value.trim();
    match value
        .strip_prefix("~/")
        .or_else(|| value.strip_prefix("~\\"))
    {
        Some(rest) => home(env).map(|h| h.join(rest)),
        None if value == "~" => home(env),
        None => Some(PathBuf::from(value)),
    }
}

impl Profiles {
    /// Reads `AWS_CONFIG_FILE` (default `~/.aws/config`) and `AWS_SHARED_CREDENTIALS_FILE`
    /// (default `~/.aws/credentials`). Absent files are simply empty.
    pub(super) fn load(env: &EnvSource) -> Self {
        let mut out = Profiles::default();
        let path = |var: &str, default: &str| match env.get(var).filter(|v| !v.trim().is_empty()) {
            Some(v) => expand(&v, env),
            None => home(env).map(|h| h.join(".aws").join(default)),
        };
        if let Some(config) = path("AWS_CONFIG_FILE", "config") {
            out.read(&config, true);
        }
        if let Some(credentials) = path("AWS_SHARED_CREDENTIALS_FILE", "credentials") {
            out.read(&credentials, false);
        }
        out
    }

    fn read(&mut self, path: &Path, is_config: bool) {
        let shown = path.display().to_string();
        let text = match read_bounded(path) {
            Ok(Some(text)) => text,
            Ok(None) => return,
            Err(why) => {
                tracing::warn!(file = %shown, "cannot read the AWS profile file: {why}");
                self.unreadable.push(format!("{shown} ({why})"));
                return;
            }
        };
        self.files.push(shown);
        for (section, keys) in parse(&text) {
            let name = if is_config {
                match section.strip_prefix("profile ") {
                    Some(name) => name.trim().to_owned(),
                    None if section == "default" => section,
                    // `[sso-session x]`, `[services x]`: not profiles.
                    None => continue,
                }
            } else {
                section
            };
            let entry = self.profiles.entry(name).or_default();
            for (k, v) in keys {
                if is_config {
                    // The credentials file (read second) wins: keep what is there.
                    entry.entry(k).or_insert(v);
                } else {
                    entry.insert(k, v);
                }
            }
        }
    }

    /// The value of `key` in profile `name`.
    pub(super) fn get(&self, name: &str, key: &str) -> Option<&str> {
        self.profiles
            .get(name)?
            .get(key)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    pub(super) fn has(&self, name: &str) -> bool {
        self.profiles.contains_key(name)
    }

    /// What profile `name` says about credentials: `Ok(None)` when it says nothing
    /// (the chain goes on), an error when it says something this crate cannot use.
    pub(super) fn provider(&self, name: &str, env: &EnvSource) -> Result<Option<Provider>, String> {
        if !self.has(name) {
            return Ok(None);
        }
        self.resolve(name, env, &mut Vec::new())
            .map(Some)
            .or_else(|e| match e {
                Resolve::Nothing => Ok(None),
                Resolve::Error(why) => Err(why),
            })
    }

    fn statics(&self, name: &str) -> Option<AwsCredentials> {
        let id = self.get(name, "aws_access_key_id")?;
        let secret = self.get(name, "aws_secret_access_key")?;
        Some(AwsCredentials {
            access_key_id: id.to_owned(),
            secret_access_key: SecretString::from(secret.to_owned()),
            session_token: self
                .get(name, "aws_session_token")
                .map(|t| SecretString::from(t.to_owned())),
            expires_at: None,
        })
    }

    fn resolve(
        &self,
        name: &str,
        env: &EnvSource,
        seen: &mut Vec<String>,
    ) -> Result<Provider, Resolve> {
        let err = |why: String| Resolve::Error(format!("profile `{name}`: {why}"));
        if !self.has(name) {
            return Err(err(
                "no such profile in the AWS config or credentials file".to_owned()
            ));
        }
        if seen.iter().any(|s| s == name) {
            return Err(err(format!(
                "source_profile loop ({} -> {name})",
                seen.join(" -> ")
            )));
        }
        if seen.len() >= MAX_HOPS {
            return Err(err(format!("more than {MAX_HOPS} source_profile hops")));
        }
        seen.push(name.to_owned());
        // A source profile (not the first) with static keys uses them, as the SDKs do.
        if seen.len() > 1
            && let Some(keys) = self.statics(name)
        {
            return Ok(Provider::Static {
                credentials: keys,
                from: format!("profile `{name}`"),
            });
        }
        if let Some(role_arn) = self.get(name, "role_arn") {
            let session_name = self.get(name, "role_session_name").map(str::to_owned);
            if let Some(file) = self.get(name, "web_identity_token_file") {
                return Ok(Provider::WebIdentity(WebIdentity {
                    token_file: expand(file, env).unwrap_or_else(|| PathBuf::from(file)),
                    role_arn: role_arn.to_owned(),
                    session_name,
                }));
            }
            let source = if let Some(source) = self.get(name, "source_profile") {
                if source == name {
                    // A profile that is its own source: its static keys.
                    match self.statics(name) {
                        Some(keys) => Provider::Static {
                            credentials: keys,
                            from: format!("profile `{name}`"),
                        },
                        None => {
                            return Err(err(
                                "source_profile names itself but it has no aws_access_key_id/aws_secret_access_key".to_owned(),
                            ));
                        }
                    }
                } else {
                    match self.resolve(source, env, seen) {
                        Ok(p) => p,
                        Err(Resolve::Nothing) => {
                            return Err(err(format!(
                                "its source_profile `{source}` has no credentials"
                            )));
                        }
                        Err(e) => return Err(e),
                    }
                }
            } else if let Some(source) = self.get(name, "credential_source") {
                match source {
                    "Environment" => match super::env_keys(env) {
                        Ok(Some(keys)) => Provider::Static {
                            credentials: keys,
                            from: "the environment (credential_source = Environment)".to_owned(),
                        },
                        Ok(None) => {
                            return Err(err(
                                "credential_source = Environment but AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY are not set".to_owned(),
                            ));
                        }
                        Err(why) => return Err(err(why)),
                    },
                    "Ec2InstanceMetadata" => Provider::Imds(super::http::imds_endpoint(env)),
                    "EcsContainer" => match super::http::container(env) {
                        Some(Ok(c)) => Provider::Container(c),
                        Some(Err(why)) => return Err(err(why)),
                        None => {
                            return Err(err(
                                "credential_source = EcsContainer but neither AWS_CONTAINER_CREDENTIALS_RELATIVE_URI nor AWS_CONTAINER_CREDENTIALS_FULL_URI is set".to_owned(),
                            ));
                        }
                    },
                    other => {
                        return Err(err(format!(
                            "credential_source `{other}` is not one of Environment, Ec2InstanceMetadata, EcsContainer"
                        )));
                    }
                }
            } else {
                return Err(err(
                    "role_arn needs source_profile, credential_source or web_identity_token_file"
                        .to_owned(),
                ));
            };
            return Ok(Provider::AssumeRole(RoleSource {
                role_arn: role_arn.to_owned(),
                session_name,
                external_id: self.get(name, "external_id").map(str::to_owned),
                duration_seconds: self.get(name, "duration_seconds").map(str::to_owned),
                source: Box::new(source),
            }));
        }
        if let Some(keys) = self.statics(name) {
            return Ok(Provider::Static {
                credentials: keys,
                from: format!("profile `{name}`"),
            });
        }
        if self.get(name, "aws_access_key_id").is_some() {
            return Err(err(
                "aws_access_key_id without aws_secret_access_key".to_owned()
            ));
        }
        if self.get(name, "credential_process").is_some() {
            return Err(err(
                "credential_process is not supported by component_model: export the keys it prints (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN) or use another profile".to_owned(),
            ));
        }
        if [
            "sso_session",
            "sso_start_url",
            "sso_account_id",
            "sso_role_name",
        ]
        .iter()
        .any(|k| self.get(name, k).is_some())
        {
            return Err(err(
                "AWS IAM Identity Center (SSO) profiles are not supported by component_model: run `aws configure export-credentials --profile <name> --format env` and export what it prints".to_owned(),
            ));
        }
        Err(Resolve::Nothing)
    }
}

enum Resolve {
    /// The profile has no credential settings.
    Nothing,
    Error(String),
}

/// The file's text, `None` when it does not exist; an error when it is too large or not
/// readable (the message names the reason, never any content).
fn read_bounded(path: &Path) -> Result<Option<String>, String> {
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.to_string()),
    };
    let mut bytes = Vec::new();
    file.take(MAX_FILE + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| e.to_string())?;
    if bytes.len() as u64 > MAX_FILE {
        return Err(format!("larger than {}", crate::error::bytes(MAX_FILE)));
    }
    String::from_utf8(bytes)
        .map(Some)
        .map_err(|_| "not UTF-8".to_owned())
}

/// The sections of an INI file as the AWS CLI reads it: `[section]` headers, `key =
/// value` lines (keys lower-cased), full-line `#`/`;` comments, indented lines under a key
/// with no value (nested settings such as `s3 =`) skipped.
fn parse(text: &str) -> Vec<(String, HashMap<String, String>)> {
    let mut out: Vec<(String, HashMap<String, String>)> = Vec::new();
    for line in text.lines() {
        let indented = line.starts_with([' ', '\t']);
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(section) = line.strip_prefix('[') {
            let section = section.split(']').next().unwrap_or_default();
            out.push((
                section.split_whitespace().collect::<Vec<_>>().join(" "),
                HashMap::new(),
            ));
            continue;
        }
        if indented {
            continue;
        }
        let (Some((_, keys)), Some((k, v))) = (out.last_mut(), line.split_once('=')) else {
            continue;
        };
        keys.insert(k.trim().to_ascii_lowercase(), v.trim().to_owned());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sections_keys_comments_and_nested_settings() {
        let parsed = parse(
            "# top\n[default]\naws_access_key_id = AKIA1\n; c\nAWS_Secret_Access_Key=s=1\ns3 =\n  max_concurrent_requests = 5\n[profile  dev ]\nregion = eu-west-1\n",
        );
        assert_eq!(parsed.len(), 2);
        assert_eq!(parsed[0].0, "default");
        assert_eq!(parsed[0].1["aws_access_key_id"], "AKIA1");
        assert_eq!(parsed[0].1["aws_secret_access_key"], "s=1");
        assert!(!parsed[0].1.contains_key("max_concurrent_requests"));
        assert_eq!(parsed[1].0, "profile dev");
        assert_eq!(parsed[1].1["region"], "eu-west-1");
    }

    fn profiles(config: &str, credentials: &str) -> Profiles {
        let mut p = Profiles::default();
        for (text, is_config) in [(config, true), (credentials, false)] {
            let dir = std::env::temp_dir().join(format!(
                "cm-aws-profile-{}-{}",
                std::process::id(),
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos()
            ));
            std::fs::create_dir_all(&dir).unwrap();
            let f = dir.join("f");
            std::fs::write(&f, text).unwrap();
            p.read(&f, is_config);
            std::fs::remove_dir_all(&dir).unwrap();
        }
        p
    }

    #[test]
    fn credentials_file_wins_and_config_needs_the_profile_prefix() {
        let p = profiles(
            "[profile dev]\naws_access_key_id = FROMCONFIG\nregion = eu-west-1\n[dev2]\naws_access_key_id = X\n[sso-session s]\nsso_region = x\n",
            "[dev]\naws_access_key_id = FROMCREDS\naws_secret_access_key = s\n",
        );
        assert_eq!(p.get("dev", "aws_access_key_id"), Some("FROMCREDS"));
        assert_eq!(p.get("dev", "region"), Some("eu-west-1"));
        assert!(
            !p.has("dev2"),
            "a config section without `profile ` is not a profile"
        );
        assert!(!p.has("sso-session s"));
    }

    #[test]
    fn resolves_roles_sources_and_refuses_process_and_sso() {
        let env = EnvSource::from_map([("HOME", "/home/u")]);
        let p = profiles(
            "[profile role]\nrole_arn = arn:aws:iam::1:role/r\nsource_profile = base\nexternal_id = x\n\
             [profile base]\naws_access_key_id = AKIABASE\naws_secret_access_key = s\nrole_arn = ignored\nsource_profile = nowhere\n\
             [profile wi]\nrole_arn = arn:aws:iam::1:role/w\nweb_identity_token_file = ~/t\n\
             [profile proc]\ncredential_process = /bin/echo\n\
             [profile sso]\nsso_session = s\n\
             [profile loop1]\nrole_arn = a\nsource_profile = loop2\n\
             [profile loop2]\nrole_arn = b\nsource_profile = loop1\n\
             [profile empty]\nregion = x\n",
            "",
        );
        match p.provider("role", &env) {
            Ok(Some(Provider::AssumeRole(r))) => {
                assert_eq!(r.role_arn, "arn:aws:iam::1:role/r");
                assert_eq!(r.external_id.as_deref(), Some("x"));
                assert!(
                    matches!(&*r.source, Provider::Static { credentials, .. } if credentials.access_key_id == "AKIABASE")
                );
            }
            _ => panic!("role"),
        }
        match p.provider("wi", &env) {
            Ok(Some(Provider::WebIdentity(w))) => {
                assert_eq!(w.token_file, PathBuf::from("/home/u/t"))
            }
            _ => panic!("wi"),
        }
        let e = p.provider("proc", &env).err().unwrap();
        assert!(e.contains("credential_process is not supported"), "{e}");
        let e = p.provider("sso", &env).err().unwrap();
        assert!(e.contains("SSO"), "{e}");
        let e = p.provider("loop1", &env).err().unwrap();
        assert!(e.contains("loop"), "{e}");
        assert!(matches!(p.provider("empty", &env), Ok(None)));
        assert!(matches!(p.provider("absent", &env), Ok(None)));
    }
}
