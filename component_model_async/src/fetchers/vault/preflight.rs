//! `preflight` of the `vault` source: what the token may do, and whether each secret
//! exists, without reading a secret (see the module above, "Preflight").
//!
//! 1. `GET auth/token/lookup-self`: Vault refusing the token itself (`403` with a plain
//!    `permission denied`, which is what a bad, expired or revoked token gets; a valid
//!    token its policies refuse gets Vault's multierror instead) makes every row
//!    [`Access::Unauthenticated`]; otherwise its `ttl` goes into every row's detail.
//! 2. The KV version of each mount, as a read finds it (configured, or
//!    `sys/internal/ui/mounts`, once per mount).
//! 3. ONE `POST sys/capabilities-self` with every path the requests would read
//!    (`<mount>/data/<path>`, KV v1 `<mount>/<path>`) and the paths that tell whether
//!    the secret exists (`<mount>/metadata/<path>`, KV v1 the parent folder to LIST).
//! 4. Per secret allowed to be read: KV v2 `GET <mount>/metadata/<path>` (versions and
//!    their deletion, no data) when the token may; KV v1 a LIST of the parent folder when
//!    it may. Never a `GET` of the data path.

use std::collections::HashMap;

use serde_json::Value;

use crate::error::{ErrorKind, SourceError};
use crate::source::{Access, FetchRequest, Probe};

use super::VaultSource;

/// How many existence checks (metadata reads, LISTs) run at once.
const CONCURRENT_CHECKS: usize = 16;

/// A request as the source would read it.
struct Target {
    mount: String,
    path: String,
    version: u8,
    /// `version = N` on the field (KV v2).
    at: Option<u64>,
}

impl Target {
    /// The API path a read requests (after `/v1/`).
    fn read_path(&self) -> String {
        match self.version {
            2 => format!("{}/data/{}", self.mount, self.path),
            _ => format!("{}/{}", self.mount, self.path),
        }
    }

    /// The API path that tells whether the secret exists: KV v2 its metadata, KV v1 the
    /// folder holding it (a LIST, whose capability is checked on the folder with a `/`).
    fn existence_path(&self) -> String {
        match self.version {
            2 => format!("{}/metadata/{}", self.mount, self.path),
            _ => match self.path.rsplit_once('/') {
                Some((parent, _)) => format!("{}/{parent}/", self.mount),
                None => format!("{}/", self.mount),
            },
        }
    }

    /// The secret's name in its folder's listing (KV v1).
    fn name(&self) -> &str {
        self.path.rsplit_once('/').map_or(&self.path, |(_, n)| n)
    }
}

/// What Vault says about the token.
enum TokenState {
    /// Looked up: its TTL (`None`: never expires).
    Known(Option<u64>),
    /// Valid, but may not look itself up (no `default` policy): TTL unknown.
    NoLookup,
}

impl TokenState {
    fn detail(&self) -> String {
        match self {
            TokenState::Known(Some(ttl)) => format!("token ttl {}", ttl_text(*ttl)),
            TokenState::Known(None) => "token never expires".to_owned(),
            TokenState::NoLookup => "token ttl unknown (it may not look itself up)".to_owned(),
        }
    }
}

/// `3599` → `59m59s`, `3600` → `1h`, `0` → `0s`.
fn ttl_text(seconds: u64) -> String {
    let (h, m, s) = (seconds / 3600, seconds % 3600 / 60, seconds % 60);
    let mut out = String::new();
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if m > 0 {
        out.push_str(&format!("{m}m"));
    }
    if s > 0 || out.is_empty() {
        out.push_str(&format!("{s}s"));
    }
    out
}

/// The `errors` of a Vault error body, as sent.
fn errors_of(body: &[u8]) -> Vec<String> {
    serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v.get("errors").cloned())
        .and_then(|e| serde_json::from_value::<Vec<String>>(e).ok())
        .unwrap_or_default()
}

/// Whether a `403` refuses the token itself: Vault answers a bad, expired or revoked token
/// (and no token) with a plain `permission denied`, a valid token its policies refuse
/// with its multierror (`1 error occurred: * permission denied`).
fn refuses_token(body: &[u8]) -> bool {
    errors_of(body)
        .iter()
        .any(|e| e.trim() == "permission denied" || e.contains("invalid token"))
}

fn allows_read(caps: &[String]) -> bool {
    !caps.iter().any(|c| c == "deny") && caps.iter().any(|c| c == "read" || c == "root")
}

fn allows_list(caps: &[String]) -> bool {
    !caps.iter().any(|c| c == "deny") && caps.iter().any(|c| c == "list" || c == "root")
}

/// Appends the token's detail to a probe's.
fn with_token(probe: Probe, token: &TokenState) -> Probe {
    let detail = match &probe.detail {
        Some(d) => format!("{d}; {}", token.detail()),
        None => token.detail(),
    };
    probe.with_detail(detail)
}

impl VaultSource {
    /// [`Source::preflight`](crate::Source::preflight) of the `vault` source (see the
    /// module's "Preflight").
    pub(super) async fn preflight_requests(&self, requests: Vec<FetchRequest>) -> Vec<Probe> {
        let all = |probe: Probe| requests.iter().map(|_| probe.clone()).collect::<Vec<_>>();
        // 1. The token.
        let token = match self.look_up_token().await {
            Ok(Ok(token)) => token,
            Ok(Err(refused)) => return all(refused),
            Err(e) => return all(unreachable_or(&e)),
        };
        // 2. Each request as a read would make it.
        let mut probes: Vec<Option<Probe>> = requests.iter().map(|_| None).collect();
        let mut targets: Vec<Option<Target>> = Vec::with_capacity(requests.len());
        for (i, r) in requests.iter().enumerate() {
            match self.target(r).await {
                Ok(t) => targets.push(Some(t)),
                Err(probe) => {
                    probes[i] = Some(with_token(probe, &token));
                    targets.push(None);
                }
            }
        }
        // 3. One capabilities call for every path.
        let mut paths: Vec<String> = Vec::new();
        for t in targets.iter().flatten() {
            for p in [t.read_path(), t.existence_path()] {
                if !paths.contains(&p) {
                    paths.push(p);
                }
            }
        }
        let caps = if paths.is_empty() {
            HashMap::new()
        } else {
            match self.capabilities(&paths).await {
                Ok(Ok(caps)) => caps,
                Ok(Err(probe)) => {
                    return fill(probes, |_| probe.clone());
                }
                Err(e) => {
                    let probe = unreachable_or(&e);
                    return fill(probes, |_| probe.clone());
                }
            }
        };
        let caps_of = |p: &str| caps.get(p).cloned().unwrap_or_default();
        // 4. Whether each allowed secret exists, at most CONCURRENT_CHECKS at once; each
        // distinct existence check once.
        let mut checks: Vec<(usize, String)> = Vec::new();
        // What the token may do on each read path, for the detail.
        let mut allowed: Vec<String> = targets
            .iter()
            .map(|t| match t {
                Some(t) => format!(
                    "capabilities on {}: {}",
                    t.read_path(),
                    caps_text(&caps_of(&t.read_path()))
                ),
                None => String::new(),
            })
            .collect();
        for (i, t) in targets.iter().enumerate() {
            let Some(t) = t else { continue };
            let read = caps_of(&t.read_path());
            if !allows_read(&read) {
                probes[i] = Some(with_token(
                    Probe::new(Access::Denied).with_detail(std::mem::take(&mut allowed[i])),
                    &token,
                ));
                continue;
            }
            let exists = caps_of(&t.existence_path());
            let may_check = match t.version {
                2 => allows_read(&exists),
                _ => allows_list(&exists),
            };
            if !may_check {
                let why = match t.version {
                    2 => format!("no read on {}", t.existence_path()),
                    _ => format!("no list on {}", t.existence_path()),
                };
                probes[i] = Some(with_token(
                    Probe::readable().with_detail(format!(
                        "{}; allowed to read; existence not checked ({why})",
                        allowed[i]
                    )),
                    &token,
                ));
                continue;
            }
            checks.push((i, t.existence_path()));
        }
        let mut distinct: Vec<String> = checks.iter().map(|(_, p)| p.clone()).collect();
        distinct.sort();
        distinct.dedup();
        use futures::StreamExt as _;
        let answers: HashMap<String, Result<Option<Value>, SourceError>> =
            futures::stream::iter(distinct)
                .map(|p| async move {
                    let answer = self.existence(&p).await;
                    (p, answer)
                })
                .buffer_unordered(CONCURRENT_CHECKS)
                .collect()
                .await;
        for (i, p) in checks {
            let Some(t) = &targets[i] else { continue };
            let probe = match &answers[&p] {
                Ok(None) => Probe::missing().with_detail(format!(
                    "{}; no secret at {}/{}",
                    allowed[i], t.mount, t.path
                )),
                Ok(Some(found)) => exists_in(t, found, &allowed[i]),
                Err(e) => Probe::from_error(e),
            };
            probes[i] = Some(with_token(probe, &token));
        }
        fill(probes, |_| {
            Probe::unchecked("the request was not checked (no answer for it)")
        })
    }

    /// `lookup-self`: the token's state, the probe of every row when Vault refuses the
    /// token, or the error of a server that could not be asked.
    async fn look_up_token(&self) -> Result<Result<TokenState, Probe>, SourceError> {
        let (status, body, _) = match self
            .exchange(
                reqwest::Method::GET,
                &["v1", "auth", "token", "lookup-self"],
                &[],
                None,
            )
            .await
        {
            Ok(answer) => answer,
            // A login (AppRole, Kubernetes) or a token file the server refused.
            Err(e) if e.kind() == ErrorKind::Unauthorized => {
                return Ok(Err(Probe::new(Access::Unauthenticated).with_detail(
                    e.message().unwrap_or("the login was refused").to_owned(),
                )));
            }
            Err(e) => return Err(e),
        };
        if status.as_u16() == 403 {
            if refuses_token(&body) {
                return Ok(Err(self.refused_token()));
            }
            return Ok(Ok(TokenState::NoLookup));
        }
        if !status.is_success() {
            return Err(self.status_error(status, &body, "lookup-self"));
        }
        let ttl = serde_json::from_slice::<Value>(&body)
            .ok()
            .and_then(|v| v.pointer("/data/ttl").and_then(Value::as_u64))
            .unwrap_or(0);
        Ok(Ok(TokenState::Known((ttl > 0).then_some(ttl))))
    }

    fn refused_token(&self) -> Probe {
        let why = if self.has_credentials() {
            "vault refused the token (permission denied): it is invalid, expired or revoked"
        } else {
            "vault refused the request: no token (set VAULT_TOKEN)"
        };
        Probe::new(Access::Unauthenticated).with_detail(why)
    }

    /// The request as a read would make it, or its probe when it cannot be made.
    async fn target(&self, request: &FetchRequest) -> Result<Target, Probe> {
        let invalid = |why: String| Probe::new(Access::Invalid).with_detail(why);
        let Some(path) = request.secret_path() else {
            return Err(invalid("the field names no `secret = \"path\"`".to_owned()));
        };
        let mount = request
            .mount()
            .unwrap_or(self.default_mount())
            .trim_matches('/')
            .to_owned();
        let path = path.trim_matches('/').to_owned();
        let version = match request.kv_version() {
            Some(v) => v,
            None => self
                .kv_version_of(&mount, &path)
                .await
                .map_err(|e| match e.kind() {
                    ErrorKind::Config => invalid(e.to_string()),
                    _ => Probe::from_error(&e),
                })?,
        };
        let at = match request.param("version") {
            None => None,
            Some(at) => match at.parse::<u64>() {
                Ok(n) if n > 0 && at.bytes().all(|b| b.is_ascii_digit()) && version == 2 => Some(n),
                Ok(_) | Err(_) if version == 2 => {
                    return Err(invalid(format!(
                        "`version = \"{at}\"` for secret `{mount}/{path}` is not a version number (1, 2, ...)"
                    )));
                }
                _ => {
                    return Err(invalid(format!(
                        "`version` picks a version of a KV v2 secret, and `{mount}` is a KV v1 mount (secret `{mount}/{path}`)"
                    )));
                }
            },
        };
        Ok(Target {
            mount,
            path,
            version,
            at,
        })
    }

    /// `POST sys/capabilities-self` for `paths`: each path's capabilities, or the probe of
    /// every row when the token may not ask.
    async fn capabilities(
        &self,
        paths: &[String],
    ) -> Result<Result<HashMap<String, Vec<String>>, Probe>, SourceError> {
        let body = serde_json::to_vec(&serde_json::json!({ "paths": paths })).unwrap_or_default();
        let (status, answer, _) = self
            .exchange(
                reqwest::Method::POST,
                &["v1", "sys", "capabilities-self"],
                &[],
                Some(&body),
            )
            .await?;
        if status.as_u16() == 403 {
            if refuses_token(&answer) {
                return Ok(Err(self.refused_token()));
            }
            return Ok(Err(Probe::unchecked(
                "the token may not check its capabilities (sys/capabilities-self, in the `default` policy)",
            )));
        }
        if !status.is_success() {
            return Err(self.status_error(status, &answer, "sys/capabilities-self"));
        }
        let data = serde_json::from_slice::<Value>(&answer)
            .ok()
            .and_then(|v| v.get("data").cloned())
            .unwrap_or(Value::Null);
        let caps = paths
            .iter()
            .map(|p| {
                let caps = data
                    .get(p.as_str())
                    .and_then(|c| serde_json::from_value::<Vec<String>>(c.clone()).ok())
                    .unwrap_or_default();
                (p.clone(), caps)
            })
            .collect();
        Ok(Ok(caps))
    }

    /// KV v2 metadata (`GET <mount>/metadata/<path>`) or a KV v1 folder's listing
    /// (`LIST <mount>/<folder>/`) at `path`: `None` when Vault answers 404. The answer's
    /// `data` only (metadata holds no secret; it is not logged either).
    async fn existence(&self, path: &str) -> Result<Option<Value>, SourceError> {
        let list = path.ends_with('/');
        let query: &[(&str, &str)] = if list { &[("list", "true")] } else { &[] };
        let what = if list {
            format!("the listing of {path}")
        } else {
            format!("the metadata at {path}")
        };
        let (status, body, _) = self
            .exchange(reqwest::Method::GET, &["v1", path], query, None)
            .await?;
        if status.as_u16() == 404 && errors_of(&body).is_empty() {
            return Ok(None);
        }
        if !status.is_success() {
            return Err(self.status_error(status, &body, &what));
        }
        Ok(Some(
            serde_json::from_slice::<Value>(&body)
                .ok()
                .and_then(|v| v.get("data").cloned())
                .unwrap_or(Value::Null),
        ))
    }
}

/// Whether `found` (KV v2 metadata, or a KV v1 folder's listing) shows the secret `t`
/// would read.
fn exists_in(t: &Target, found: &Value, allowed: &str) -> Probe {
    if t.version != 2 {
        let listed = found
            .get("keys")
            .and_then(Value::as_array)
            .is_some_and(|keys| keys.iter().any(|k| k.as_str() == Some(t.name())));
        return if listed {
            Probe::readable().with_detail(format!("{allowed}; listed in its folder"))
        } else {
            Probe::missing().with_detail(format!("{allowed}; no secret at {}/{}", t.mount, t.path))
        };
    }
    let current = found.get("current_version").and_then(Value::as_u64);
    let Some(n) = t.at.or(current).filter(|n| *n > 0) else {
        return Probe::missing().with_detail(format!("{allowed}; the secret has no version"));
    };
    let Some(v) = found.pointer(&format!("/versions/{n}")) else {
        return Probe::missing().with_detail(format!("{allowed}; no version {n}"));
    };
    if v.get("destroyed").and_then(Value::as_bool) == Some(true) {
        return Probe::missing().with_detail(format!("{allowed}; version {n} is destroyed"));
    }
    // A version is deleted once its `deletion_time` has passed: with `delete_version_after`
    // every version carries a future one from the moment it is written, and is served
    // until then.
    if v.get("deletion_time")
        .and_then(Value::as_str)
        .is_some_and(deleted_by_now)
    {
        return Probe::missing().with_detail(format!("{allowed}; version {n} is deleted"));
    }
    Probe::readable().with_detail(format!("{allowed}; version {n} exists"))
}

/// Whether a KV v2 `deletion_time` (RFC 3339, empty when none) is at or before now; a
/// time that does not parse counts as deleted (Vault writes only RFC 3339).
fn deleted_by_now(time: &str) -> bool {
    if time.is_empty() {
        return false;
    }
    match humantime::parse_rfc3339_weak(time) {
        Ok(at) => at <= std::time::SystemTime::now(),
        Err(_) => true,
    }
}

fn caps_text(caps: &[String]) -> String {
    if caps.is_empty() {
        "none".to_owned()
    } else {
        caps.join(", ")
    }
}

/// A source error for every row: unreachable when it is a transport or server failure,
/// unauthenticated when the login was refused, else what it means.
fn unreachable_or(e: &SourceError) -> Probe {
    match e.kind() {
        ErrorKind::Unauthorized => Probe::new(Access::Unauthenticated).with_detail(e.to_string()),
        _ => Probe::from_error(e),
    }
}

/// Every row's probe, `rest` for those not set yet.
fn fill(probes: Vec<Option<Probe>>, rest: impl Fn(usize) -> Probe) -> Vec<Probe> {
    probes
        .into_iter()
        .enumerate()
        .map(|(i, p)| p.unwrap_or_else(|| rest(i)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttls_read_as_vault_writes_them() {
        assert_eq!(ttl_text(3599), "59m59s");
        assert_eq!(ttl_text(3600), "1h");
        assert_eq!(ttl_text(3661), "1h1m1s");
        assert_eq!(ttl_text(0), "0s");
    }

    #[test]
    fn a_bad_token_and_a_policy_denial_differ() {
        assert!(refuses_token(br#"{"errors":["permission denied"]}"#));
        assert!(!refuses_token(
            br#"{"errors":["1 error occurred:\n\t* permission denied\n\n"]}"#
        ));
    }

    #[test]
    fn read_and_existence_paths() {
        let t = |version, path: &str| Target {
            mount: "kv".to_owned(),
            path: path.to_owned(),
            version,
            at: None,
        };
        assert_eq!(t(2, "app/db").read_path(), "kv/data/app/db");
        assert_eq!(t(2, "app/db").existence_path(), "kv/metadata/app/db");
        assert_eq!(t(1, "app/db").read_path(), "kv/app/db");
        assert_eq!(t(1, "app/db").existence_path(), "kv/app/");
        assert_eq!(t(1, "db").existence_path(), "kv/");
        assert_eq!(t(1, "app/db").name(), "db");
    }
}

#[cfg(test)]
mod deletion_tests {
    use super::deleted_by_now;

    #[test]
    fn a_version_is_deleted_once_its_deletion_time_has_passed() {
        assert!(!deleted_by_now(""), "no deletion time");
        assert!(deleted_by_now("2020-01-02T03:04:05.123456789Z"));
        // `delete_version_after`: a future time on a version still served.
        assert!(!deleted_by_now("2999-01-02T03:04:05.5Z"));
        assert!(!deleted_by_now("2999-01-02T03:04:05Z"));
    }
}
