use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Error as WsError, Message as WsMessage};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::error::{ErrorKind, SourceError};
use crate::fetchers::stream::{self, DEFAULT_FIRST_MESSAGE, Feed, Latest, Message};
use crate::source::{
    Access, Changes, FetchRequest, Preflighting, Probe, RawValue, Source, redact_url,
};

/// The largest message a [`WebSocketSource`] reads, by default (1 MiB).
pub const DEFAULT_MAX_MESSAGE: usize = 1024 * 1024;

/// How often a watched connection is pinged.
const PING_EVERY: Duration = Duration::from_secs(15);

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// How long closing a connection may take.
const CLOSE_WITHIN: Duration = Duration::from_secs(1);

/// Outgoing frames are written once this many bytes are buffered.
const WRITE_BUFFER: usize = 64 * 1024;

/// The most a connection buffers for sending (pongs, pings, the close frame) while the
/// server does not read.
const MAX_WRITE_BUFFER: usize = 256 * 1024;

/// The TLS configuration of `wss://` connections: rustls with ring and the system's root
/// certificates, made once. (Built with an explicit provider: rustls cannot pick one by
/// itself when several are compiled into the program.)
fn tls() -> Result<Arc<rustls::ClientConfig>, String> {
    static CONFIG: std::sync::OnceLock<Result<Arc<rustls::ClientConfig>, String>> =
        std::sync::OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let mut roots = rustls::RootCertStore::empty();
            let found = rustls_native_certs::load_native_certs();
            let (added, _) = roots.add_parsable_certificates(found.certs);
            if added == 0 {
                return Err(format!(
                    "no root certificate could be loaded from the system ({} errors)",
                    found.errors.len()
                ));
            }
            let provider = rustls::crypto::CryptoProvider::get_default()
                .cloned()
                .unwrap_or_else(|| Arc::new(rustls::crypto::aws_lc_rs::default_provider()));
            rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map(|b| Arc::new(b.with_root_certificates(roots).with_no_client_auth()))
                .map_err(|e| e.to_string())
        })
        .clone()
}

/// Closes `socket`, waiting at most [`CLOSE_WITHIN`] (a server that stops reading
/// cannot hold it up).
async fn close(socket: &mut Socket) {
    let _ = tokio::time::timeout(CLOSE_WITHIN, socket.close(None)).await;
}

/// The `websocket` push source (see the [module](crate::fetchers::websocket)).
///
/// ```
/// use component_model_async::{Sources, WebSocketSource};
/// use std::time::Duration;
///
/// let ws = WebSocketSource::new()
///     .resolve("config.service", "127.0.0.1:9000".parse().unwrap())
///     .with_first_message_timeout(Duration::from_secs(2))
///     .with_max_message(64 * 1024);
/// let sources = Sources::new().register("websocket", ws);
/// ```
#[derive(Clone)]
pub struct WebSocketSource {
    inner: Arc<Inner>,
}

struct Inner {
    resolve: Vec<(String, SocketAddr)>,
    max_message: usize,
    first_message: Duration,
    ping_every: Duration,
    latest: Arc<Latest>,
}

impl Default for WebSocketSource {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for WebSocketSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebSocketSource")
            .field("resolve", &self.inner.resolve)
            .field("max_message", &self.inner.max_message)
            .field("first_message", &self.inner.first_message)
            .finish_non_exhaustive()
    }
}

impl WebSocketSource {
    /// A source with the defaults: 1 MiB messages, 10 s for a first message.
    pub fn new() -> Self {
        WebSocketSource {
            inner: Arc::new(Inner {
                resolve: Vec::new(),
                max_message: DEFAULT_MAX_MESSAGE,
                first_message: DEFAULT_FIRST_MESSAGE,
                ping_every: PING_EVERY,
                latest: Arc::default(),
            }),
        }
    }

    fn with(self, f: impl FnOnce(&mut Inner)) -> Self {
        let mut inner = Arc::try_unwrap(self.inner).unwrap_or_else(|shared| Inner {
            resolve: shared.resolve.clone(),
            max_message: shared.max_message,
            first_message: shared.first_message,
            ping_every: shared.ping_every,
            latest: Arc::default(),
        });
        f(&mut inner);
        WebSocketSource {
            inner: Arc::new(inner),
        }
    }

    /// Connects to `addr` for URLs whose host is `host` (the URL, `Host` header and TLS
    /// name stay as written), as curl's `--resolve`.
    #[must_use]
    pub fn resolve(self, host: impl Into<String>, addr: SocketAddr) -> Self {
        let host = host.into();
        self.with(|i| i.resolve.push((host, addr)))
    }

    /// The largest message read (larger ones are refused before they are buffered).
    #[must_use]
    pub fn with_max_message(self, bytes: usize) -> Self {
        self.with(|i| i.max_message = bytes.max(1))
    }

    /// How long a fetch waits for the first message after connecting.
    #[must_use]
    pub fn with_first_message_timeout(self, limit: Duration) -> Self {
        self.with(|i| i.first_message = limit)
    }

    /// How often a watched connection is pinged (a connection silent for two intervals
    /// is dropped and opened again). 15 s by default.
    #[must_use]
    pub fn with_ping_interval(self, every: Duration) -> Self {
        self.with(|i| i.ping_every = every.max(Duration::from_millis(10)))
    }
}

impl Inner {
    fn config(&self) -> WebSocketConfig {
        WebSocketConfig::default()
            .max_message_size(Some(self.max_message))
            .max_frame_size(Some(self.max_message))
            // The reader queues a pong for every ping; a server that floods pings and
            // never reads would grow the write buffer without end (unbounded by
            // default). Past this bound only the latest pong waits.
            .write_buffer_size(WRITE_BUFFER)
            .max_write_buffer_size(MAX_WRITE_BUFFER)
    }

    /// Opens the connection (TCP, TLS for `wss://`, the handshake) within the first
    /// message's deadline.
    async fn connect(&self, url: &str) -> Result<Socket, SourceError> {
        let shown = redact_url(url);
        let request = url.into_client_request().map_err(|e| {
            SourceError::new(ErrorKind::Config)
                .with_message(format!("`{shown}` is not a websocket URL: {e}"))
        })?;
        let uri = request.uri().clone();
        // `Uri::host` keeps an IPv6 literal's brackets: connecting, TLS names and
        // `resolve` want the address alone.
        let host = uri
            .host()
            .unwrap_or_default()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let secure = uri.scheme_str() == Some("wss");
        let port = uri.port_u16().unwrap_or(if secure { 443 } else { 80 });
        let pinned = self
            .resolve
            .iter()
            .find(|(h, _)| h.eq_ignore_ascii_case(&host))
            .map(|(_, a)| *a);
        let unavailable = |what: &dyn std::fmt::Display| {
            SourceError::new(ErrorKind::Unavailable).with_message(what.to_string())
        };
        let open = async {
            let tcp = match pinned {
                Some(addr) => TcpStream::connect(addr).await,
                None => TcpStream::connect((host.as_str(), port)).await,
            }
            .map_err(|e| unavailable(&format_args!("cannot connect: {e}")))?;
            let _ = tcp.set_nodelay(true);
            let mut stream = if secure {
                let config = tls().map_err(|e| {
                    SourceError::new(ErrorKind::Config)
                        .with_message(format!("TLS is not usable: {e}"))
                })?;
                let name = rustls::pki_types::ServerName::try_from(host.clone()).map_err(|_| {
                    SourceError::new(ErrorKind::Config)
                        .with_message(format!("`{host}` is not a valid TLS server name"))
                })?;
                let tls = tokio_rustls::TlsConnector::from(config)
                    .connect(name, tcp)
                    .await
                    .map_err(|e| unavailable(&format_args!("TLS: {e}")))?;
                MaybeTlsStream::Rustls(tls)
            } else {
                MaybeTlsStream::Plain(tcp)
            };
            // Our own handshake: tungstenite's logs the request (query and headers) at
            // TRACE.
            let read_ahead = super::handshake::open(&mut stream, &uri).await?;
            Ok(WebSocketStream::from_partially_read(
                stream,
                read_ahead,
                tokio_tungstenite::tungstenite::protocol::Role::Client,
                Some(self.config()),
            )
            .await)
        };
        tokio::time::timeout(self.first_message, open)
            .await
            .map_err(|_| {
                SourceError::new(ErrorKind::Timeout)
                    .with_message(format!("no connection within {:?}", self.first_message))
            })?
    }

    /// The next value on `socket`: `Ok(None)` when the connection ended.
    ///
    /// Every frame that is no message (a ping, a pong: RFC 6455 allows unsolicited pongs)
    /// costs a unit of the task's cooperative budget: a server flooding control frames
    /// keeps the socket readable, and the reader takes many frames from one read, so
    /// without it the loop would not return `Pending` for seconds and the caller's
    /// deadline (a timer) could not fire.
    async fn next_message(&self, socket: &mut Socket) -> Result<Option<Message>, SourceError> {
        while let Some(frame) = socket.next().await {
            match frame {
                Ok(WsMessage::Text(text)) => return Ok(Some(Ok(RawValue::Text(text.to_string())))),
                Ok(WsMessage::Binary(bytes)) => return Ok(Some(Ok(stream::body(bytes.to_vec())))),
                Ok(WsMessage::Close(_)) => return Ok(None),
                // A ping (answered by the reader) or a pong.
                Ok(_) => tokio::task::coop::consume_budget().await,
                Err(WsError::Capacity(e)) => {
                    // The reader refused the message before buffering it; the connection
                    // cannot go on past it.
                    return Ok(Some(Err(SourceError::new(ErrorKind::TooLarge).with_message(
                        format!(
                            "a message was larger than the limit of {} bytes ({e}); the connection is opened again",
                            self.max_message
                        ),
                    ))));
                }
                Err(WsError::ConnectionClosed | WsError::AlreadyClosed) => return Ok(None),
                Err(e) => {
                    return Err(
                        SourceError::new(ErrorKind::Unavailable).with_message(e.to_string())
                    );
                }
            }
        }
        Ok(None)
    }

    /// The start-up read: the first message within the deadline.
    ///
    /// One deadline for connecting and reading, whatever frames arrive; closing is a
    /// courtesy within what is left of it (a server that stops reading cannot hold the
    /// fetch past it).
    async fn first(&self, url: &str) -> Result<RawValue, SourceError> {
        let deadline = tokio::time::Instant::now() + self.first_message;
        let mut socket = self.connect(url).await?;
        let got = tokio::time::timeout_at(deadline, self.next_message(&mut socket)).await;
        let close_by = deadline.min(tokio::time::Instant::now() + CLOSE_WITHIN);
        let _ = tokio::time::timeout_at(close_by, socket.close(None)).await;
        match got {
            Ok(Ok(Some(message))) => message,
            Ok(Ok(None)) => Err(SourceError::not_found()
                .with_message("the server closed the connection before sending a message")),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(SourceError::not_found().with_message(format!(
                "no message within {:?} of connecting",
                self.first_message
            ))),
        }
    }

    /// One watched connection after another until nobody watches.
    async fn subscribe(self: Arc<Self>, feed: Feed) {
        let Some(url) = feed.request().url().map(str::to_owned) else {
            feed.push(Err(no_url()));
            return;
        };
        let what = format!("websocket {}", redact_url(&url));
        stream::reconnecting(&feed, &what, || async {
            let mut socket = self.connect(&url).await?;
            let ended = self.serve(&mut socket, &feed, &url).await;
            close(&mut socket).await;
            Ok(ended)
        })
        .await;
    }

    /// Reads one connection into `feed`; `true` when nobody watches any more. (A
    /// connection that ends before its first message, or with a refused one, leaves the
    /// backoff growing: only a message resets it.)
    async fn serve(&self, socket: &mut Socket, feed: &Feed, url: &str) -> bool {
        let mut ping = tokio::time::interval(self.ping_every);
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ping.tick().await;
        let mut heard = tokio::time::Instant::now();
        let first_due = tokio::time::sleep(self.first_message);
        tokio::pin!(first_due);
        // A message arrived (or the first one's deadline passed) on this connection.
        let mut received = false;
        loop {
            tokio::select! {
                _ = feed.closed() => return true,
                _ = &mut first_due, if !received => {
                    received = true; // (only once)
                    feed.none_yet(SourceError::not_found().with_message(format!(
                        "no message within {:?} of connecting",
                        self.first_message
                    )));
                }
                _ = ping.tick() => {
                    if heard.elapsed() > self.ping_every * 2 {
                        tracing::debug!(url = %redact_url(url), "websocket watch: no answer to pings; reconnecting");
                        return false;
                    }
                    let sent = tokio::time::timeout(self.ping_every, socket.send(WsMessage::Ping(Vec::new().into()))).await;
                    if !matches!(sent, Ok(Ok(()))) {
                        return false;
                    }
                }
                frame = socket.next() => {
                    heard = tokio::time::Instant::now();
                    let message = match frame {
                        Some(Ok(WsMessage::Text(text))) => Ok(RawValue::Text(text.to_string())),
                        Some(Ok(WsMessage::Binary(bytes))) => Ok(stream::body(bytes.to_vec())),
                        Some(Ok(WsMessage::Close(_))) | None => return false,
                        Some(Ok(_)) => {
                            // A ping or pong: a flood of them must let the timers
                            // (the first message's deadline, the pings) have their turn.
                            tokio::task::coop::consume_budget().await;
                            continue;
                        }
                        Some(Err(WsError::Capacity(e))) => Err(SourceError::new(ErrorKind::TooLarge).with_message(format!(
                            "a message was larger than the limit of {} bytes ({e}); the connection is opened again",
                            self.max_message
                        ))),
                        Some(Err(e)) => {
                            tracing::debug!(error = %e, "websocket watch: the connection failed");
                            return false;
                        }
                    };
                    received = true;
                    let refused = message.is_err();
                    if !feed.push(message) {
                        return true;
                    }
                    if refused {
                        // The reader cannot go on past a refused message.
                        return false;
                    }
                }
            }
        }
    }
}

fn no_url() -> SourceError {
    SourceError::new(ErrorKind::Config)
        .with_message("the `websocket` source needs `url = \"ws://...\"`")
}

impl Inner {
    /// Checks `requests` without reading a message (see the module's "Preflight"): per
    /// URL, the opening handshake (bounded as a fetch's connecting is, by the first
    /// message's deadline), then a close — no message is read.
    async fn preflight(&self, requests: Vec<FetchRequest>) -> Vec<Probe> {
        futures::future::join_all(requests.iter().map(|r| async {
            let Some(url) = r.url() else {
                return Probe::from_error(&no_url());
            };
            match self.connect(url).await {
                Ok(mut socket) => {
                    close(&mut socket).await;
                    Probe::readable().with_detail("the handshake succeeded; closed")
                }
                Err(e) => {
                    let mut probe = Probe::from_error(&e);
                    let said = |status: &str| {
                        e.message()
                            .is_some_and(|m| m.contains(&format!("HTTP {status}")))
                    };
                    if e.kind() == ErrorKind::Unauthorized && said("401") {
                        probe.access = Access::Unauthenticated;
                    }
                    probe
                }
            }
        }))
        .await
    }
}

#[async_trait::async_trait]
impl Source for WebSocketSource {
    async fn fetch(&self, request: &FetchRequest) -> Result<RawValue, SourceError> {
        if let Some(message) = self.inner.latest.get(request) {
            return message;
        }
        let url = request.url().ok_or_else(no_url)?;
        self.inner.first(url).await
    }

    fn native_key(&self, request: &FetchRequest) -> Option<(&'static str, String)> {
        request.url().map(|u| ("url", redact_url(u)))
    }

    fn location(&self) -> Option<String> {
        None
    }

    /// Without reading a message: the opening handshake, then a close (see the module's
    /// "Preflight").
    fn preflight(&self, requests: Vec<FetchRequest>) -> Preflighting<'_> {
        Box::pin(self.inner.preflight(requests))
    }

    fn watch(&self, requests: Vec<FetchRequest>) -> Result<Changes, SourceError> {
        let inner = self.inner.clone();
        Ok(stream::watch_pushed(
            &self.inner.latest,
            requests,
            move |feed| inner.clone().subscribe(feed),
        ))
    }
}
