//! The `http` backend's implementation (see the module above for what it declares).

use std::fmt;
use std::time::Duration;

use reqwest::header::{HeaderName, HeaderValue};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::{ComponentError, ErrorKind, SourceError};
use crate::fetcher::ComponentFetcher;
use crate::fetchers::transport::{self, Client, DEFAULT_REQUEST_TIMEOUT};
use crate::source::{FetchRequest, RawValue, Source};
use crate::source_support::{coalesce, redact_url};
use crate::standalone::SourceFetcher;

/// An HTTP backend: an optional base URL, headers (an auth header kept secret) and a
/// per-request timeout. Register it by name with [`Sources::register`](crate::Sources::register);
/// fields then use `path = "/x"` (joined to the base) or `url = "https://..."`.
///
/// Its `Debug` shows the base URL (password redacted) and header names, never header values.
///
/// ```
/// use std::time::Duration;
/// use component_model_async::HttpSource;
///
/// let api = HttpSource::new("https://user:pw@billing.internal/v2")
///     .with_auth_header("s3cret-token")
///     .with_header("X-Team", "payments")
///     .with_timeout(Duration::from_secs(3));
/// let shown = format!("{api:?}");
/// assert!(shown.contains("https://user:***@billing.internal/v2"));
/// assert!(!shown.contains("s3cret-token") && !shown.contains("payments"));
/// ```
#[derive(Clone)]
pub struct HttpSource {
    client: Client,
    base: Option<String>,
    headers: Vec<(HeaderName, HeaderValue)>,
    /// A header that could not be built, reported by every fetch.
    invalid: Option<String>,
}

impl fmt::Debug for HttpSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.headers.iter().map(|(n, _)| n.as_str()).collect();
        f.debug_struct("HttpSource")
            .field("base", &self.base.as_deref().map(redact_url))
            .field("headers", &names)
            .field("timeout", &self.client.timeout)
            .finish()
    }
}

impl Default for HttpSource {
    /// A source without a base URL: fields must give an absolute `url`.
    fn default() -> Self {
        HttpSource {
            client: Client::new(DEFAULT_REQUEST_TIMEOUT),
            base: None,
            headers: Vec::new(),
            invalid: None,
        }
    }
}

impl HttpSource {
    /// A source whose fields' `path` is joined to `base_url`.
    pub fn new(base_url: impl Into<String>) -> Self {
        HttpSource {
            base: Some(base_url.into()),
            ..HttpSource::default()
        }
    }

    /// Sends `Authorization: Bearer <token>` with every request; the token is kept secret
    /// (not in `Debug`, errors or logs).
    #[must_use]
    pub fn with_auth_header(self, token: impl Into<String>) -> Self {
        let value = format!("Bearer {}", token.into());
        self.with_secret_header("authorization", value)
    }

    /// Sends a header with every request.
    #[must_use]
    pub fn with_header(mut self, name: &str, value: impl AsRef<str>) -> Self {
        match (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value.as_ref()),
        ) {
            (Ok(n), Ok(v)) => self.headers.push((n, v)),
            _ => self.invalid = Some(format!("invalid HTTP header `{name}`")),
        }
        self
    }

    /// Sends a header whose value is secret (an API key): marked sensitive, never shown.
    #[must_use]
    pub fn with_secret_header(mut self, name: &str, value: impl AsRef<str>) -> Self {
        match (
            HeaderName::from_bytes(name.as_bytes()),
            transport::secret_header(name, value.as_ref()),
        ) {
            (Ok(n), Ok(v)) => self.headers.push((n, v)),
            _ => self.invalid = Some(format!("invalid HTTP header `{name}`")),
        }
        self
    }

    /// Limits each request (connect, headers and body) to `timeout` (default 10 s).
    #[must_use]
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.client = self.client.with_timeout(timeout);
        self
    }

    /// Reads response bodies of at most `bytes` (default
    /// [`DEFAULT_MAX_BODY`](crate::fetchers::transport::DEFAULT_MAX_BODY), 16 MiB): a larger
    /// one fails its fields with [`ErrorKind::TooLarge`] instead of being read.
    #[must_use]
    pub fn with_max_body(mut self, bytes: usize) -> Self {
        self.client.max_body = bytes;
        self
    }

    /// Uses `client` (its own timeout, proxy and TLS settings) for every request; a later
    /// `with_timeout` replaces it with a client of this crate.
    #[must_use]
    pub fn with_client(mut self, client: reqwest::Client) -> Self {
        self.client = self.client.replaced_by(client);
        self
    }

    /// Connects with these TLS settings (CA, client certificate, server name; see
    /// [`TlsConfig`](crate::TlsConfig)); replaces a client given with `with_client`.
    #[must_use]
    pub fn with_tls(mut self, tls: crate::TlsConfig) -> Self {
        self.client = self.client.with_tls(tls);
        self
    }

    /// The base URL, if any.
    pub fn base_url(&self) -> Option<&str> {
        self.base.as_deref()
    }

    /// The URL a request reads: its `url` (absolute, or relative to the base), else the
    /// base URL joined with its `path`.
    fn url_for(&self, request: &FetchRequest) -> Result<String, SourceError> {
        let target = request.url().or(request.path());
        match (target, &self.base) {
            (Some(t), _) if t.contains("://") => Ok(t.to_owned()),
            (Some(t), Some(base)) => Ok(format!(
                "{}/{}",
                base.trim_end_matches('/'),
                t.trim_start_matches('/')
            )),
            (None, Some(base)) => Ok(base.clone()),
            (Some(t), None) => Err(SourceError::new(ErrorKind::Config).with_message(format!(
                "`{t}` is not an absolute URL and this HTTP source has no base URL"
            ))),
            (None, None) => Err(SourceError::new(ErrorKind::Config)
                .with_message("the field gives no `url` or `path` to read")),
        }
    }

    /// GETs `url` and parses the body as JSON.
    pub async fn get_json(&self, url: &str) -> Result<Value, SourceError> {
        if let Some(why) = &self.invalid {
            return Err(SourceError::new(ErrorKind::Config).with_message(why.clone()));
        }
        let client = self.client.get().await?;
        let mut request = client.get(url).header("accept", "application/json");
        for (name, value) in &self.headers {
            request = request.header(name, value);
        }
        let (status, _, body) = transport::send(request, url, self.client.limits()).await?;
        let shown = redact_url(url);
        if !status.is_success() {
            return Err(SourceError::new(transport::status_kind(status))
                .with_message(format!("HTTP {status} from {shown}")));
        }
        serde_json::from_slice(&body).map_err(|e| {
            SourceError::new(ErrorKind::Decode).with_message(format!(
                "the response from {shown} ({} bytes) is not JSON: {}",
                body.len(),
                transport::json_error(&e)
            ))
        })
    }
}

#[async_trait::async_trait]
impl Source for HttpSource {
    async fn fetch(&self, request: &FetchRequest) -> Result<RawValue, SourceError> {
        let url = self.url_for(request)?;
        self.get_json(&url).await.map(RawValue::Json)
    }

    /// One GET per distinct URL; fields reading the same document share it.
    async fn fetch_many(&self, requests: &[&FetchRequest]) -> Vec<Result<RawValue, SourceError>> {
        coalesce(requests, |unique| {
            futures::future::join_all(unique.into_iter().map(|r| self.fetch(r)))
        })
        .await
    }

    fn location(&self) -> Option<String> {
        self.base.as_deref().map(redact_url)
    }

    /// The absolute `url` (password redacted), else the `path` under the base URL.
    /// The JSON document at the argument (a path under the base URL, or a whole URL:
    /// `http@/config.json`), the field at the JSON pointer of its path.
    fn convention(
        &self,
        request: FetchRequest,
        field: &crate::FieldPath<'_>,
    ) -> Result<FetchRequest, String> {
        let at = field.argument.filter(|a| !a.is_empty()).ok_or_else(|| {
            "an HTTP source needs the document: `http@/config.json` (a path) or a URL".to_owned()
        })?;
        let request = if at.starts_with("http://") || at.starts_with("https://") {
            request.with_url(at.to_owned())
        } else {
            request.with_path(at.to_owned())
        };
        Ok(request.with_pointer(field.pointer()))
    }

    /// A `HEAD` of each distinct URL (the `GET`'s head when `HEAD` is refused), the
    /// body never read (see the `preflight` module).
    fn preflight(&self, requests: Vec<FetchRequest>) -> crate::source::Preflighting<'_> {
        Box::pin(async move { self.preflight_all(&requests).await })
    }

    fn native_key(&self, request: &FetchRequest) -> Option<(&'static str, String)> {
        match (request.url(), request.path()) {
            (Some(u), _) => Some(("url", redact_url(u))),
            (None, Some(p)) => Some(("path", p.to_owned())),
            _ => request.native_key(),
        }
    }
}

#[path = "preflight.rs"]
mod preflight;

/// GETs one URL and converts its JSON body, as the specification sketches it.
///
/// `ComponentFetcher<T>` for any `serde::Deserialize` type; errors are
/// [`ComponentError`]s naming the URL (status, timeout, not JSON, pointer matches nothing).
///
/// ```no_run
/// use component_model_async::{ApiFetcher, ComponentFetcher};
///
/// # async fn run() -> Result<(), component_model_async::ComponentError> {
/// let fetcher = ApiFetcher::new("https://config.internal/v1/settings")
///     .with_auth_header("token")
///     .with_pointer("/limits/port");
/// let port: u16 = fetcher.fetch_component().await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct ApiFetcher(SourceFetcher<HttpSource>);

impl ApiFetcher {
    /// A fetcher that GETs `url`.
    pub fn new(url: impl Into<String>) -> Self {
        ApiFetcher(SourceFetcher::new(
            HttpSource::default(),
            FetchRequest::for_source("api").with_url(url.into()),
        ))
    }

    /// Sends `Authorization: Bearer <token>`, kept secret.
    #[must_use]
    pub fn with_auth_header(self, token: impl Into<String>) -> Self {
        ApiFetcher(self.0.map_source(|s| s.with_auth_header(token)))
    }

    /// Sends a header with the request.
    #[must_use]
    pub fn with_header(self, name: &str, value: impl AsRef<str>) -> Self {
        ApiFetcher(self.0.map_source(|s| s.with_header(name, value)))
    }

    /// Converts only the part of the document at this JSON pointer (`"/settings/port"`).
    #[must_use]
    pub fn with_pointer(self, pointer: impl Into<String>) -> Self {
        ApiFetcher(self.0.with_pointer(pointer))
    }

    /// Limits the request to `timeout` (default 10 s).
    #[must_use]
    pub fn with_timeout(self, timeout: Duration) -> Self {
        ApiFetcher(self.0.map_source(|s| s.with_timeout(timeout)))
    }

    /// Reads a body of at most `bytes` (default 16 MiB).
    #[must_use]
    pub fn with_max_body(self, bytes: usize) -> Self {
        ApiFetcher(self.0.map_source(|s| s.with_max_body(bytes)))
    }

    /// Uses `client` (its own timeout, proxy and TLS settings) for the request; a later
    /// `with_timeout` replaces it with a client of this crate.
    #[must_use]
    pub fn with_client(self, client: reqwest::Client) -> Self {
        ApiFetcher(self.0.map_source(|s| s.with_client(client)))
    }
}

#[async_trait::async_trait]
impl<T: DeserializeOwned + Send + 'static> ComponentFetcher<T> for ApiFetcher {
    type Error = ComponentError;

    async fn fetch_component(&self) -> Result<T, ComponentError> {
        self.0.fetch_component().await
    }
}
