//! What the HTTP-based backends (`http`, `consul`, `vault`) share: their reqwest clients
//! (built off the runtime, shared by the process for the system's roots), the runtime their
//! exchanges run on, how transport failures and status codes become [`ErrorKind`]s, and
//! base URLs.

use std::fmt;
use std::future::Future;
use std::time::Duration;

use reqwest::StatusCode;

use crate::error::{ErrorKind, SourceError};
use crate::fetchers::tls::TlsConfig;
use crate::source_support::redact_url;

/// How long one HTTP request (connect, headers and body) may take, unless the source or
/// the field says otherwise.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// The largest response body read by default: 16 MiB. A larger one is refused (from its
/// `Content-Length`) or cut off (while streaming) with [`ErrorKind::TooLarge`], so a
/// server cannot make the process allocate without limit. Per source: `with_max_body`.
pub const DEFAULT_MAX_BODY: usize = 16 * 1024 * 1024;

/// Redirects followed before a request fails (a redirect loop ends here).
pub(crate) const MAX_REDIRECTS: usize = 10;

/// Follows at most [`MAX_REDIRECTS`] redirects, and only within the origin (scheme, host,
/// port) of the first request: reqwest drops `Authorization` and cookies on a cross-host
/// redirect, but not `X-Vault-Token`, `X-Consul-Token` or a source's secret headers, so
/// a redirect elsewhere is refused rather than followed with them.
fn redirect_policy() -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(|attempt| {
        let origin = |u: &reqwest::Url| {
            (
                u.scheme().to_owned(),
                u.host_str().map(str::to_owned),
                u.port_or_known_default(),
            )
        };
        let first = attempt.previous().first().map(origin);
        if attempt.previous().len() > MAX_REDIRECTS {
            let msg = format!("redirected more than {MAX_REDIRECTS} times (a redirect loop?)");
            attempt.error(msg)
        } else if first.is_some_and(|f| f != origin(attempt.url())) {
            let msg = format!(
                "redirected to another origin ({}), refused: the source's credentials would be sent there",
                redact_url(attempt.url().as_str())
            );
            attempt.error(msg)
        } else {
            attempt.follow()
        }
    })
}

/// A reqwest client with the request timeout and redirect limit every backend uses, and
/// the TLS settings when some are given; `direct`: no proxy, whatever `HTTP_PROXY`,
/// `HTTPS_PROXY` or `ALL_PROXY` say (see [`Client::direct`]).
pub(crate) fn client(
    timeout: Duration,
    tls: Option<&TlsConfig>,
    direct: bool,
) -> Result<reqwest::Client, String> {
    let mut builder = reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout)
        .redirect(redirect_policy());
    if direct {
        builder = builder.no_proxy();
    }
    if let Some(tls) = tls {
        builder = builder.tls_backend_preconfigured(tls.client_config()?);
    }
    builder
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {e}"))
}

/// A reqwest client built on first use (so registering a source costs nothing), shared by
/// the clones of a source; or the reason none could be built, reported by each fetch.
///
/// Building one costs milliseconds of CPU (TLS setup: the crypto provider, the system's
/// root certificates) that must not stall the async runtime, so it is built on tokio's
/// blocking pool ([`off_runtime`]); and clients on the system's roots (no [`TlsConfig`])
/// are built once per process for each timeout and shared by every source that uses them
/// (see [`system_roots_client`]), so a hundred sources cost one build.
#[derive(Clone)]
pub(crate) struct Client {
    inner: std::sync::Arc<tokio::sync::OnceCell<Result<reqwest::Client, String>>>,
    pub(crate) timeout: Duration,
    pub(crate) max_body: usize,
    /// TLS settings of the clients this crate builds (not of a caller's client).
    tls: Option<std::sync::Arc<TlsConfig>>,
    /// Whether the clients this crate builds ignore the environment's proxy settings.
    direct: bool,
}

impl Client {
    pub(crate) fn new(timeout: Duration) -> Self {
        Client {
            inner: Default::default(),
            timeout,
            max_body: DEFAULT_MAX_BODY,
            tls: None,
            direct: false,
        }
    }

    pub(crate) fn with_client(client: reqwest::Client, timeout: Duration) -> Self {
        Client {
            inner: std::sync::Arc::new(tokio::sync::OnceCell::new_with(Some(Ok(client)))),
            timeout,
            max_body: DEFAULT_MAX_BODY,
            tls: None,
            direct: false,
        }
    }

    /// The same client with another timeout (a new reqwest client) and the same body limit,
    /// TLS and proxy settings.
    pub(crate) fn with_timeout(&self, timeout: Duration) -> Self {
        Client {
            max_body: self.max_body,
            tls: self.tls.clone(),
            direct: self.direct,
            ..Client::new(timeout)
        }
    }

    /// The same limits with TLS settings (a new reqwest client, built on first use).
    pub(crate) fn with_tls(&self, tls: TlsConfig) -> Self {
        Client {
            max_body: self.max_body,
            tls: Some(std::sync::Arc::new(tls)),
            direct: self.direct,
            ..Client::new(self.timeout)
        }
    }

    /// The same limits, the clients this crate builds going straight to the server, never
    /// through the proxy of `HTTP_PROXY`/`HTTPS_PROXY`/`ALL_PROXY`: for the instance
    /// metadata and local identity endpoints of the clouds (169.254.169.254, the ECS and
    /// EKS agents, App Service's local endpoint), which are link-local or on the host and
    /// so not reachable through a proxy — and which must not be: a proxy elsewhere in the
    /// cloud would answer with the credentials of *its* instance. The Go metadata client
    /// and the AWS SDK for Rust go direct too.
    #[cfg_attr(
        not(any(feature = "aws", feature = "azure", feature = "gcp")),
        allow(dead_code)
    )]
    pub(crate) fn direct(&self) -> Self {
        Client {
            max_body: self.max_body,
            tls: self.tls.clone(),
            direct: true,
            ..Client::new(self.timeout)
        }
    }

    /// The same client with a reqwest client of the caller's, keeping the limits.
    pub(crate) fn replaced_by(&self, client: reqwest::Client) -> Self {
        Client {
            max_body: self.max_body,
            ..Client::with_client(client, self.timeout)
        }
    }

    /// The limits responses are read with.
    pub(crate) fn limits(&self) -> Limits {
        Limits {
            timeout: self.timeout,
            max_body: self.max_body,
        }
    }

    /// The reqwest client, built on the first call (off the runtime's workers). A build
    /// that failed for a reason that will not change (the TLS settings, the builder
    /// refusing them) is kept and reported by every call; one that could not run (the
    /// blocking pool gone, as during a runtime's shutdown) or found no system roots is
    /// not: the next call tries again.
    pub(crate) async fn get(&self) -> Result<&reqwest::Client, SourceError> {
        let (timeout, tls, direct) = (self.timeout, self.tls.clone(), self.direct);
        self.inner
            .get_or_try_init(|| async move {
                match tls {
                    None => system_roots_client(timeout, direct).await.map(Ok),
                    Some(tls) => {
                        // Here, not on the blocking thread: the caller's subscriber and
                        // span see it.
                        if tls.skips_verify() {
                            tracing::warn!(
                                "TLS verification is OFF for this source (VAULT_SKIP_VERIFY / CONSUL_HTTP_SSL_VERIFY=false / `danger_skip_verify`): anyone on the network path can read its token and secrets"
                            );
                        }
                        // The outer error: the build did not run (not kept); the inner
                        // one: it ran and failed (kept).
                        off_runtime(move || Ok(client(timeout, Some(&tls), direct))).await
                    }
                }
            })
            .await
            .map_err(|e| SourceError::new(ErrorKind::Config).with_message(e))?
            .as_ref()
            .map_err(|e| SourceError::new(ErrorKind::Config).with_message(e.clone()))
    }
}

/// The process's client on the system's roots for `timeout` (and `direct`, see
/// [`Client::direct`]): built once (off the runtime), then shared. A failed build is not
/// kept: the next fetch tries again.
async fn system_roots_client(timeout: Duration, direct: bool) -> Result<reqwest::Client, String> {
    type Cell = std::sync::Arc<tokio::sync::OnceCell<reqwest::Client>>;
    type Clients = Vec<((Duration, bool), Cell)>;
    static CLIENTS: std::sync::Mutex<Clients> = std::sync::Mutex::new(Vec::new());
    let key = (timeout, direct);
    let cell = {
        let mut clients = CLIENTS
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match clients.iter().find(|(k, _)| *k == key) {
            Some((_, cell)) => cell.clone(),
            None => {
                let cell = Cell::default();
                clients.push((key, cell.clone()));
                cell
            }
        }
    };
    cell.get_or_try_init(|| off_runtime(move || client(timeout, None, direct)))
        .await
        .cloned()
}

/// Runs `build` on tokio's blocking pool when called on a runtime (its CPU time then
/// stalls no worker), else here.
pub(crate) async fn off_runtime<T: Send + 'static>(
    build: impl FnOnce() -> Result<T, String> + Send + 'static,
) -> Result<T, String> {
    match tokio::runtime::Handle::try_current() {
        Ok(runtime) => crate::task::spawn_blocking(&runtime, build)
            .await
            .unwrap_or_else(|e| Err(format!("building the HTTP client failed: {e}"))),
        Err(_) => build(),
    }
}

/// A server a Consul or Vault backend talks to: the client, the base URL, the secret token
/// header, and the reason a setting was invalid (reported by every request, never a panic).
#[cfg_attr(not(any(feature = "consul", feature = "vault")), allow(dead_code))]
#[derive(Clone)]
pub(crate) struct Endpoint {
    client: Client,
    base: String,
    token_header: &'static str,
    token: Option<reqwest::header::HeaderValue>,
    invalid: Option<String>,
}

#[cfg_attr(not(any(feature = "consul", feature = "vault")), allow(dead_code))]
impl Endpoint {
    /// `base` (a URL, or `host:port` with `default_scheme`), sending tokens in `token_header`.
    pub(crate) fn new(base: &str, default_scheme: &str, token_header: &'static str) -> Self {
        Endpoint {
            client: Client::new(DEFAULT_REQUEST_TIMEOUT),
            base: base_url(base, default_scheme),
            token_header,
            token: None,
            invalid: None,
        }
    }

    pub(crate) fn base(&self) -> &str {
        &self.base
    }

    pub(crate) fn has_token(&self) -> bool {
        self.token.is_some()
    }

    pub(crate) fn set_token(&mut self, token: &str) {
        match secret_header(self.token_header, token) {
            Ok(v) => self.token = Some(v),
            Err(e) => self.invalid = e.message().map(str::to_owned),
        }
    }

    pub(crate) fn set_timeout(&mut self, timeout: Duration) {
        self.client = self.client.with_timeout(timeout);
    }

    #[cfg_attr(not(feature = "vault"), allow(dead_code))]
    pub(crate) fn clear_token(&mut self) {
        self.token = None;
    }

    pub(crate) fn set_tls(&mut self, tls: TlsConfig) {
        self.client = self.client.with_tls(tls);
    }

    /// Makes every request fail with `why` (a setting that cannot be used).
    pub(crate) fn set_invalid(&mut self, why: String) {
        self.invalid = Some(why);
    }

    pub(crate) fn set_client(&mut self, client: reqwest::Client) {
        self.client = self.client.replaced_by(client);
    }

    pub(crate) fn set_max_body(&mut self, bytes: usize) {
        self.client.max_body = bytes;
    }

    /// The base URL joined with `segments` and `query` (see [`join_url`]).
    pub(crate) fn url(
        &self,
        segments: &[&str],
        query: &[(&str, &str)],
    ) -> Result<reqwest::Url, SourceError> {
        join_url(&self.base, segments, query)
    }

    /// Sends `method url` with the token (and what `extra` adds); the status and body.
    /// The client's timeout.
    #[cfg_attr(not(feature = "consul"), allow(dead_code))]
    pub(crate) fn timeout(&self) -> Duration {
        self.client.timeout
    }

    /// Like [`Endpoint::send`], with the response headers.
    #[cfg_attr(not(feature = "consul"), allow(dead_code))]
    pub(crate) async fn send_full(
        &self,
        method: reqwest::Method,
        url: &reqwest::Url,
        extra: impl FnOnce(reqwest::RequestBuilder) -> reqwest::RequestBuilder,
    ) -> Result<(StatusCode, reqwest::header::HeaderMap, Vec<u8>), SourceError> {
        let request = self.request(method, url, true).await?;
        send(extra(request), url.as_str(), self.client.limits()).await
    }

    /// Like [`Endpoint::send`], without the source's own token (`extra` adds what it needs).
    #[cfg_attr(not(feature = "vault"), allow(dead_code))]
    pub(crate) async fn send_anonymous(
        &self,
        method: reqwest::Method,
        url: &reqwest::Url,
        extra: impl FnOnce(reqwest::RequestBuilder) -> reqwest::RequestBuilder,
    ) -> Result<(StatusCode, Vec<u8>), SourceError> {
        let request = self.request(method, url, false).await?;
        let (status, _, body) = send(extra(request), url.as_str(), self.client.limits()).await?;
        Ok((status, body))
    }

    pub(crate) async fn send(
        &self,
        method: reqwest::Method,
        url: &reqwest::Url,
        extra: impl FnOnce(reqwest::RequestBuilder) -> reqwest::RequestBuilder,
    ) -> Result<(StatusCode, Vec<u8>), SourceError> {
        let request = self.request(method, url, true).await?;
        let (status, _, body) = send(extra(request), url.as_str(), self.client.limits()).await?;
        Ok((status, body))
    }

    /// `method url` on the client, with the source's token when `with_token`; the reason
    /// a setting was invalid instead.
    async fn request(
        &self,
        method: reqwest::Method,
        url: &reqwest::Url,
        with_token: bool,
    ) -> Result<reqwest::RequestBuilder, SourceError> {
        if let Some(why) = &self.invalid {
            return Err(SourceError::new(ErrorKind::Config).with_message(why.clone()));
        }
        let mut request = self.client.get().await?.request(method, url.clone());
        if let Some(token) = self.token.as_ref().filter(|_| with_token) {
            request = request.header(self.token_header, token.clone());
        }
        Ok(request)
    }
}

impl fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Endpoint")
            .field("address", &redact_url(&self.base))
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("timeout", &self.client.timeout)
            .field("max_body", &self.client.max_body)
            .finish()
    }
}

/// The kind of error a non-success status means.
pub(crate) fn status_kind(status: StatusCode) -> ErrorKind {
    match status.as_u16() {
        404 | 410 => ErrorKind::NotFound,
        401 | 403 | 407 => ErrorKind::Unauthorized,
        408 | 429 | 500..=599 => ErrorKind::Unavailable,
        _ => ErrorKind::Other,
    }
}

/// How a response is read: within `timeout`, at most `max_body` bytes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub(crate) timeout: Duration,
    pub(crate) max_body: usize,
}

/// The innermost error of `e`'s `source()` chain, as text: what actually happened
/// ("Connection refused (os error 111)", "dns error: ...").
pub(crate) fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut current = e;
    while let Some(next) = current.source() {
        current = next;
    }
    current.to_string()
}

/// A transport failure (no status received, or the body broke off) as a [`SourceError`];
/// `url` is shown with any password redacted, with the root cause of the failure; the
/// reqwest error is kept as the cause, without its URL.
pub(crate) fn transport_error(
    e: reqwest::Error,
    url: &str,
    limits: Limits,
    reading_body: bool,
) -> SourceError {
    let url = redact_url(url);
    let within = crate::error::humanize(limits.timeout);
    // A failed TLS check says which one, whenever it surfaces (a client certificate the
    // server refuses arrives after the handshake, with TLS 1.3).
    let root = super::tls::explain(&e).unwrap_or_else(|| root_cause(&e));
    let (kind, message) = if e.is_timeout() && reading_body {
        (
            ErrorKind::Timeout,
            format!("the response body from {url} did not finish arriving within {within}"),
        )
    } else if e.is_timeout() {
        (
            ErrorKind::Timeout,
            format!("no response from {url} within {within}"),
        )
    } else if e.is_redirect() {
        (ErrorKind::Other, format!("{url}: {root}"))
    } else if e.is_connect() {
        let why = super::tls::explain(&e).unwrap_or(root);
        (
            ErrorKind::Unavailable,
            format!("cannot connect to {url}: {why}"),
        )
    } else if reading_body || e.is_body() || e.is_decode() {
        (
            ErrorKind::Unavailable,
            format!("the response body from {url} broke off before it was complete: {root}"),
        )
    } else if e.is_builder() {
        (ErrorKind::Config, format!("invalid request URL {url}"))
    } else {
        (
            ErrorKind::Unavailable,
            format!("request to {url} failed: {root}"),
        )
    };
    // The message says it all; the error stays reachable as the cause, without its URL.
    SourceError::new(kind)
        .with_message(message)
        .with_cause(Quiet(e.without_url()))
}

/// Whether `e` (made by [`transport_error`]) is a failure to connect, a connect timeout
/// included (which [`transport_error`] calls a timeout): etcd then tries its next endpoint.
#[cfg(feature = "etcd")]
pub(crate) fn failed_to_connect(e: &SourceError) -> bool {
    e.cause()
        .and_then(|c| c.downcast_ref::<Quiet>())
        .is_some_and(|q| q.0.is_connect())
}

/// A reqwest error kept as a cause whose text is already in the message: it displays as
/// nothing (a field error then shows no cause text), and its chain stays reachable through
/// `source()`.
struct Quiet(reqwest::Error);

impl fmt::Debug for Quiet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for Quiet {
    fn fmt(&self, _: &mut fmt::Formatter<'_>) -> fmt::Result {
        Ok(())
    }
}

impl std::error::Error for Quiet {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}

/// "response larger than 16 MiB from <url>".
fn too_large(url: &str, limits: Limits, announced: Option<u64>) -> SourceError {
    let announced = match announced {
        Some(n) => format!(" (it announced {n} bytes)"),
        None => String::new(),
    };
    SourceError::new(ErrorKind::TooLarge).with_message(format!(
        "response larger than {} from {}{announced}; raise the limit with `with_max_body`",
        crate::error::bytes(limits.max_body as u64),
        redact_url(url)
    ))
}

/// What [`send`] answers: the status, the headers and the body.
type Exchange = (StatusCode, reqwest::header::HeaderMap, Vec<u8>);

/// Sends `request` and reads the body through the size bound: a `Content-Length` over
/// `max_body` is refused before reading, a longer stream is cut off at the limit.
///
/// The exchange runs on [`http_runtime`], threads of its own, and the caller waits for it
/// on its runtime, at most `timeout` (and a grace for reqwest's own timeout to tell what
/// was late); it is aborted when the caller gives up. A server can make hyper's connection
/// task parse without end — a flood of interim `100 Continue` responses, thousands in each
/// read, holds the thread that polls it for seconds per poll — and on the caller's runtime
/// that held a worker, and the timers with it: a field's 2 s deadline was met after 5–7 s.
pub(crate) async fn send(
    request: reqwest::RequestBuilder,
    url: &str,
    limits: Limits,
) -> Result<Exchange, SourceError> {
    crate::metrics::round_trip();
    off_caller(exchange(request, url.to_owned(), limits), url, limits).await
}

/// Sends `request` and answers its status once the response's head arrived; the
/// response is dropped unread (a preflight's `HEAD`, or a `GET` whose body must not be
/// read). Runs on [`http_runtime`] as [`send`] does, for the same reason: a hostile
/// server's flood must not hold the caller's timers.
#[cfg(feature = "http")]
pub(crate) async fn send_for_status(
    request: reqwest::RequestBuilder,
    url: &str,
    limits: Limits,
) -> Result<StatusCode, SourceError> {
    crate::metrics::round_trip();
    let owned = url.to_owned();
    let work = async move {
        let response = request
            .send()
            .await
            .map_err(|e| transport_error(e, &owned, limits, false))?;
        Ok(response.status())
    };
    off_caller(work, url, limits).await
}

/// Runs `work` (one exchange with the server at `url`) on [`http_runtime`], waiting for
/// it at most `limits.timeout` and a grace; aborted when the caller gives up.
async fn off_caller<T: Send + 'static>(
    work: impl Future<Output = Result<T, SourceError>> + Send + 'static,
    url: &str,
    limits: Limits,
) -> Result<T, SourceError> {
    // The caller's subscriber and span go along: what reqwest and hyper log while sending
    // (connecting, the TLS handshake, the pool) reaches the caller's subscriber under the
    // field's span. hyper's connection task (spawned by hyper) logs to the global one.
    let work = tracing::instrument::WithSubscriber::with_current_subscriber(
        tracing::Instrument::instrument(work, tracing::Span::current()),
    );
    // Not counted among the crate's tasks (`crate::task`): it lives exactly as long as its
    // caller waits, which aborts it when it gives up, like hyper's own tasks under it.
    let task = match http_runtime() {
        Some(runtime) => runtime.spawn(work),
        None => tokio::spawn(work),
    };
    let _abort = AbortOnDrop(task.abort_handle());
    let within = limits.timeout.saturating_add(TIMEOUT_GRACE);
    match tokio::time::timeout(within, task).await {
        Ok(Ok(answer)) => answer,
        Ok(Err(e)) => Err(
            SourceError::new(ErrorKind::Unavailable).with_message(format!(
                "the request to {} ended without an answer: {e}",
                redact_url(url)
            )),
        ),
        Err(_) => Err(SourceError::new(ErrorKind::Timeout).with_message(format!(
            "no complete response from {} within {}",
            redact_url(url),
            crate::error::humanize(limits.timeout)
        ))),
    }
}

/// How much longer than its timeout [`send`] waits for an exchange: reqwest's own timeout,
/// which says whether the head or the body was late, normally ends it first.
const TIMEOUT_GRACE: Duration = Duration::from_millis(250);

/// The runtime every HTTP exchange of this crate runs on: [`HTTP_THREADS`] threads of its
/// own (`component-model-http`), started on first use, for the life of the process; `None`
/// when none could be started (exchanges then run on the caller's runtime). Its
/// connections outlive the caller's runtimes (a runtime per test, or per `block_on`, no
/// longer leaves dead connections in a client's pool).
fn http_runtime() -> Option<&'static tokio::runtime::Handle> {
    static RUNTIME: std::sync::OnceLock<Option<tokio::runtime::Runtime>> =
        std::sync::OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(HTTP_THREADS)
                .thread_name("component-model-http")
                .enable_all()
                .build()
                .ok()
        })
        .as_ref()
        .map(tokio::runtime::Runtime::handle)
}

/// The threads of [`http_runtime`]: two, so one held by a hostile server's connection (a
/// flood hyper parses for seconds per poll) leaves the other to every other source.
const HTTP_THREADS: usize = 2;

/// Aborts a task when dropped (its caller gave up).
struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The exchange of [`send`].
async fn exchange(
    request: reqwest::RequestBuilder,
    url: String,
    limits: Limits,
) -> Result<Exchange, SourceError> {
    let url = url.as_str();
    let mut response = request
        .send()
        .await
        .map_err(|e| transport_error(e, url, limits, false))?;
    let status = response.status();
    let headers = response.headers().clone();
    let announced = response.content_length();
    if let Some(n) = announced
        && n > limits.max_body as u64
    {
        return Err(too_large(url, limits, Some(n)));
    }
    let mut body = Vec::with_capacity(announced.unwrap_or(0) as usize);
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| transport_error(e, url, limits, true))?
    {
        if body.len() + chunk.len() > limits.max_body {
            return Err(too_large(url, limits, None));
        }
        body.extend_from_slice(&chunk);
    }
    Ok((status, headers, body))
}

#[cfg_attr(
    not(any(feature = "consul", feature = "vault", feature = "etcd")),
    allow(dead_code)
)]
/// `addr` as a base URL without a trailing `/`: `host:port` gets `default_scheme://`.
pub(crate) fn base_url(addr: &str, default_scheme: &str) -> String {
    let addr = addr.trim().trim_end_matches('/');
    if addr.contains("://") {
        addr.to_owned()
    } else {
        format!("{default_scheme}://{addr}")
    }
}

#[cfg_attr(
    not(any(feature = "consul", feature = "vault", feature = "etcd")),
    allow(dead_code)
)]
/// `base` joined with `segments` (each percent-encoded as a path segment, `/` inside a
/// segment list kept as separators) and `query` pairs.
pub(crate) fn join_url(
    base: &str,
    segments: &[&str],
    query: &[(&str, &str)],
) -> Result<reqwest::Url, SourceError> {
    let mut url = reqwest::Url::parse(base).map_err(|e| {
        SourceError::new(ErrorKind::Config)
            .with_message(format!("invalid address {}: {e}", redact_url(base)))
    })?;
    {
        let mut path = url.path_segments_mut().map_err(|()| {
            SourceError::new(ErrorKind::Config)
                .with_message(format!("{} cannot be a base URL", redact_url(base)))
        })?;
        path.pop_if_empty();
        for segment in segments {
            for part in segment.split('/').filter(|p| !p.is_empty()) {
                path.push(part);
            }
        }
    }
    if !query.is_empty() {
        let mut pairs = url.query_pairs_mut();
        for (k, v) in query {
            if v.is_empty() {
                pairs.append_key_only(k);
            } else {
                pairs.append_pair(k, v);
            }
        }
    }
    Ok(url)
}

/// A JSON parse error without any of the input: syntax errors say where, structure errors
/// say what was missing or wrong by name only.
pub(crate) fn json_error(e: &serde_json::Error) -> String {
    use serde_json::error::Category;
    match e.classify() {
        Category::Syntax | Category::Eof | Category::Io => e.to_string(),
        Category::Data => {
            let text = e.to_string();
            if text.starts_with("missing field") || text.starts_with("unknown field") {
                text
            } else {
                format!(
                    "unexpected JSON structure at line {} column {}",
                    e.line(),
                    e.column()
                )
            }
        }
    }
}

/// A header value marked sensitive (never shown in reqwest's `Debug`), or a config error
/// naming only the header.
pub(crate) fn secret_header(
    name: &str,
    value: &str,
) -> Result<reqwest::header::HeaderValue, SourceError> {
    let mut v = reqwest::header::HeaderValue::from_str(value).map_err(|_| {
        SourceError::new(ErrorKind::Config).with_message(format!(
            "the value for header `{name}` contains characters not allowed in an HTTP header"
        ))
    })?;
    v.set_sensitive(true);
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_build_that_could_not_run_is_tried_again() {
        // A runtime shut down: its blocking pool runs nothing (as during shutdown).
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let gone = runtime.handle().clone();
        runtime.shutdown_background();
        let client = Client::new(Duration::from_secs(1)).with_tls(TlsConfig::new());
        {
            let _on = gone.enter();
            let first = futures::executor::block_on(client.get());
            assert!(first.is_err(), "the build could not run");
        }
        // Off any runtime now: built here, and kept.
        let second = futures::executor::block_on(client.get());
        assert!(second.is_ok(), "{:?}", second.err());
        assert!(futures::executor::block_on(client.get()).is_ok());
    }

    #[test]
    fn base_urls() {
        assert_eq!(base_url("127.0.0.1:8500", "http"), "http://127.0.0.1:8500");
        assert_eq!(
            base_url("https://vault:8200/", "http"),
            "https://vault:8200"
        );
    }

    #[test]
    fn joins_segments_and_encodes_them() {
        let url = join_url(
            "http://h:1/base",
            &["v1", "kv", "app/a b?"],
            &[("dc", "eu"), ("raw", "")],
        )
        .unwrap();
        assert_eq!(url.as_str(), "http://h:1/base/v1/kv/app/a%20b%3F?dc=eu&raw");
    }

    /// Nanoseconds this thread has spent on a CPU (Linux `schedstat`): unlike a clock, it
    /// does not count the time other processes of a busy machine held the CPU.
    fn thread_cpu() -> Option<Duration> {
        let stat = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
        let ns: u64 = stat.split_whitespace().next()?.parse().ok()?;
        Some(Duration::from_nanos(ns))
    }

    /// An HTTP server on a thread of its own (not on the runtime under test) answering `{}`.
    fn http_server() -> String {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            for stream in listener.incoming().take(4) {
                let Ok(mut stream) = stream else { continue };
                let mut seen = Vec::new();
                let mut buf = [0u8; 1024];
                while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => seen.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = stream.write_all(
                    b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}",
                );
            }
        });
        format!("http://{addr}/")
    }

    /// The first request of a source builds its reqwest client (TLS setup, root
    /// certificates: ~20 ms of CPU) on tokio's blocking pool, not on the worker that runs
    /// the fetch: the worker's own CPU time for that request stays small, and a ticker task
    /// on the same single-threaded runtime keeps ticking.
    #[test]
    fn the_first_request_builds_its_client_off_the_runtime() {
        let url = http_server();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let ticking = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
            let ticker = tokio::spawn({
                let ticking = ticking.clone();
                async move {
                    let mut longest = Duration::ZERO;
                    let mut last = std::time::Instant::now();
                    while ticking.load(std::sync::atomic::Ordering::SeqCst) {
                        tokio::time::sleep(Duration::from_millis(1)).await;
                        longest = longest.max(last.elapsed());
                        last = std::time::Instant::now();
                    }
                    longest
                }
            });
            tokio::time::sleep(Duration::from_millis(20)).await;
            // A timeout no other test uses: this process has not built that client yet.
            let client = Client::new(Duration::from_millis(9_871));
            let cpu_before = thread_cpu();
            let started = std::time::Instant::now();
            let request = client.get().await.unwrap().get(&url);
            let (status, _, body) = send(request, &url, client.limits()).await.unwrap();
            let elapsed = started.elapsed();
            let cpu = thread_cpu().zip(cpu_before).map(|(a, b)| a.saturating_sub(b));
            ticking.store(false, std::sync::atomic::Ordering::SeqCst);
            let longest = ticker.await.unwrap();
            assert_eq!((status.as_u16(), body.as_slice()), (200, &b"{}"[..]));
            eprintln!(
                "first request: {elapsed:?}, runtime thread CPU {cpu:?}, longest ticker gap {longest:?}"
            );
            // Building the client on this thread cost ~18-20 ms of its CPU; the request
            // itself well under 5.
            if let Some(cpu) = cpu {
                assert!(
                    cpu < Duration::from_millis(8),
                    "the runtime's thread spent {cpu:?} of CPU on the first request: the client was built on it"
                );
            }
        });
    }

    #[test]
    fn status_kinds() {
        assert_eq!(status_kind(StatusCode::NOT_FOUND), ErrorKind::NotFound);
        assert_eq!(status_kind(StatusCode::FORBIDDEN), ErrorKind::Unauthorized);
        assert_eq!(
            status_kind(StatusCode::SERVICE_UNAVAILABLE),
            ErrorKind::Unavailable
        );
        assert_eq!(status_kind(StatusCode::BAD_REQUEST), ErrorKind::Other);
    }
}
