//! The [`VaultDouble`](super::VaultDouble)'s auth methods: AppRole and Kubernetes logins,
//! and the token endpoints for the tokens it issues (`lookup-self`, `renew-self`), with
//! TTLs, a max TTL, renewability and revocation, as Vault's API documents them.
//!
//! Status codes, as current Vault answers them (its source, `logical.ErrInvalidCredentials`
//! and `ErrPermissionDenied` as mapped by `RespondErrorCommon`):
//! * AppRole login with an unknown role id or a wrong secret id: `400 {"errors":["invalid
//!   role or secret ID"]}` (Vault 1.13 and later; older versions answered 400 "invalid
//!   secret id" — never 403); a body without `role_id`: `400 missing role_id`;
//! * Kubernetes login with an unknown role: `400 invalid role name "<role>"`; a JWT the
//!   token review refuses: `403 permission denied`;
//! * an expired or revoked token, anywhere: `403 {"errors":["permission denied"]}`;
//! * a valid token its policies do not allow on a path: `403` with the error wrapped as
//!   Vault's multierror, `"1 error occurred:\n\t* permission denied\n\n"` (OpenBao 2.7.2
//!   answers both exactly so); a token without the `default` policy gets this on
//!   `lookup-self`, `renew-self` and `revoke-self` too;
//! * `revoke-self`: `204`, the token then refused everywhere;
//! * `renew-self` of a token that is not renewable (a root token, or one created so):
//!   `400 lease is not renewable`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::rfc3339;

/// Vault's default token TTL and max TTL (`768h`).
pub(super) const DEFAULT_TTL: Duration = Duration::from_secs(768 * 3600);

/// What logins accept and what they issue.
#[derive(Debug, Clone)]
pub(super) struct AuthConfig {
    pub(super) approles: Vec<(String, String)>,
    pub(super) kubernetes: Vec<(String, String)>,
    pub(super) ttl: Duration,
    pub(super) max_ttl: Duration,
    /// What the tokens logins issue may do.
    pub(super) policy: Policy,
    /// Whether the `default` policy allows `auth/token/lookup-self` (Vault's does; an
    /// operator may edit it not to).
    pub(super) default_lookup_self: bool,
}

/// What an issued token may do: read under some path prefixes (or everywhere), and use
/// the token endpoints of Vault's `default` policy (`lookup-self`, `renew-self`,
/// `revoke-self`).
#[derive(Debug, Clone)]
pub(super) struct Policy {
    /// Path prefixes (after `/v1/`, e.g. `secret/data/app/`); `None`: every path.
    pub(super) readable: Option<Vec<String>>,
    pub(super) default_policy: bool,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            readable: None,
            default_policy: true,
        }
    }
}

impl Policy {
    fn names(&self) -> Vec<&'static str> {
        let mut names = Vec::new();
        if self.readable.is_some() {
            names.push("app");
        }
        if self.default_policy {
            names.push("default");
        }
        if names.is_empty() {
            names.push("app");
        }
        names
    }
}

/// Vault's answer to a valid token its policies refuse (a multierror, unlike the plain
/// `permission denied` of a bad token).
pub(super) const POLICY_DENIED: &str = "1 error occurred:\n\t* permission denied\n\n";

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            approles: Vec::new(),
            kubernetes: Vec::new(),
            ttl: DEFAULT_TTL,
            max_ttl: DEFAULT_TTL,
            policy: Policy::default(),
            default_lookup_self: true,
        }
    }
}

/// A token the double issued.
struct Issued {
    accessor: String,
    created: SystemTime,
    created_at: Instant,
    creation_ttl: Duration,
    expires_at: Instant,
    max_ttl: Duration,
    renewable: bool,
    revoked: bool,
    path: String,
    display_name: String,
    metadata: Value,
    policy: Policy,
}

/// The issued tokens.
#[derive(Default)]
pub(super) struct Tokens {
    issued: Mutex<HashMap<String, Issued>>,
    counter: AtomicU64,
    logins: AtomicU64,
}

fn error(status: StatusCode, message: &str) -> Response {
    (status, axum::Json(json!({ "errors": [message] }))).into_response()
}

impl Tokens {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Issued>> {
        self.issued.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether `token` is an issued token that is neither expired nor revoked.
    pub(super) fn valid(&self, token: &str) -> bool {
        self.lock()
            .get(token)
            .is_some_and(|t| !t.revoked && Instant::now() < t.expires_at)
    }

    /// Whether the valid token `token` may use `path` (after `/v1/`): the `default`
    /// policy's token endpoints (`lookup-self` only when `config` leaves it there), else
    /// its readable prefixes.
    pub(super) fn allows(&self, config: &AuthConfig, token: &str, path: &str) -> bool {
        let issued = self.lock();
        let Some(t) = issued.get(token) else {
            return false;
        };
        if path == "auth/token/lookup-self" && !config.default_lookup_self {
            return false;
        }
        if matches!(
            path,
            "auth/token/lookup-self"
                | "auth/token/renew-self"
                | "auth/token/revoke-self"
                | "sys/capabilities-self"
        ) {
            return t.policy.default_policy;
        }
        // The mount of a path is shown to any token (`sys/internal/ui/mounts`).
        if path.starts_with("sys/internal/ui/mounts/") {
            return true;
        }
        t.policy
            .readable
            .as_ref()
            .is_none_or(|prefixes| prefixes.iter().any(|p| path.starts_with(p.as_str())))
    }

    /// What `sys/capabilities-self` answers for `path` (after `/v1/`) to the valid issued
    /// token `token`: `["root"]` for a token that reads everything, `["list", "read"]`
    /// under its readable prefixes (what the double lets it do there), else `["deny"]`.
    pub(super) fn capabilities(&self, token: &str, path: &str) -> Vec<&'static str> {
        let issued = self.lock();
        let Some(t) = issued.get(token) else {
            return vec!["deny"];
        };
        match &t.policy.readable {
            None => vec!["root"],
            Some(prefixes) if prefixes.iter().any(|p| path.starts_with(p.as_str())) => {
                vec!["list", "read"]
            }
            Some(_) => vec!["deny"],
        }
    }

    /// A new service token.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn issue(
        &self,
        ttl: Duration,
        max_ttl: Duration,
        renewable: bool,
        path: &str,
        display_name: &str,
        metadata: Value,
        policy: Policy,
    ) -> String {
        let n = self.counter.fetch_add(1, Ordering::Relaxed) + 1;
        let nanos = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        let token = format!("hvs.double{nanos:016x}{n:06x}");
        let now = Instant::now();
        self.lock().insert(
            token.clone(),
            Issued {
                accessor: format!("accessor{n:06x}{:08x}", nanos & 0xffff_ffff),
                created: SystemTime::now(),
                created_at: now,
                creation_ttl: ttl,
                expires_at: now + ttl,
                max_ttl,
                renewable,
                revoked: false,
                path: path.to_owned(),
                display_name: display_name.to_owned(),
                metadata,
                policy,
            },
        );
        token
    }

    pub(super) fn revoke(&self, token: &str) {
        if let Some(t) = self.lock().get_mut(token) {
            t.revoked = true;
        }
    }

    pub(super) fn logins(&self) -> u64 {
        self.logins.load(Ordering::Relaxed)
    }

    /// The `auth` block of a login or renewal of `token` that granted `lease`.
    fn auth_block(&self, token: &str, lease: Duration) -> Value {
        let issued = self.lock();
        let Some(t) = issued.get(token) else {
            return Value::Null;
        };
        let policies = t.policy.names();
        json!({
            "client_token": token,
            "accessor": t.accessor,
            "policies": policies,
            "token_policies": policies,
            "metadata": t.metadata,
            "lease_duration": lease.as_secs(),
            "renewable": t.renewable,
            "entity_id": format!("00000000-0000-4000-8000-{:012x}", t.created_at.elapsed().as_nanos() as u64 & 0xffff_ffff),
            "token_type": "service",
            "orphan": true,
            "mfa_requirement": Value::Null,
            "num_uses": 0,
        })
    }

    /// A successful login: a renewable token of the configured TTL, under `auth`.
    fn logged_in(
        &self,
        config: &AuthConfig,
        path: &str,
        display_name: &str,
        meta: Value,
        envelope: impl Fn(Value, Vec<String>) -> Value,
    ) -> Response {
        let token = self.issue(
            config.ttl,
            config.max_ttl,
            true,
            path,
            display_name,
            meta,
            config.policy.clone(),
        );
        self.logins.fetch_add(1, Ordering::Relaxed);
        axum::Json(envelope(self.auth_block(&token, config.ttl), Vec::new())).into_response()
    }

    /// `POST auth/approle/login`.
    pub(super) fn approle_login(
        &self,
        config: &AuthConfig,
        body: &[u8],
        envelope: impl Fn(Value, Vec<String>) -> Value,
    ) -> Response {
        let Ok(Value::Object(body)) = serde_json::from_slice::<Value>(body) else {
            return error(StatusCode::BAD_REQUEST, "missing role_id");
        };
        let Some(role_id) = body.get("role_id").and_then(Value::as_str) else {
            return error(StatusCode::BAD_REQUEST, "missing role_id");
        };
        let secret_id = body.get("secret_id").and_then(Value::as_str).unwrap_or("");
        if !config
            .approles
            .iter()
            .any(|(r, s)| r == role_id && s == secret_id)
        {
            return error(StatusCode::BAD_REQUEST, "invalid role or secret ID");
        }
        let meta =
            json!({ "role_name": format!("role-{}", role_id.chars().take(8).collect::<String>()) });
        self.logged_in(config, "auth/approle/login", "approle", meta, envelope)
    }

    /// `POST auth/kubernetes/login`.
    pub(super) fn kubernetes_login(
        &self,
        config: &AuthConfig,
        body: &[u8],
        envelope: impl Fn(Value, Vec<String>) -> Value,
    ) -> Response {
        let Ok(Value::Object(body)) = serde_json::from_slice::<Value>(body) else {
            return error(StatusCode::BAD_REQUEST, "missing role");
        };
        let Some(role) = body.get("role").and_then(Value::as_str) else {
            return error(StatusCode::BAD_REQUEST, "missing role");
        };
        let Some(jwt) = body
            .get("jwt")
            .and_then(Value::as_str)
            .filter(|j| !j.is_empty())
        else {
            return error(StatusCode::BAD_REQUEST, "missing jwt");
        };
        let Some((_, expected)) = config.kubernetes.iter().find(|(r, _)| r == role) else {
            return error(
                StatusCode::BAD_REQUEST,
                &format!("invalid role name \"{role}\""),
            );
        };
        if expected != jwt {
            return error(StatusCode::FORBIDDEN, "permission denied");
        }
        let meta = json!({
            "role": role,
            "service_account_name": "default",
            "service_account_namespace": "default",
            "service_account_secret_name": "",
            "service_account_uid": "00000000-0000-4000-8000-00000000cafe",
        });
        self.logged_in(
            config,
            "auth/kubernetes/login",
            "kubernetes-default-default",
            meta,
            envelope,
        )
    }

    /// `GET auth/token/lookup-self` of an issued token (`None`: not one of them).
    pub(super) fn lookup(&self, token: &str) -> Option<Value> {
        let issued = self.lock();
        let t = issued.get(token)?;
        let remaining = t.expires_at.saturating_duration_since(Instant::now());
        let expire = SystemTime::now() + remaining;
        let created_secs = t
            .created
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        Some(json!({
            "accessor": t.accessor,
            "creation_time": created_secs,
            "creation_ttl": t.creation_ttl.as_secs(),
            "display_name": t.display_name,
            "entity_id": "",
            "expire_time": rfc3339(expire),
            "explicit_max_ttl": 0,
            "id": "[redacted by the double]",
            "issue_time": rfc3339(t.created),
            "meta": t.metadata,
            "num_uses": 0,
            "orphan": true,
            "path": t.path,
            "policies": t.policy.names(),
            "renewable": t.renewable,
            "ttl": remaining.as_secs(),
            "type": "service",
        }))
    }

    /// `POST`/`PUT auth/token/renew-self` (`None`: not an issued token).
    pub(super) fn renew(
        &self,
        token: &str,
        body: &[u8],
        envelope: impl Fn(Value, Vec<String>) -> Value,
    ) -> Option<Response> {
        let mut warnings = Vec::new();
        let granted = {
            let mut issued = self.lock();
            let t = issued.get_mut(token)?;
            if !t.renewable {
                return Some(error(StatusCode::BAD_REQUEST, "lease is not renewable"));
            }
            let increment = serde_json::from_slice::<Value>(body)
                .ok()
                .and_then(|b| b.get("increment").cloned())
                .and_then(|i| match i {
                    Value::Number(n) => n.as_u64().map(Duration::from_secs),
                    Value::String(s) => parse_duration(&s),
                    _ => None,
                })
                .filter(|d| !d.is_zero())
                .unwrap_or(t.creation_ttl);
            let now = Instant::now();
            let limit = (t.created_at + t.max_ttl).saturating_duration_since(now);
            let granted = if increment > limit {
                warnings.push(format!(
                    "TTL of \"{}s\" exceeded the effective max_ttl of \"{}s\"; TTL value is capped accordingly",
                    increment.as_secs(),
                    limit.as_secs()
                ));
                limit
            } else {
                increment
            };
            t.expires_at = now + granted;
            granted
        };
        Some(axum::Json(envelope(self.auth_block(token, granted), warnings)).into_response())
    }
}

/// `"1h"`, `"30m"`, `"45s"`, `"90"` (seconds), as Vault's duration parameters take them.
fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    let (digits, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = digits.parse().ok()?;
    let factor = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return None,
    };
    Some(Duration::from_secs(n * factor))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("1h"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_duration("90"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("x"), None);
    }
}
