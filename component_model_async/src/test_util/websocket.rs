//! An in-process websocket server that pushes configuration messages.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use futures::{SinkExt, StreamExt};
use tokio::sync::broadcast;
use tokio_tungstenite::tungstenite::Message;

/// A websocket server on `127.0.0.1` for tests of `stream_from = "websocket"` fields —
/// a **double** of a configuration service, not a product: every client (whatever the
/// path) gets the current value when it connects, then every message pushed.
///
/// It speaks real websockets (RFC 6455, through tokio-tungstenite): the handshake,
/// text and binary frames, ping/pong, close. [`WebSocketServer::disconnect_all`] drops
/// every connection without a close frame, as a crash or a network cut would.
///
/// ```
/// use component_model_async::test_util::WebSocketServer;
/// use component_model_async::{AsyncAssign, Sources, WebSocketSource};
///
/// #[derive(AsyncAssign, Debug)]
/// struct Flags {
///     #[component(stream_from = "websocket", url = "ws://config.service/flags", field = "beta")]
///     beta: bool,
/// }
///
/// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
/// let server = WebSocketServer::start().await;
/// server.set(r#"{"beta": true}"#);
/// let ws = WebSocketSource::new().resolve("config.service", server.address());
/// let sources = Sources::new().register("websocket", ws);
/// let flags = Flags::fetch_all_components_with(&sources).await.unwrap();
/// assert!(flags.beta);
/// # });
/// ```
pub struct WebSocketServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

struct Shared {
    current: Mutex<Option<Message>>,
    tx: broadcast::Sender<Command>,
    open: AtomicUsize,
    accepted: AtomicUsize,
}

#[derive(Clone)]
enum Command {
    Send(Message),
    Drop,
}

impl std::fmt::Debug for WebSocketServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebSocketServer")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl WebSocketServer {
    /// Starts the server on a free port.
    ///
    /// # Panics
    ///
    /// When no local port can be bound (a test's environment is broken).
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a local port for the websocket server");
        let addr = listener.local_addr().expect("local address");
        let (tx, _) = broadcast::channel(1024);
        let shared = Arc::new(Shared {
            current: Mutex::new(None),
            tx,
            open: AtomicUsize::new(0),
            accepted: AtomicUsize::new(0),
        });
        let serving = shared.clone();
        let task = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let shared = serving.clone();
                tokio::spawn(async move { shared.serve(tcp).await });
            }
        });
        WebSocketServer { addr, shared, task }
    }

    /// The server's address (give it to [`WebSocketSource::resolve`](crate::WebSocketSource::resolve)).
    pub fn address(&self) -> SocketAddr {
        self.addr
    }

    /// `ws://127.0.0.1:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("ws://{}{path}", self.addr)
    }

    /// Sets the current value (a text message): sent to every client now and to each
    /// client that connects later.
    pub fn set(&self, text: impl Into<String>) {
        self.publish(Message::text(text.into()), true);
    }

    /// Sends a text message to the connected clients only (a client connecting later
    /// still gets the current value).
    pub fn push(&self, text: impl Into<String>) {
        self.publish(Message::text(text.into()), false);
    }

    /// Changes the value clients get when they connect, without telling the connected
    /// ones (as a server whose push was lost): they see it only after reconnecting.
    pub fn set_unannounced(&self, text: impl Into<String>) {
        *self
            .shared
            .current
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(Message::text(text.into()));
    }

    /// Sets the current value as a binary message.
    pub fn set_binary(&self, bytes: impl Into<Vec<u8>>) {
        self.publish(Message::binary(bytes.into()), true);
    }

    fn publish(&self, message: Message, current: bool) {
        if current {
            *self
                .shared
                .current
                .lock()
                .unwrap_or_else(PoisonError::into_inner) = Some(message.clone());
        }
        let _ = self.shared.tx.send(Command::Send(message));
    }

    /// Drops every open connection without a close frame.
    pub fn disconnect_all(&self) {
        let _ = self.shared.tx.send(Command::Drop);
    }

    /// How many connections are open.
    pub fn connections(&self) -> usize {
        self.shared.open.load(Ordering::SeqCst)
    }

    /// How many websocket handshakes the server has completed.
    pub fn accepted(&self) -> usize {
        self.shared.accepted.load(Ordering::SeqCst)
    }
}

impl Drop for WebSocketServer {
    fn drop(&mut self) {
        self.task.abort();
        self.disconnect_all();
    }
}

struct Open<'a>(&'a AtomicUsize);

impl Drop for Open<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Shared {
    async fn serve(&self, tcp: tokio::net::TcpStream) {
        let mut rx = self.tx.subscribe();
        let Ok(mut ws) = tokio_tungstenite::accept_async(tcp).await else {
            return;
        };
        self.accepted.fetch_add(1, Ordering::SeqCst);
        self.open.fetch_add(1, Ordering::SeqCst);
        let _open = Open(&self.open);
        let current = self
            .current
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        if let Some(m) = current
            && ws.send(m).await.is_err()
        {
            return;
        }
        loop {
            tokio::select! {
                command = rx.recv() => match command {
                    Ok(Command::Send(m)) => {
                        if ws.send(m).await.is_err() {
                            return;
                        }
                    }
                    Ok(Command::Drop) | Err(broadcast::error::RecvError::Closed) => return,
                    Err(broadcast::error::RecvError::Lagged(_)) => {}
                },
                incoming = ws.next() => match incoming {
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                    Some(Ok(_)) => {} // pings are answered by the reader
                },
            }
        }
    }
}
