//! [`FaultProxy`]: a TCP proxy between a client and a real server that can be switched,
//! while running, to pass traffic, delay it, reset connections, cut responses short, or
//! swallow everything (a blackhole) — for testing timeouts, retries, circuit breakers and
//! stale-if-error against real servers (PostgreSQL, Redis, the HTTP doubles).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What the proxy does with traffic, switched with [`FaultProxy::set`]. A change applies to
/// open connections too, from their next bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Fault {
    /// Forwards both ways.
    Pass,
    /// Forwards both ways, each chunk of the client's bytes `delay` late.
    Latency(Duration),
    /// Resets connections (TCP RST): new ones at once, open ones on their next bytes.
    Reset,
    /// Forwards the client's bytes and the first `n` bytes of each answer (what the server
    /// sends after the client last spoke), then resets the connection.
    CutAfter(usize),
    /// Accepts connections and reads them, and never answers nor closes.
    Blackhole,
}

#[derive(Default)]
struct Stats {
    accepted: AtomicU64,
    open: AtomicUsize,
    most_open: AtomicUsize,
    /// Connections to be reset before `fault` applies again (see `reset_next`).
    reset_next: AtomicU64,
}

struct Shared {
    upstream: SocketAddr,
    fault: Mutex<Fault>,
    stats: Stats,
    /// Closed when the proxy is dropped: every open connection ends (reset).
    gone: tokio::sync::watch::Receiver<()>,
}

impl Shared {
    fn fault(&self) -> Fault {
        *self.fault.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A fault-injecting TCP proxy on 127.0.0.1 (see [`Fault`]); dropping it stops it and
/// closes every connection it relays.
///
/// ```
/// use component_model_async::test_util::{ConsulDouble, Fault, FaultProxy};
/// use component_model_async::{ConsulSource, ErrorKind, FetchRequest, Source};
///
/// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
/// let consul = ConsulDouble::start().await;
/// consul.put("app/port", "8080");
/// let proxy = FaultProxy::start(consul.address().parse().unwrap()).await.unwrap();
/// let source = ConsulSource::new(proxy.address().to_string());
/// let request = FetchRequest::for_key("consul", "app/port");
/// assert!(source.fetch(&request).await.is_ok());
///
/// proxy.set(Fault::Reset);
/// let err = source.fetch(&request).await.unwrap_err();
/// assert_eq!(err.kind(), ErrorKind::Unavailable);
/// # });
/// ```
pub struct FaultProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl std::fmt::Debug for FaultProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FaultProxy")
            .field("address", &self.addr)
            .field("upstream", &self.shared.upstream)
            .field("fault", &self.shared.fault())
            .finish()
    }
}

impl FaultProxy {
    /// Listens on a free port of 127.0.0.1 and forwards to `upstream` ([`Fault::Pass`]).
    pub async fn start(upstream: SocketAddr) -> std::io::Result<FaultProxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (gone_tx, gone) = tokio::sync::watch::channel(());
        let shared = Arc::new(Shared {
            upstream,
            fault: Mutex::new(Fault::Pass),
            stats: Stats::default(),
            gone,
        });
        let (tx, mut rx) = tokio::sync::oneshot::channel::<()>();
        let accepting = shared.clone();
        super::spawn(async move {
            loop {
                let conn = tokio::select! {
                    _ = &mut rx => {
                        drop(gone_tx); // ends every open connection
                        return;
                    }
                    conn = listener.accept() => conn,
                };
                let Ok((client, _)) = conn else { continue };
                let shared = accepting.clone();
                let mut gone = shared.gone.clone();
                super::spawn(async move {
                    tokio::select! {
                        _ = serve(client, shared) => {}
                        _ = gone.changed() => {} // the proxy was dropped: the sockets close
                    }
                });
            }
        });
        Ok(FaultProxy {
            addr,
            shared,
            _stop: tx,
        })
    }

    /// Where clients connect.
    pub fn address(&self) -> SocketAddr {
        self.addr
    }

    /// `http://<address>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Switches what the proxy does.
    pub fn set(&self, fault: Fault) {
        *self
            .shared
            .fault
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = fault;
    }

    /// What the proxy does now.
    pub fn fault(&self) -> Fault {
        self.shared.fault()
    }

    /// Resets the next `n` connections the proxy accepts (and any open connection whose
    /// client speaks before those are used up), then goes back to the current fault.
    pub fn reset_next(&self, n: u64) {
        self.shared.stats.reset_next.store(n, Ordering::SeqCst);
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> u64 {
        self.shared.stats.accepted.load(Ordering::SeqCst)
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.shared.stats.open.load(Ordering::SeqCst)
    }

    /// The most connections open at once so far.
    pub fn most_open(&self) -> usize {
        self.shared.stats.most_open.load(Ordering::SeqCst)
    }
}

/// Counts an open connection while alive.
struct OpenGuard(Arc<Shared>);

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0.stats.open.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Takes one of the armed resets, if any are left.
fn take_reset(shared: &Shared) -> bool {
    shared
        .stats
        .reset_next
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
}

/// Closes `stream` with a TCP reset.
fn reset(stream: TcpStream) {
    #[allow(deprecated)]
    let _ = stream.set_linger(Some(Duration::ZERO));
    drop(stream);
}

async fn serve(client: TcpStream, shared: Arc<Shared>) {
    shared.stats.accepted.fetch_add(1, Ordering::SeqCst);
    let open = shared.stats.open.fetch_add(1, Ordering::SeqCst) + 1;
    shared.stats.most_open.fetch_max(open, Ordering::SeqCst);
    let _guard = OpenGuard(shared.clone());
    if take_reset(&shared) || shared.fault() == Fault::Reset {
        return reset(client);
    }
    if shared.fault() == Fault::Blackhole {
        return blackhole(client).await;
    }
    let Ok(server) = TcpStream::connect(shared.upstream).await else {
        return reset(client);
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    relay(client, server, &shared).await;
}

/// Reads and discards until the client goes away.
async fn blackhole(mut client: TcpStream) {
    let mut buf = [0u8; 4096];
    while let Ok(n) = client.read(&mut buf).await {
        if n == 0 {
            return;
        }
    }
}

/// Why a relay ended.
enum End {
    Closed,
    Reset,
    Blackhole,
}

/// Forwards both ways, applying the current fault per chunk.
async fn relay(mut client: TcpStream, mut server: TcpStream, shared: &Shared) {
    let mut up = vec![0u8; 16 * 1024];
    let mut down = vec![0u8; 16 * 1024];
    let mut answered = 0usize;
    let end = loop {
        tokio::select! {
            r = client.read(&mut up) => {
                let n = match r { Ok(0) | Err(_) => break End::Closed, Ok(n) => n };
                if take_reset(shared) {
                    break End::Reset;
                }
                match shared.fault() {
                    Fault::Reset => break End::Reset,
                    Fault::Blackhole => break End::Blackhole,
                    Fault::Latency(d) => tokio::time::sleep(d).await,
                    Fault::Pass | Fault::CutAfter(_) => {}
                }
                answered = 0;
                if server.write_all(&up[..n]).await.is_err() {
                    break End::Reset;
                }
            }
            r = server.read(&mut down) => {
                let n = match r { Ok(0) | Err(_) => break End::Closed, Ok(n) => n };
                match shared.fault() {
                    Fault::Reset => break End::Reset,
                    Fault::Blackhole => break End::Blackhole,
                    Fault::CutAfter(limit) => {
                        let room = limit.saturating_sub(answered);
                        let send = n.min(room);
                        if send > 0 && client.write_all(&down[..send]).await.is_err() {
                            break End::Reset;
                        }
                        answered += send;
                        if send < n || answered >= limit {
                            break End::Reset;
                        }
                    }
                    Fault::Pass | Fault::Latency(_) => {
                        if client.write_all(&down[..n]).await.is_err() {
                            break End::Reset;
                        }
                    }
                }
            }
        }
    };
    match end {
        End::Closed => {
            let _ = client.shutdown().await;
        }
        End::Reset => reset(client),
        End::Blackhole => {
            drop(server);
            blackhole(client).await;
        }
    }
}
