//! Vault tokens the source obtains and keeps alive itself: a token file (Vault Agent's
//! sink), AppRole and Kubernetes logins.
//!
//! * The token is obtained on first use: the token file is read and looked up
//!   (`GET auth/token/lookup-self`: its `ttl` and `renewable`), or a login
//!   (`POST auth/<mount>/login`) answers it with `lease_duration` and `renewable`.
//! * At 2/3 of its TTL it is renewed (`POST auth/token/renew-self`), by a task that lives
//!   as long as the source (a `Sources` a `Live` or a cache keeps using) and ends when the
//!   last clone of the source is dropped; a fetch that finds the token past 2/3 of its
//!   TTL renews it first.
//! * A token file's token that may not look itself up (a token created with
//!   `-no-default-policy`: `403` on `lookup-self`) is used as is, as the Vault CLI and
//!   Vault Agent do: its TTL is unknown and the source does not renew it.
//! * When renewal fails, or cannot extend the token any more (its `max_ttl` reached), the
//!   token is obtained again: a new login, or the token file read again (the agent
//!   rewrites it); a token of the source's own login that is given up this way is revoked
//!   (`POST auth/token/revoke-self`), and so is the current one when the last clone of the
//!   source is dropped.
//! * Vault answers a revoked token and a path its policies deny alike (`403 permission
//!   denied`), so a read answered `403` does not simply log in again. A token file is read
//!   again first (a new token there is used at once); otherwise the token is looked up
//!   (`lookup-self`): when that answers, the token is fine and the path is denied by
//!   policy — reported as [`Unauthorized`](crate::ErrorKind::Unauthorized), no new login.
//!   Only a token that looked itself up before and no longer can is known bad; one that
//!   never tried but holds the `default` policy (which allows it unless an operator edited
//!   it) is presumed bad. Either is dropped (revoked when the source's own, in the
//!   background) and a new one obtained, once per token: the read is retried once with
//!   the new token. When that retry is refused too, the new token is taken as one that
//!   may not look itself up (the `default` policy edited, or a standby that does not
//!   know it yet), so one extra login at most, not one per fetch. A token that may not
//!   look itself up cannot be told apart from a revoked one: the denial is reported, and
//!   a new login follows when its renewal fails.
//! * A token given up is replaced in the source first and revoked afterwards, by a task
//!   of its own: no fetch waits for the revocation, and a fetch cancelled (its timeout)
//!   while a new token is obtained leaves the old one in place.
//! * A static token (`VAULT_TOKEN`, [`VaultSource::with_token`](super::VaultSource::with_token))
//!   is used as given, as the `vault` CLI does: its lifecycle is the operator's.
//!
//! No token, secret id or JWT is ever logged, shown in `Debug` or put in an error.

use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex as StdMutex, PoisonError, Weak};
use std::time::{Duration, Instant};

use reqwest::header::HeaderValue;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use crate::error::{ErrorKind, SourceError};
use crate::fetchers::transport::{self, Endpoint};

/// The longest TTL taken from a server (a larger one is read as this: no arithmetic on
/// instants can overflow, whatever a server answers).
const MAX_TTL: Duration = Duration::from_secs(365 * 24 * 3600);

/// A TTL in seconds as the server said it; `None` for 0 (the token does not expire).
fn ttl_of(seconds: u64) -> Option<Duration> {
    (seconds > 0).then(|| Duration::from_secs(seconds).min(MAX_TTL))
}

/// Where the service-account token of a Kubernetes pod is mounted.
pub const KUBERNETES_JWT_PATH: &str = "/var/run/secrets/kubernetes.io/serviceaccount/token";

/// A secret given as a value or as a file to read at each login.
#[derive(Clone)]
pub(crate) enum Credential {
    Value(SecretString),
    File(PathBuf),
}

impl Credential {
    fn read(&self, what: &str) -> Result<SecretString, SourceError> {
        match self {
            Credential::Value(v) => Ok(v.clone()),
            Credential::File(path) => {
                match crate::fetchers::secret_file::read_secret_file(path, what)? {
                    crate::RawValue::Text(s) => Ok(SecretString::from(s.trim().to_owned())),
                    _ => Err(SourceError::new(ErrorKind::Config)
                        .with_message(format!("{what} {} is not UTF-8 text", path.display()))),
                }
            }
        }
    }
}

/// How the token is obtained.
#[derive(Clone)]
pub(crate) enum Method {
    /// A file holding the token (Vault Agent's sink), read again when the token fails.
    TokenFile(PathBuf),
    /// `POST auth/<mount>/login` with `role_id` and `secret_id`.
    AppRole {
        mount: String,
        role_id: String,
        secret_id: Credential,
    },
    /// `POST auth/<mount>/login` with `role` and the pod's service-account `jwt`.
    Kubernetes {
        mount: String,
        role: String,
        jwt: Credential,
    },
}

impl Method {
    fn name(&self) -> String {
        match self {
            Method::TokenFile(path) => format!("the token file {}", path.display()),
            Method::AppRole { mount, .. } => format!("the AppRole login (auth/{mount})"),
            Method::Kubernetes { mount, .. } => format!("the Kubernetes login (auth/{mount})"),
        }
    }
}

/// The token in use.
#[derive(Clone)]
struct Token {
    header: HeaderValue,
    /// When its TTL was last (re)started: obtained or renewed.
    since: Instant,
    /// `None`: it does not expire.
    ttl: Option<Duration>,
    renewable: bool,
    /// What a `403` on `lookup-self` says about the token.
    look_up: LookUp,
    /// Obtained by the source's own login (revoked when given up); a token file's token
    /// belongs to whoever wrote the file.
    owned: bool,
}

/// Whether a token may look itself up (`lookup-self`), as far as the source knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum LookUp {
    /// A lookup answered for it: a refused one now means the token is bad.
    Seen,
    /// Not tried yet, but it holds the `default` (or `root`) policy, which allows it
    /// unless edited: a refused lookup is taken as a bad token, once
    /// ([`Auth::refused_again`] demotes the replacement to [`LookUp::No`]).
    Presumed,
    /// It may not (no `default` policy, or refused though brand-new): a refused lookup
    /// says nothing.
    No,
}

/// What a read answered `403` should do next (see [`Auth::refused`]).
pub(crate) enum Refusal {
    /// The token was bad and is replaced: read once more.
    Retry,
    /// The token is fine, or cannot be told from a bad one: the path is denied. Why, for
    /// the error.
    Denied(String),
}

impl Token {
    fn renew_at(&self) -> Option<Instant> {
        self.ttl.map(|ttl| self.since + ttl * 2 / 3)
    }
    fn expired(&self) -> bool {
        self.ttl.is_some_and(|ttl| self.since.elapsed() >= ttl)
    }
}

/// A managed token, shared by the clones of a source.
pub(crate) struct Auth {
    method: Method,
    token: tokio::sync::Mutex<Option<Token>>,
    /// Dropped with the last clone of the source: the renewal task then ends.
    stop: StdMutex<Option<tokio::sync::oneshot::Sender<()>>>,
    /// Successful obtains (logins or file reads), for tests and logs.
    obtained: std::sync::atomic::AtomicU64,
    /// The connection last used, to revoke the source's own token when it is dropped.
    conn: StdMutex<Option<Conn>>,
}

impl Drop for Auth {
    /// Revokes the token of the source's own login, which nobody can use any more (when a
    /// runtime is there to send the request; best effort).
    fn drop(&mut self) {
        let conn = self
            .conn
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let token = self.token.get_mut().take();
        if let (Some(conn), Some(token)) = (conn, token.filter(|t| t.owned && !t.expired()))
            && tokio::runtime::Handle::try_current().is_ok()
        {
            drop(crate::task::spawn(async move {
                revoke(&conn, &token.header).await;
            }));
        }
    }
}

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VaultAuth")
            .field("method", &self.method.name())
            .finish_non_exhaustive()
    }
}

/// What Vault's login and renew endpoints answer under `auth`.
#[derive(Deserialize)]
struct AuthBlock {
    client_token: String,
    #[serde(default)]
    lease_duration: u64,
    #[serde(default)]
    renewable: bool,
    #[serde(default)]
    policies: Vec<String>,
    #[serde(default)]
    token_policies: Vec<String>,
}

#[derive(Deserialize)]
struct AuthEnvelope {
    auth: Option<AuthBlock>,
}

#[derive(Deserialize)]
struct LookupEnvelope {
    data: Option<LookupData>,
}

#[derive(Deserialize)]
struct LookupData {
    #[serde(default)]
    ttl: u64,
    #[serde(default)]
    renewable: bool,
}

/// What the auth endpoints are sent through: the source's endpoint and namespace.
#[derive(Clone)]
pub(crate) struct Conn {
    pub(crate) endpoint: Endpoint,
    pub(crate) namespace: Option<String>,
}

impl Auth {
    pub(crate) fn new(method: Method) -> Arc<Auth> {
        Arc::new(Auth {
            method,
            token: tokio::sync::Mutex::new(None),
            stop: StdMutex::new(None),
            obtained: Default::default(),
            conn: StdMutex::new(None),
        })
    }

    /// The token to send: the current one, renewed or obtained again first when due.
    pub(crate) async fn header(self: &Arc<Self>, conn: &Conn) -> Result<HeaderValue, SourceError> {
        {
            let mut last = self.conn.lock().unwrap_or_else(PoisonError::into_inner);
            if last.is_none() {
                *last = Some(conn.clone());
            }
        }
        let mut slot = self.token.lock().await;
        match slot.as_ref() {
            Some(t) if !t.expired() && t.renew_at().is_none_or(|at| Instant::now() < at) => {
                return Ok(t.header.clone());
            }
            _ => {}
        }
        // The old token stays in the slot until a new one replaces it: a caller's timeout
        // that drops this future while Vault answers leaves it there, not lost.
        let fresh = match self.refresh(conn, slot.as_ref()).await {
            Ok(fresh) => fresh,
            // Vault could not renew or log in just now, but the token still has time:
            // keep using it (the next fetch, or the renewal task, tries again).
            Err(e) => match slot.as_ref().filter(|t| !t.expired()) {
                Some(old) => return Ok(old.header.clone()),
                None => {
                    *slot = None;
                    return Err(e);
                }
            },
        };
        let header = fresh.header.clone();
        let schedule = fresh.ttl.is_some();
        let old = slot.replace(fresh);
        drop(slot);
        give_up(conn, old, Some(&header));
        if schedule {
            self.start_renewing(conn);
        }
        Ok(header)
    }

    /// Vault answered a read sent with `header` with `403`: decides whether the token is
    /// bad (then it is forgotten, so the retry obtains a new one) or the path is denied
    /// (see the module's documentation). Each token is given up at most once: a second
    /// `403` for a token already replaced retries with the replacement.
    pub(crate) async fn refused(&self, conn: &Conn, header: &HeaderValue) -> Refusal {
        let mut slot = self.token.lock().await;
        let current = match slot.as_ref() {
            Some(t) if t.header == *header => t.clone(),
            // Replaced (or being replaced) meanwhile by another read or the renewal task.
            _ => return Refusal::Retry,
        };
        if let Method::TokenFile(path) = &self.method {
            // The agent may have written a new token: use it at once.
            let on_file = Credential::File(path.clone()).read("VAULT_TOKEN_FILE");
            if on_file.is_ok_and(|t| {
                transport::secret_header("X-Vault-Token", t.expose_secret())
                    .is_ok_and(|h| h != *header)
            }) {
                *slot = None;
                return Refusal::Retry;
            }
        }
        match lookup(conn, header.clone()).await {
            Ok(Some(_)) => {
                if let Some(t) = slot.as_mut() {
                    t.look_up = LookUp::Seen;
                }
                Refusal::Denied(
                    "denied by policy: the token is valid (it looks itself up) but may not read this path"
                        .to_owned(),
                )
            }
            Ok(None) if current.look_up != LookUp::No => {
                tracing::info!(
                    target: "component_model::vault",
                    address = %crate::source_support::redact_url(conn.endpoint.base()),
                    "the Vault token was refused and may no longer look itself up (revoked or expired); obtaining a new one with {}",
                    self.method.name()
                );
                // Revoked in case it is alive after all (its lookup denied by an edited
                // `default` policy); best effort, in the background.
                let dropped = slot.take();
                drop(slot);
                give_up(conn, dropped, None);
                Refusal::Retry
            }
            Ok(None) => Refusal::Denied(match self.method {
                Method::TokenFile(_) => "the token may not look itself up (no `default` policy), so a denied path and a revoked token look alike; the token file holds the same token".to_owned(),
                _ => "the token may not look itself up (no `default` policy), so a denied path and a revoked token look alike; a new login follows when its renewal fails".to_owned(),
            }),
            Err(e) => Refusal::Denied(format!(
                "whether the token is still valid could not be checked: {e}"
            )),
        }
    }

    /// The read retried with the token sent as `header` — obtained because the one before
    /// was judged bad — was refused too. A token presumed able to look itself up is then
    /// taken as one that may not (the `default` policy edited, or a standby that does not
    /// know it yet): its later `403`s are denials, not one more login per fetch.
    pub(crate) async fn refused_again(&self, header: &HeaderValue) {
        let mut slot = self.token.lock().await;
        if let Some(t) = slot
            .as_mut()
            .filter(|t| t.header == *header && t.look_up == LookUp::Presumed)
        {
            tracing::debug!(
                target: "component_model::vault",
                "a newly obtained Vault token was refused too: it is taken as one that may not look itself up"
            );
            t.look_up = LookUp::No;
        }
    }

    pub(crate) fn method(&self) -> &Method {
        &self.method
    }

    /// Successful logins or token-file reads so far.
    pub(crate) fn obtained(&self) -> u64 {
        self.obtained.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// `old` renewed when it can be, else a new token (the caller stores it, then gives
    /// `old` up with [`give_up`]).
    async fn refresh(&self, conn: &Conn, old: Option<&Token>) -> Result<Token, SourceError> {
        if let Some(old) = old.filter(|t| t.renewable && !t.expired()) {
            match renew(conn, old).await {
                Ok(t) => return Ok(t),
                Err(e) => tracing::warn!(
                    target: "component_model::vault",
                    address = %crate::source_support::redact_url(conn.endpoint.base()),
                    error = %e,
                    "renewing the Vault token failed; obtaining a new one with {}",
                    self.method.name()
                ),
            }
        }
        let token = self.obtain(conn).await?;
        self.obtained
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(token)
    }

    async fn obtain(&self, conn: &Conn) -> Result<Token, SourceError> {
        let failed = |e: SourceError| {
            let kind = match e.kind() {
                // A refused login is a credentials problem whatever the status says
                // (Vault answers a wrong AppRole secret id with 400).
                ErrorKind::Other | ErrorKind::NotFound => ErrorKind::Unauthorized,
                k => k,
            };
            SourceError::new(kind).with_message(format!(
                "{} failed: {}",
                self.method.name(),
                e.message().unwrap_or(kind.as_str())
            ))
        };
        match &self.method {
            Method::TokenFile(path) => {
                let token = Credential::File(path.clone())
                    .read("VAULT_TOKEN_FILE")
                    .map_err(failed)?;
                let header = transport::secret_header("X-Vault-Token", token.expose_secret())
                    .map_err(failed)?;
                match lookup(conn, header.clone()).await.map_err(failed)? {
                    Some(token) => Ok(token),
                    // A token without the `default` policy may not look itself up: used as
                    // is (TTL unknown, not renewed by the source), as the Vault CLI does.
                    None => {
                        tracing::debug!(
                            target: "component_model::vault",
                            "the token of {} may not look itself up (403): used as is, not renewed",
                            self.method.name()
                        );
                        Ok(Token {
                            header,
                            since: Instant::now(),
                            ttl: None,
                            renewable: false,
                            look_up: LookUp::No,
                            owned: false,
                        })
                    }
                }
            }
            Method::AppRole {
                mount,
                role_id,
                secret_id,
            } => {
                let secret_id = secret_id.read("VAULT_SECRET_ID_FILE").map_err(failed)?;
                let body = serde_json::json!({
                    "role_id": role_id,
                    "secret_id": secret_id.expose_secret(),
                });
                login(conn, mount, body).await.map_err(failed)
            }
            Method::Kubernetes { mount, role, jwt } => {
                let jwt = jwt.read("the service-account token").map_err(failed)?;
                let body = serde_json::json!({ "role": role, "jwt": jwt.expose_secret() });
                login(conn, mount, body).await.map_err(failed)
            }
        }
    }

    /// Starts the renewal task once (when a runtime is there to run it).
    fn start_renewing(self: &Arc<Self>, conn: &Conn) {
        let mut stop = self.stop.lock().unwrap_or_else(PoisonError::into_inner);
        if stop.is_some() || tokio::runtime::Handle::try_current().is_err() {
            return;
        }
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        *stop = Some(tx);
        crate::task::spawn(renew_loop(Arc::downgrade(self), conn.clone(), rx));
    }
}

/// Renews (or obtains again) the token at 2/3 of its TTL until the source is dropped.
async fn renew_loop(weak: Weak<Auth>, conn: Conn, mut stopped: tokio::sync::oneshot::Receiver<()>) {
    loop {
        let due = {
            let Some(auth) = weak.upgrade() else { return };
            let slot = auth.token.lock().await;
            let due = slot.as_ref().and_then(Token::renew_at);
            if due.is_none() {
                // No token to keep (it does not expire, or obtaining it failed): the next
                // fetch that obtains one starts a new task.
                *auth.stop.lock().unwrap_or_else(PoisonError::into_inner) = None;
                return;
            }
            due
        };
        let Some(due) = due else { return };
        tokio::select! {
            _ = &mut stopped => return,
            () = tokio::time::sleep_until(due.into()) => {}
        }
        let Some(auth) = weak.upgrade() else { return };
        let mut slot = auth.token.lock().await;
        // A fetch may have renewed it meanwhile.
        if slot
            .as_ref()
            .and_then(Token::renew_at)
            .is_some_and(|at| Instant::now() < at)
        {
            continue;
        }
        match auth.refresh(&conn, slot.as_ref()).await {
            Ok(t) => {
                let header = t.header.clone();
                let old = slot.replace(t);
                drop(slot);
                give_up(&conn, old, Some(&header));
            }
            Err(e) => {
                tracing::warn!(
                    target: "component_model::vault",
                    error = %e,
                    "the Vault token could not be renewed or obtained again; trying again in a few seconds"
                );
                // A token with time left is kept; without one the loop ends at its next
                // look and the next fetch obtains one.
                if slot.as_ref().is_some_and(Token::expired) {
                    *slot = None;
                }
                let left = slot
                    .as_ref()
                    .and_then(|t| t.ttl.map(|ttl| ttl.saturating_sub(t.since.elapsed())));
                drop(slot);
                drop(auth);
                let pause = left.map_or(RETRY_PAUSE, |l| {
                    (l / 4).clamp(Duration::from_millis(100), RETRY_PAUSE)
                });
                tokio::select! {
                    _ = &mut stopped => return,
                    () = tokio::time::sleep(pause) => {}
                }
                // Due again at once: the loop's renewal-time check passes.
                continue;
            }
        }
    }
}

/// The longest pause between failed renewals.
const RETRY_PAUSE: Duration = Duration::from_secs(5);

/// `POST path` with a JSON body (no token), the namespace header; the envelope's body.
async fn post(
    conn: &Conn,
    segments: &[&str],
    token: Option<&HeaderValue>,
    body: &serde_json::Value,
    what: &str,
) -> Result<Vec<u8>, SourceError> {
    let url = conn.endpoint.url(segments, &[])?;
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    let (status, body) = conn
        .endpoint
        .send_anonymous(reqwest::Method::POST, &url, |r| {
            let r = r
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(bytes);
            let r = match token {
                Some(t) => r.header("X-Vault-Token", t.clone()),
                None => r,
            };
            match &conn.namespace {
                Some(ns) => r.header("X-Vault-Namespace", ns.as_str()),
                None => r,
            }
        })
        .await?;
    if !status.is_success() {
        return Err(status_error(status, &body, what));
    }
    Ok(body)
}

fn status_error(status: reqwest::StatusCode, body: &[u8], what: &str) -> SourceError {
    #[derive(Deserialize)]
    struct Errors {
        #[serde(default)]
        errors: Vec<String>,
    }
    let errors = serde_json::from_slice::<Errors>(body)
        .map(|e| e.errors.join("; "))
        .unwrap_or_default();
    let mut message = format!("HTTP {status} from vault for {what}");
    if !errors.is_empty() {
        message.push_str(&format!(": {errors}"));
    }
    SourceError::new(transport::status_kind(status)).with_message(message)
}

async fn login(conn: &Conn, mount: &str, body: serde_json::Value) -> Result<Token, SourceError> {
    let bytes = post(
        conn,
        &["v1", "auth", mount, "login"],
        None,
        &body,
        "the login",
    )
    .await?;
    token_from_auth(&bytes, "the login")
}

async fn renew(conn: &Conn, old: &Token) -> Result<Token, SourceError> {
    let bytes = post(
        conn,
        &["v1", "auth", "token", "renew-self"],
        Some(&old.header),
        &serde_json::json!({}),
        "renew-self",
    )
    .await?;
    let mut token = token_from_auth(&bytes, "renew-self")?;
    // The renewal's policy list tells no more than the login's did.
    token.look_up = old.look_up;
    token.owned = old.owned;
    // A renewal that no longer extends the token (its max TTL reached) is a failure:
    // the caller logs in again instead of renewing a dying token every few seconds. A
    // token that had a TTL granted `0` (less than a second left, rounded down) is one
    // too, not a token that no longer expires.
    if token.ttl.is_some_and(|ttl| ttl < Duration::from_secs(2))
        || (token.ttl.is_none() && old.ttl.is_some())
    {
        return Err(SourceError::new(ErrorKind::Unauthorized)
            .with_message("the token is at its maximum TTL and cannot be renewed further"));
    }
    Ok(token)
}

fn token_from_auth(bytes: &[u8], what: &str) -> Result<Token, SourceError> {
    let envelope: AuthEnvelope = serde_json::from_slice(bytes).map_err(|e| {
        SourceError::new(ErrorKind::Decode).with_message(format!(
            "vault's answer to {what} is not a response envelope: {}",
            transport::json_error(&e)
        ))
    })?;
    let auth = envelope.auth.ok_or_else(|| {
        SourceError::new(ErrorKind::Decode)
            .with_message(format!("vault's answer to {what} has no `auth` block"))
    })?;
    let header = transport::secret_header("X-Vault-Token", &auth.client_token)?;
    // Presumed only: the `default` policy can be edited not to allow `lookup-self`.
    let look_up = if auth
        .policies
        .iter()
        .chain(&auth.token_policies)
        .any(|p| p == "default" || p == "root")
    {
        LookUp::Presumed
    } else {
        LookUp::No
    };
    Ok(Token {
        header,
        since: Instant::now(),
        ttl: ttl_of(auth.lease_duration),
        renewable: auth.renewable,
        look_up,
        owned: true,
    })
}

/// Revokes `old` — replaced by the token sent as `current` (`None`: dropped as bad) —
/// when it is the source's own, still alive and not `current` (renewed): best effort, by
/// a task of its own, so that no fetch waits for it (and none can cancel it halfway).
fn give_up(conn: &Conn, old: Option<Token>, current: Option<&HeaderValue>) {
    let Some(old) = old.filter(|t| t.owned && !t.expired() && Some(&t.header) != current) else {
        return;
    };
    if tokio::runtime::Handle::try_current().is_err() {
        return;
    }
    let conn = conn.clone();
    drop(crate::task::spawn(async move {
        revoke(&conn, &old.header).await;
    }));
}

/// `POST auth/token/revoke-self`: gives up a token of the source's own login. Best effort:
/// a failure is logged (a token left alive expires at its TTL).
async fn revoke(conn: &Conn, header: &HeaderValue) {
    if let Err(e) = post(
        conn,
        &["v1", "auth", "token", "revoke-self"],
        Some(header),
        &serde_json::json!({}),
        "revoke-self",
    )
    .await
    {
        tracing::debug!(
            target: "component_model::vault",
            error = %e,
            "revoking a Vault token the source gave up failed; it expires at its TTL"
        );
    }
}

/// The TTL and renewability of a token (read from a file); `None` when Vault answers
/// `403`: the token is bad or may not look itself up.
async fn lookup(conn: &Conn, header: HeaderValue) -> Result<Option<Token>, SourceError> {
    let url = conn
        .endpoint
        .url(&["v1", "auth", "token", "lookup-self"], &[])?;
    let (status, body) = conn
        .endpoint
        .send_anonymous(reqwest::Method::GET, &url, |r| {
            let r = r.header("X-Vault-Token", header.clone());
            match &conn.namespace {
                Some(ns) => r.header("X-Vault-Namespace", ns.as_str()),
                None => r,
            }
        })
        .await?;
    if status.as_u16() == 403 {
        return Ok(None);
    }
    if !status.is_success() {
        return Err(status_error(status, &body, "lookup-self"));
    }
    let envelope: LookupEnvelope = serde_json::from_slice(&body).map_err(|e| {
        SourceError::new(ErrorKind::Decode).with_message(format!(
            "vault's answer to lookup-self is not a response envelope: {}",
            transport::json_error(&e)
        ))
    })?;
    let data = envelope.data.ok_or_else(|| {
        SourceError::new(ErrorKind::Decode).with_message("vault's lookup-self answer has no data")
    })?;
    Ok(Some(Token {
        header,
        since: Instant::now(),
        ttl: ttl_of(data.ttl),
        renewable: data.renewable,
        look_up: LookUp::Seen,
        owned: false,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_server_cannot_make_the_renewal_time_overflow() {
        let t = Token {
            header: HeaderValue::from_static("t"),
            since: Instant::now(),
            ttl: ttl_of(u64::MAX),
            renewable: true,
            look_up: LookUp::Seen,
            owned: false,
        };
        assert!(t.renew_at().is_some());
        assert!(!t.expired());
        assert_eq!(ttl_of(0), None);
    }
}
