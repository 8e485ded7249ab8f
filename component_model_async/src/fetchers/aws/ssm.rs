//! [`AwsSsmSource`]: AWS Systems Manager Parameter Store (see the module above).

use std::fmt;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use futures::StreamExt;
use serde::Deserialize;

use super::client::{self, AwsClient, SSM};
use super::credentials::AwsCredentials;
use super::secrets::DEFAULT_AWS_WATCH;
use crate::convert::subtree::{self, Subtree};
use crate::error::{ErrorKind, SourceError};
use crate::fetchers::env::EnvSource;
use crate::source::{
    Access, Change, Changes, FetchContext, FetchRequest, Preflighting, Probe, RawValue, Revision,
    Source,
};
use crate::source_support::coalesce;

/// The most names one `GetParameters` takes (the API's limit).
pub(crate) const PARAMETERS_PER_CALL: usize = 10;

/// The most parameters one page of `GetParametersByPath` answers (the API's limit).
const PAGE: usize = 10;

/// AWS Systems Manager Parameter Store: `fetch_from = "aws_ssm", key = "/app/port"`
/// reads a parameter (a `SecureString` decrypted; a `StringList` as its text), `prefix =
/// "/app/"` every parameter under a path into a map or struct.
///
/// Every value is secret. Up to 10 parameters of one fetch are read
/// with one `GetParameters`; a prefix is `GetParametersByPath` (recursive, 10 a page),
/// bounded by `max_keys` (default 10,000) and the field's `max_size`: more is
/// [`ErrorKind::TooLarge`], never a truncated map.
///
/// ```
/// use component_model_async::{AwsSsmSource, Source};
///
/// let ssm = AwsSsmSource::new("eu-west-1").with_endpoint("http://127.0.0.1:5000");
/// // Then where the credential chain looks (here: the process environment's).
/// assert!(ssm
///     .location()
///     .unwrap()
///     .starts_with("AWS SSM Parameter Store eu-west-1 at http://127.0.0.1:5000 (credentials: "));
/// assert!(ssm.is_sensitive());
/// ```
#[derive(Clone)]
pub struct AwsSsmSource {
    client: AwsClient,
    watch_every: Duration,
    walk_timeout: Duration,
}

/// How long one `GetParametersByPath` walk (all its pages) may take by default.
pub(crate) const DEFAULT_WALK_TIMEOUT: Duration = Duration::from_secs(60);

impl fmt::Debug for AwsSsmSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AwsSsmSource")
            .field("client", &self.client)
            .field("watch_every", &self.watch_every)
            .field("walk_timeout", &self.walk_timeout)
            .finish()
    }
}

/// One parameter of `GetParameters` / `GetParametersByPath` (never printed: no `Debug`).
#[derive(Deserialize, Clone)]
struct Parameter {
    #[serde(rename = "Name", default)]
    name: String,
    #[serde(rename = "ARN", default)]
    arn: Option<String>,
    #[serde(rename = "Selector", default)]
    selector: Option<String>,
    #[serde(rename = "Type", default)]
    kind: Option<String>,
    #[serde(rename = "Value", default)]
    value: Option<String>,
    #[serde(rename = "Version", default)]
    version: Option<u64>,
}

#[derive(Deserialize)]
struct Parameters {
    #[serde(rename = "Parameters", default)]
    parameters: Vec<Parameter>,
    #[serde(rename = "InvalidParameters", default)]
    invalid: Vec<String>,
    #[serde(rename = "NextToken", default)]
    next_token: Option<String>,
}

/// What one request reads.
#[derive(Clone, Copy)]
enum Op<'a> {
    Name(&'a str),
    Prefix(&'a str),
}

impl<'a> Op<'a> {
    fn of(request: &'a FetchRequest) -> Result<Self, SourceError> {
        if let Some(prefix) = request.param(subtree::PREFIX) {
            // GetParametersByPath answers nothing for a path without its leading `/`:
            // a silently empty map.
            if !prefix.trim_start().starts_with('/') {
                return Err(SourceError::new(ErrorKind::Config).with_message(format!(
                    "the prefix `{prefix}` does not start with `/` (a parameter path does: `/{}`)",
                    prefix.trim()
                )));
            }
            return Ok(Op::Prefix(prefix));
        }
        match request.key().map(str::trim).filter(|k| !k.is_empty()) {
            Some(key) => Ok(Op::Name(key)),
            None => Err(SourceError::new(ErrorKind::Config)
                .with_message("the field names no `key` (the parameter's name)")),
        }
    }
}

/// The path `GetParametersByPath` takes for `prefix`: no trailing `/` (but `/` itself).
fn path_of(prefix: &str) -> String {
    let trimmed = prefix.trim().trim_end_matches('/');
    if trimmed.is_empty() {
        "/".to_owned()
    } else {
        trimmed.to_owned()
    }
}

/// `name` (or ARN) and its selector: `/app/port:3` is `("/app/port", Some("3"))`, a
/// label too (`/app/port:prod`); an ARN's own colons are not one.
fn split_selector(key: &str) -> (&str, Option<&str>) {
    match key.rsplit_once(':') {
        Some((base, sel))
            if !sel.contains('/')
                && !sel.is_empty()
                && (base.contains('/') || !base.starts_with("arn:")) =>
        {
            (base, Some(sel))
        }
        _ => (key, None),
    }
}

/// The parameter a key names, alike for its name and its ARN (`app/port` for
/// `/app/port`, `arn:...:parameter/app/port` and `/app/port:3`): two keys of one
/// parameter never share a `GetParameters`, whose answers may not say which version
/// answers which.
fn parameter_of(key: &str) -> &str {
    let (base, _) = split_selector(key);
    let name = match base.strip_prefix("arn:") {
        Some(arn) => arn.split_once(":parameter").map_or(base, |(_, n)| n),
        None => base,
    };
    name.trim_start_matches('/')
}

/// Whether `p` is the parameter `key` asks for: its name or ARN, and the same selector:
/// a plain name only an answer without one; `name:3` the answer with `Selector` `:3`
/// (or, from a server that sends no `Selector`, `Version` 3).
fn is_named(p: &Parameter, key: &str) -> bool {
    let (base, sel) = split_selector(key);
    if p.name != base && p.arn.as_deref() != Some(base) {
        return false;
    }
    let answered = p
        .selector
        .as_deref()
        .map(|s| s.trim_start_matches(':'))
        .filter(|s| !s.is_empty());
    match (sel, answered) {
        (None, None) => true,
        (None, Some(_)) => false,
        (Some(s), Some(a)) => s == a,
        (Some(s), None) => match s.parse::<u64>() {
            Ok(v) => p.version == Some(v),
            // A label: one key of a parameter per call, so this answer is its.
            Err(_) => true,
        },
    }
}

/// `names` in calls of at most [`PARAMETERS_PER_CALL`], no two keys of one parameter
/// in one call (25 distinct parameters are still 3 calls).
fn calls_of<'a>(names: &[&'a str]) -> Vec<Vec<&'a str>> {
    let mut calls: Vec<Vec<&'a str>> = Vec::new();
    for name in names {
        let of = parameter_of(name);
        match calls
            .iter_mut()
            .find(|c| c.len() < PARAMETERS_PER_CALL && !c.iter().any(|n| parameter_of(n) == of))
        {
            Some(call) => call.push(name),
            None => calls.push(vec![name]),
        }
    }
    calls
}

/// A digest of the `(name, version)` pairs under a prefix: any update, deletion or
/// creation changes it (the newest version and the count alone miss an older
/// parameter's update, or one deleted as another is created). Two FNV-1a 64 hashes.
fn digest_of(mut pairs: Vec<(String, u64)>) -> Vec<u8> {
    pairs.sort();
    let mut a: u64 = 0xcbf2_9ce4_8422_2325;
    let mut b: u64 = 0x6c62_272e_07bb_0142;
    let mut eat = |bytes: &[u8]| {
        for &x in bytes {
            a = (a ^ u64::from(x)).wrapping_mul(0x0000_0100_0000_01b3);
            b = (b ^ u64::from(x))
                .wrapping_mul(0x0000_0100_0000_01b3)
                .rotate_left(5);
        }
    };
    for (name, version) in &pairs {
        eat(name.as_bytes());
        eat(&[0]);
        eat(&version.to_be_bytes());
    }
    let mut out = a.to_be_bytes().to_vec();
    out.extend_from_slice(&b.to_be_bytes());
    out
}

/// Whether a refusal of a whole multi-name `GetParameters` is worth asking each name
/// alone: one denied or rejected name fails the call for all.
fn splits(e: &SourceError) -> bool {
    let m = e.message().unwrap_or("");
    m.contains("refused GetParameters ")
        && [
            "AccessDeniedException",
            "AccessDenied",
            "ValidationException",
        ]
        .iter()
        .any(|c| m.contains(&format!(" {c}:")))
}

fn decode_error(what: &str, e: &serde_json::Error) -> SourceError {
    SourceError::new(ErrorKind::Decode).with_message(format!(
        "AWS SSM's answer for {what} is not one: {}",
        crate::fetchers::transport::json_error(e)
    ))
}

/// An answer and the revision it was read at.
type Answer = (Result<RawValue, SourceError>, Option<Revision>);

impl AwsSsmSource {
    /// Parameter Store in `region`, at its public endpoint
    /// (`https://ssm.<region>.amazonaws.com`), with the standard credential chain of the
    /// process environment.
    pub fn new(region: impl AsRef<str>) -> Self {
        AwsSsmSource {
            watch_every: DEFAULT_AWS_WATCH,
            walk_timeout: DEFAULT_WALK_TIMEOUT,
            client: AwsClient::new(&SSM, region.as_ref()),
        }
    }

    /// The source the process environment names (see
    /// [`from_env_source`](Self::from_env_source)).
    pub fn from_env() -> Option<Self> {
        Self::from_env_source(&EnvSource::process())
    }

    /// The source `env` names: the region from `AWS_REGION` / `AWS_DEFAULT_REGION`
    /// (`None` without one), the endpoint from `AWS_ENDPOINT_URL_SSM` or
    /// `AWS_ENDPOINT_URL`, the credentials from the standard chain.
    ///
    /// ```
    /// use component_model_async::{AwsSsmSource, EnvSource, Source};
    ///
    /// let env = EnvSource::from_map([
    ///     ("AWS_DEFAULT_REGION", "eu-central-1"),
    ///     ("AWS_ENDPOINT_URL_SSM", "http://localhost:4566"),
    /// ]);
    /// let ssm = AwsSsmSource::from_env_source(&env).unwrap();
    /// assert!(ssm
    ///     .location()
    ///     .unwrap()
    ///     .starts_with("AWS SSM Parameter Store eu-central-1 at http://localhost:4566 (credentials: "));
    /// assert!(AwsSsmSource::from_env_source(&EnvSource::from_map([("X", "1")])).is_none());
    /// ```
    pub fn from_env_source(env: &EnvSource) -> Option<Self> {
        Some(AwsSsmSource {
            watch_every: DEFAULT_AWS_WATCH,
            walk_timeout: DEFAULT_WALK_TIMEOUT,
            client: AwsClient::from_env(&SSM, env)?,
        })
    }

    /// Sends requests to `url` (LocalStack, moto, a VPC endpoint) instead of the public
    /// endpoint; `host:port` is `https`.
    #[must_use]
    pub fn with_endpoint(mut self, url: impl AsRef<str>) -> Self {
        self.client.set_endpoint(url.as_ref());
        self
    }

    /// Signs with these credentials instead of the standard chain's. The secret access key
    /// and the session token never appear in `Debug`, errors or logs.
    #[must_use]
    pub fn with_credentials(
        mut self,
        access_key_id: impl Into<String>,
        secret_access_key: impl Into<String>,
        session_token: Option<String>,
    ) -> Self {
        self.client.set_credentials(AwsCredentials {
            access_key_id: access_key_id.into(),
            secret_access_key: secrecy::SecretString::from(secret_access_key.into()),
            session_token: session_token.map(secrecy::SecretString::from),
            expires_at: None,
        });
        self
    }

    /// Limits each request (and finding credentials) to `timeout` (default 10 s).
    #[must_use]
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.client.set_timeout(timeout);
        self
    }

    /// Connects with these TLS settings (a custom CA, a client certificate).
    #[must_use]
    pub fn with_tls(mut self, tls: crate::TlsConfig) -> Self {
        self.client.set_tls(tls);
        self
    }

    /// Bounds one `prefix` walk, all its `GetParametersByPath` pages together (default
    /// 60 s; each page is bounded by the timeout too). A walk is 10 parameters a call,
    /// one call after another: 10,000 parameters are about 1,000 calls in a row, at every
    /// fetch and every watch poll. A walk past it fails with `ErrorKind::Timeout`.
    ///
    /// ```
    /// use std::time::Duration;
    /// use component_model_async::AwsSsmSource;
    ///
    /// let ssm = AwsSsmSource::new("eu-west-1").with_walk_timeout(Duration::from_secs(120));
    /// assert!(format!("{ssm:?}").contains("walk_timeout: 120s"));
    /// ```
    #[must_use]
    pub fn with_walk_timeout(mut self, timeout: Duration) -> Self {
        self.walk_timeout = timeout;
        self
    }

    /// Polls a watch every `every` when its fields name no `watch_interval` (default
    /// 30 s: every call is billed).
    #[must_use]
    pub fn with_watch_interval(mut self, every: Duration) -> Self {
        self.watch_every = every;
        self
    }

    /// Reads response bodies of at most `bytes` (default 16 MiB): a larger one fails its
    /// fields with [`ErrorKind::TooLarge`].
    #[must_use]
    pub fn with_max_body(mut self, bytes: usize) -> Self {
        self.client.set_max_body(bytes);
        self
    }

    /// The region requests are signed for.
    pub fn region(&self) -> &str {
        self.client.region()
    }

    /// The endpoint requests go to.
    pub fn endpoint(&self) -> &str {
        self.client.endpoint()
    }

    /// ONE `GetParameters` of at most 10 distinct names (one each when the call is
    /// refused as a whole); per name its parameter (with its value when `decrypt`... and
    /// always its metadata) or the error.
    fn get_parameters<'s>(
        &'s self,
        names: &'s [&'s str],
        decrypt: bool,
    ) -> futures::future::BoxFuture<'s, Vec<Result<Parameter, SourceError>>> {
        Box::pin(self.get_parameters_inner(names, decrypt))
    }

    async fn get_parameters_inner(
        &self,
        names: &[&str],
        decrypt: bool,
    ) -> Vec<Result<Parameter, SourceError>> {
        let what = match names {
            [one] => format!("parameter `{one}`"),
            _ => format!("{} parameters ({}, ...)", names.len(), names[0]),
        };
        let body = serde_json::json!({ "Names": names, "WithDecryption": decrypt });
        let answer = match self.client.call("GetParameters", &body, &what).await {
            Ok(bytes) => {
                serde_json::from_slice::<Parameters>(&bytes).map_err(|e| decode_error(&what, &e))
            }
            Err(e) => Err(e),
        };
        let answer = match answer {
            Ok(a) => a,
            // One denied or rejected name fails the call for all: each alone, so the
            // error lands on its own key.
            Err(e) if names.len() > 1 && splits(&e) => {
                return futures::future::join_all(
                    names
                        .iter()
                        .map(|n| async move { self.get_parameters(&[n], decrypt).await }),
                )
                .await
                .into_iter()
                .flatten()
                .collect();
            }
            Err(e) => return names.iter().map(|_| Err(e.clone())).collect(),
        };
        names
            .iter()
            .map(|name| {
                // Not taken: one parameter asked by its name and its ARN is answered to both.
                if let Some(p) = answer.parameters.iter().find(|p| is_named(p, name)) {
                    return Ok(p.clone());
                }
                if answer.invalid.iter().any(|n| n == name) {
                    return Err(SourceError::not_found().with_message(format!(
                        "AWS SSM ({}) has no parameter `{name}` (InvalidParameters)",
                        self.client.region()
                    )));
                }
                Err(SourceError::new(ErrorKind::Decode).with_message(format!(
                    "AWS SSM's GetParameters answer has neither the parameter `{name}` nor says it is invalid"
                )))
            })
            .collect()
    }

    /// Every parameter under `prefix` (`GetParametersByPath`, recursive, its pages
    /// followed), into `tree`; stops past `max_keys` or `max_size`, and at the walk's
    /// deadline (`with_walk_timeout`). The count and a digest of the names and versions.
    async fn by_path(
        &self,
        prefix: &str,
        tree: Option<&mut Subtree<'_>>,
        max_keys: usize,
        decrypt: bool,
    ) -> Result<(usize, Vec<u8>), SourceError> {
        match tokio::time::timeout(
            self.walk_timeout,
            self.walk(prefix, tree, max_keys, decrypt),
        )
        .await
        {
            Ok(r) => r,
            Err(_) => Err(SourceError::new(ErrorKind::Timeout).with_message(format!(
                "AWS SSM's GetParametersByPath walk of prefix `{prefix}` did not end within {} (with_walk_timeout)",
                crate::error::humanize(self.walk_timeout)
            ))),
        }
    }

    async fn walk(
        &self,
        prefix: &str,
        mut tree: Option<&mut Subtree<'_>>,
        max_keys: usize,
        decrypt: bool,
    ) -> Result<(usize, Vec<u8>), SourceError> {
        let path = path_of(prefix);
        let what = format!("prefix `{prefix}`");
        let mut token: Option<String> = None;
        let mut count = 0usize;
        let mut pairs: Vec<(String, u64)> = Vec::new();
        // Pages can come back empty with a token (AWS filters after paging): bounded still.
        let max_pages = max_keys / PAGE + 50;
        for _ in 0..max_pages {
            let mut body = serde_json::json!({
                "Path": path,
                "Recursive": true,
                "WithDecryption": decrypt,
                "MaxResults": PAGE,
            });
            if let Some(t) = &token {
                body["NextToken"] = t.clone().into();
            }
            let bytes = self
                .client
                .call("GetParametersByPath", &body, &what)
                .await?;
            let page: Parameters =
                serde_json::from_slice(&bytes).map_err(|e| decode_error(&what, &e))?;
            for p in page.parameters {
                count += 1;
                pairs.push((p.name.clone(), p.version.unwrap_or(0)));
                let Some(tree) = tree.as_deref_mut() else {
                    if count > max_keys {
                        return Ok((count, digest_of(pairs)));
                    }
                    continue;
                };
                let rest = p.name.strip_prefix(path.as_str()).unwrap_or(&p.name);
                let name = rest.strip_prefix('/').unwrap_or(rest);
                if name.is_empty() {
                    continue;
                }
                tree.insert(name, RawValue::Text(p.value.unwrap_or_default()))?;
            }
            token = page.next_token.filter(|t| !t.is_empty());
            if token.is_none() {
                return Ok((count, digest_of(pairs)));
            }
        }
        Err(
            SourceError::new(ErrorKind::Unavailable).with_message(format!(
                "AWS SSM answered more than {max_pages} pages for {what} without an end"
            )),
        )
    }

    /// One subtree read, and its revision (a digest of its names and versions).
    async fn read_prefix(&self, request: &FetchRequest, prefix: &str) -> Answer {
        let mut tree = match Subtree::of(request) {
            Some(Ok(tree)) => tree,
            Some(Err(e)) => return (Err(e), None),
            None => {
                return (
                    Err(SourceError::new(ErrorKind::Config).with_message("no `prefix`")),
                    None,
                );
            }
        };
        let max_keys = tree.max_keys();
        match self.by_path(prefix, Some(&mut tree), max_keys, true).await {
            Ok((_, digest)) => (Ok(tree.finish()), Some(Revision::Digest(digest))),
            Err(e) => (Err(e), None),
        }
    }

    /// Distinct requests: names in `GetParameters` of 10, prefixes one
    /// `GetParametersByPath` walk each, all concurrently.
    async fn read(&self, requests: &[&FetchRequest]) -> Vec<Answer> {
        let mut answers: Vec<Option<Answer>> = requests.iter().map(|_| None).collect();
        let mut names: Vec<&str> = Vec::new();
        let mut prefixes: Vec<(usize, &str)> = Vec::new();
        for (i, r) in requests.iter().enumerate() {
            match Op::of(r) {
                Ok(Op::Name(n)) => {
                    if !names.contains(&n) {
                        names.push(n);
                    }
                }
                Ok(Op::Prefix(p)) => prefixes.push((i, p)),
                Err(e) => answers[i] = Some((Err(e), None)),
            }
        }
        let calls = calls_of(&names);
        let by_name =
            futures::future::join_all(calls.iter().map(|call| self.get_parameters(call, true)));
        let trees = futures::future::join_all(
            prefixes
                .iter()
                .map(|(i, p)| self.read_prefix(requests[*i], p)),
        );
        let (by_name, trees) = futures::join!(by_name, trees);
        let by_name: Vec<(&str, Answer)> = calls
            .iter()
            .flatten()
            .copied()
            .zip(by_name.into_iter().flatten())
            .map(|(n, p)| {
                let answer = match p {
                    Ok(p) => (
                        Ok(RawValue::Text(p.value.unwrap_or_default())),
                        p.version.map(Revision::Index),
                    ),
                    Err(e) => (Err(e), None),
                };
                (n, answer)
            })
            .collect();
        for ((i, _), answer) in prefixes.iter().zip(trees) {
            answers[*i] = Some(answer);
        }
        for (i, r) in requests.iter().enumerate() {
            if let Ok(Op::Name(n)) = Op::of(r)
                && let Some((_, a)) = by_name.iter().find(|(m, _)| *m == n)
            {
                answers[i] = Some(a.clone());
            }
        }
        answers
            .into_iter()
            .map(|a| a.unwrap_or_else(|| (Err(SourceError::new(ErrorKind::Unavailable)), None)))
            .collect()
    }

    /// What a watch or preflight sees of each request without decrypting: a name's
    /// `Version` and type, a prefix's key count and newest version.
    async fn metadata(&self, requests: &[FetchRequest]) -> Vec<Result<Meta, SourceError>> {
        let mut out: Vec<Option<Result<Meta, SourceError>>> =
            requests.iter().map(|_| None).collect();
        let mut names: Vec<&str> = Vec::new();
        let mut prefixes: Vec<(usize, &str, usize)> = Vec::new();
        for (i, r) in requests.iter().enumerate() {
            match Op::of(r) {
                Ok(Op::Name(n)) => {
                    if !names.contains(&n) {
                        names.push(n);
                    }
                }
                Ok(Op::Prefix(p)) => match Subtree::of(r) {
                    Some(Ok(t)) => prefixes.push((i, p, t.max_keys())),
                    Some(Err(e)) => out[i] = Some(Err(e)),
                    None => {}
                },
                Err(e) => out[i] = Some(Err(e)),
            }
        }
        let calls = calls_of(&names);
        let by_name =
            futures::future::join_all(calls.iter().map(|call| self.get_parameters(call, false)));
        let trees = futures::future::join_all(
            prefixes
                .iter()
                .map(|(_, p, max)| self.by_path(p, None, *max, false)),
        );
        let (by_name, trees) = futures::join!(by_name, trees);
        let by_name: Vec<(&str, Result<Meta, SourceError>)> = calls
            .iter()
            .flatten()
            .copied()
            .zip(by_name.into_iter().flatten())
            .map(|(n, p)| {
                (
                    n,
                    p.map(|p| Meta::Name {
                        version: p.version.unwrap_or(0),
                        kind: p.kind.unwrap_or_default(),
                    }),
                )
            })
            .collect();
        for ((i, _, max), t) in prefixes.iter().zip(trees) {
            out[*i] = Some(t.map(|(count, digest)| Meta::Prefix {
                count,
                digest,
                max_keys: *max,
            }));
        }
        for (i, r) in requests.iter().enumerate() {
            if let Ok(Op::Name(n)) = Op::of(r)
                && let Some((_, m)) = by_name.iter().find(|(m, _)| *m == n)
            {
                out[i] = Some(m.clone());
            }
        }
        out.into_iter()
            .map(|m| m.unwrap_or_else(|| Err(SourceError::new(ErrorKind::Unavailable))))
            .collect()
    }

    async fn preflight_probes(&self, requests: Vec<FetchRequest>) -> Vec<Probe> {
        if let Err(e) = self.client.check_valid() {
            return requests.iter().map(|_| Probe::from_error(&e)).collect();
        }
        self.metadata(&requests)
            .await
            .into_iter()
            .map(|m| match m {
                Err(e) => client::probe_of_error(&e),
                Ok(Meta::Name { version, kind }) => {
                    let detail = if kind == "SecureString" {
                        format!("{kind}, version {version} (kms:Decrypt not checked)")
                    } else {
                        format!("{kind}, version {version}")
                    };
                    Probe::readable().with_detail(detail)
                }
                Ok(Meta::Prefix {
                    count, max_keys, ..
                }) if count > max_keys => Probe::new(Access::Invalid).with_detail(format!(
                    "more than {max_keys} parameters under the prefix, over `max_keys`"
                )),
                Ok(Meta::Prefix { count, .. }) => Probe::readable().with_detail(match count {
                    1 => "1 parameter under the prefix".to_owned(),
                    n => format!("{n} parameters under the prefix"),
                }),
            })
            .collect()
    }

    fn watch_parameters(&self, requests: Vec<FetchRequest>) -> Result<Changes, SourceError> {
        self.client.check_valid()?;
        if requests.is_empty() {
            return Ok(futures::stream::pending().boxed());
        }
        let every = requests
            .iter()
            .filter_map(|r| r.spec().and_then(|s| s.watch_interval))
            .min()
            .unwrap_or(self.watch_every);
        let state = (self.clone(), requests, Vec::<Option<Vec<u8>>>::new());
        Ok(
            futures::stream::unfold(state, move |(source, requests, mut seen)| async move {
                loop {
                    if !seen.is_empty() {
                        tokio::time::sleep(every).await;
                    }
                    let polled = source.metadata(&requests).await;
                    // Every request refused for good: a watch that can never fire. Said
                    // once; the engine polls instead.
                    if let Some(e) = client::permanent_failure(
                        polled.iter().filter(|m| !matches!(m, Err(e) if e.kind() == ErrorKind::NotFound)),
                        "ssm:GetParameters (ssm:GetParametersByPath for a prefix)",
                    ) {
                        return Some((Err(e), (source, requests, seen)));
                    }
                    let now: Vec<Option<Vec<u8>>> = polled
                        .into_iter()
                        .map(|m| match m {
                            Ok(Meta::Name { version, .. }) => Some(version.to_be_bytes().to_vec()),
                            Ok(Meta::Prefix { digest, .. }) => Some(digest),
                            // Gone: a change too (the field falls back).
                            Err(e) if e.kind() == ErrorKind::NotFound => Some(Vec::new()),
                            Err(e) => {
                                tracing::debug!(error = %e, "reading SSM parameter versions failed during a watch");
                                None
                            }
                        })
                        .collect();
                    let first = seen.is_empty();
                    let changed: Vec<usize> = now
                        .iter()
                        .enumerate()
                        .filter(|(i, v)| !first && v.is_some() && seen.get(*i).cloned().flatten() != **v)
                        .map(|(i, _)| i)
                        .collect();
                    seen = now
                        .into_iter()
                        .enumerate()
                        .map(|(i, v)| v.or_else(|| seen.get(i).cloned().flatten()))
                        .collect();
                    if !changed.is_empty() {
                        return Some((Ok(Change::Changed(changed)), (source, requests, seen)));
                    }
                }
            })
            .boxed(),
        )
    }
}

/// What a watch or preflight learns of one request without a value.
#[derive(Clone)]
enum Meta {
    Name {
        version: u64,
        kind: String,
    },
    Prefix {
        count: usize,
        digest: Vec<u8>,
        max_keys: usize,
    },
}

#[async_trait::async_trait]
impl Source for AwsSsmSource {
    async fn fetch(&self, request: &FetchRequest) -> Result<RawValue, SourceError> {
        self.fetch_many(&[request])
            .await
            .pop()
            .unwrap_or_else(|| Err(SourceError::new(ErrorKind::Unavailable)))
    }

    /// `GetParameters` per 10 distinct names, concurrently; a prefix `GetParametersByPath`.
    async fn fetch_many(&self, requests: &[&FetchRequest]) -> Vec<Result<RawValue, SourceError>> {
        self.fetch_many_in(&FetchContext::new(), requests).await
    }

    /// As [`Source::fetch_many`], noting each value's `Version` (a prefix: the newest
    /// under it) for the fetch report.
    async fn fetch_many_in(
        &self,
        cx: &FetchContext,
        requests: &[&FetchRequest],
    ) -> Vec<Result<RawValue, SourceError>> {
        let versions: Mutex<Vec<(FetchRequest, Revision)>> = Mutex::new(Vec::new());
        let answers = coalesce(requests, |unique| {
            let versions = &versions;
            async move {
                let read = self.read(&unique).await;
                let mut noted = versions.lock().unwrap_or_else(PoisonError::into_inner);
                unique
                    .iter()
                    .zip(read)
                    .map(|(r, (answer, version))| {
                        if let (Ok(_), Some(v)) = (&answer, version) {
                            noted.push(((*r).clone(), v));
                        }
                        answer
                    })
                    .collect()
            }
        })
        .await;
        for (request, version) in versions
            .into_inner()
            .unwrap_or_else(PoisonError::into_inner)
        {
            cx.note_revision(&request, version);
        }
        answers
    }

    /// The service, region and endpoint (no credentials).
    fn location(&self) -> Option<String> {
        Some(self.client.location())
    }

    /// `("prefix", <prefix>)` for a subtree read, else `("parameter", <name>)`.
    fn native_key(&self, request: &FetchRequest) -> Option<(&'static str, String)> {
        subtree::native_key(request).or_else(|| request.key().map(|k| ("parameter", k.to_owned())))
    }

    fn is_sensitive(&self) -> bool {
        true
    }

    /// A subtree read (`prefix = "..."`) names its keys itself: no convention key.
    fn convention(
        &self,
        request: FetchRequest,
        field: &crate::FieldPath<'_>,
    ) -> Result<FetchRequest, String> {
        if Subtree::is_subtree(&request) {
            return Ok(request);
        }
        // Parameter paths start with `/` (`db/port` is refused): `/db/port`.
        let key = field.key('/');
        Ok(request.with_key(if key.starts_with('/') {
            key
        } else {
            format!("/{key}")
        }))
    }

    /// `GetParameters` WITHOUT decryption (no plaintext of a `SecureString` crosses) per
    /// 10 names; a prefix `GetParametersByPath` without decryption, counted against
    /// `max_keys`.
    fn preflight(&self, requests: Vec<FetchRequest>) -> Preflighting<'_> {
        Box::pin(self.preflight_probes(requests))
    }

    /// Polls the watched parameters' `Version` (without decryption) every
    /// `watch_interval` (default 30 s); a prefix changes when its newest
    /// version or its count does.
    fn watch(&self, requests: Vec<FetchRequest>) -> Result<Changes, SourceError> {
        self.watch_parameters(requests)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        assert_eq!(path_of("/app/"), "/app");
        assert_eq!(path_of("/"), "/");
        assert_eq!(path_of("/a/b"), "/a/b");
    }

    fn param(name: &str, selector: Option<&str>, version: u64) -> Parameter {
        Parameter {
            name: name.into(),
            arn: Some(format!("arn:aws:ssm:us-east-1:1:parameter{name}")),
            selector: selector.map(str::to_owned),
            kind: None,
            value: None,
            version: Some(version),
        }
    }

    #[test]
    fn names_match_with_their_selector_only() {
        let pinned = param("/app/port", Some(":3"), 3);
        assert!(
            !is_named(&pinned, "/app/port"),
            "a plain name never gets a pinned answer"
        );
        assert!(is_named(&pinned, "/app/port:3"));
        assert!(!is_named(&pinned, "/app/port:4"));
        let plain = param("/app/port", None, 5);
        assert!(is_named(&plain, "/app/port"));
        assert!(is_named(
            &plain,
            "arn:aws:ssm:us-east-1:1:parameter/app/port"
        ));
        assert!(!is_named(&plain, "/app/por"));
        // A server that sends no Selector: the version tells.
        assert!(is_named(&plain, "/app/port:5"));
        assert!(!is_named(&plain, "/app/port:1"));
        assert_eq!(split_selector("/a/p:prod"), ("/a/p", Some("prod")));
        assert_eq!(
            split_selector("arn:aws:ssm:us-east-1:1:parameter/a/p"),
            ("arn:aws:ssm:us-east-1:1:parameter/a/p", None)
        );
        assert_eq!(
            split_selector("arn:aws:ssm:us-east-1:1:parameter/a/p:2"),
            ("arn:aws:ssm:us-east-1:1:parameter/a/p", Some("2"))
        );
        assert_eq!(split_selector("port:2"), ("port", Some("2")));
        assert_eq!(split_selector("port"), ("port", None));
    }

    #[test]
    fn one_key_of_a_parameter_per_call() {
        let names = ["/a/p", "/a/p:1", "/a/q", "arn:aws:ssm:r:1:parameter/a/p"];
        let calls = calls_of(&names);
        assert_eq!(calls.len(), 3, "{calls:?}");
        for call in &calls {
            let mut of: Vec<&str> = call.iter().map(|n| parameter_of(n)).collect();
            of.sort_unstable();
            of.dedup();
            assert_eq!(of.len(), call.len(), "{call:?}");
        }
        let many: Vec<String> = (0..25).map(|i| format!("/a/n{i}")).collect();
        let refs: Vec<&str> = many.iter().map(String::as_str).collect();
        assert_eq!(calls_of(&refs).len(), 3);
    }

    #[test]
    fn a_prefix_digest_sees_any_update() {
        let d = |pairs: &[(&str, u64)]| {
            digest_of(pairs.iter().map(|(n, v)| ((*n).to_owned(), *v)).collect())
        };
        let before = d(&[("/a", 5), ("/b", 2)]);
        // The newest version and the count unchanged, yet b changed.
        assert_ne!(before, d(&[("/a", 5), ("/b", 3)]));
        assert_ne!(before, d(&[("/a", 5), ("/c", 2)]));
        assert_eq!(before, d(&[("/b", 2), ("/a", 5)]), "order does not matter");
    }

    #[test]
    fn prefixes_and_convention_keys_start_with_a_slash() {
        let r = FetchRequest::for_source("aws_ssm").with_param("prefix", "app/");
        let e = Op::of(&r).err().expect("a Config error");
        assert_eq!(e.kind(), ErrorKind::Config);
        assert!(e.to_string().contains("app/"), "{e}");
        let ssm = AwsSsmSource::new("us-east-1");
        let field = crate::FieldPath::new("db.port");
        let r = ssm
            .convention(FetchRequest::for_source("aws_ssm"), &field)
            .unwrap();
        assert_eq!(r.key(), Some("/db/port"));
    }
}
