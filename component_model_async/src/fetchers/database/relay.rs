//! A byte budget on the sockets of PostgreSQL and MySQL pools: a local relay between sqlx
//! and the server counts what the server sends in answer to each request, and closes the
//! connection once it exceeds the source's limit.
//!
//! sqlx buffers every protocol message whole, as long as the server says it is (a
//! `DataRow` may announce 2 GiB, a MySQL value may chain 16 MiB packets without end), and
//! it offers no hook to supply or wrap its socket. So a pool made from a URL connects to a
//! Unix socket of ours instead (a fresh directory, mode 0700, under the temporary
//! directory), and one task per connection copies bytes to and from the server's TCP
//! address. Whatever the client writes opens a new answer (but see [`starts_answer`]: a
//! tiny TLS record does not); once the server has sent more than the limit since, the
//! relay closes both sides: sqlx sees the connection end, and
//! the source reports [`ErrorKind::TooLarge`](crate::ErrorKind::TooLarge) for the read
//! that was running. TLS is unaffected: sqlx still negotiates it with the server, over the
//! relay, under the URL's host name (the relay copies the encrypted bytes unread).
//!
//! sqlx's reads never return `Pending` while the socket has data, so a flood (of notices,
//! which sqlx reads and logs without returning) could keep the timer of a field timeout
//! from running. The limit bounds how long that can last, and the relay pauses for a
//! millisecond after every MiB of one answer, so the client's socket runs empty and its
//! task yields to the timer even under a large limit.
//!
//! A connection that only listens (`LISTEN`, for a `Live`) counts every notification as
//! part of one answer: after the limit's worth of notifications it is closed, and the
//! listener connects again and reads everything again (nothing is lost).
//!
//! The relay lives as long as the pool: a guard kept in the pool's `after_connect` hook
//! stops its tasks and removes its directory when the last clone of the pool is dropped.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UnixListener, UnixStream};
use tokio::task::{AbortHandle, JoinSet};

/// What a relay shares with the sources over its pool: the limit, and what it refused.
#[derive(Debug)]
pub(crate) struct Budget {
    /// The most bytes the server may send in answer to one request.
    limit: AtomicUsize,
    /// How many connections were closed for exceeding the limit.
    overflows: AtomicU64,
    /// Why the last connection to the server failed, if it did.
    upstream_error: Mutex<Option<String>>,
}

impl Budget {
    fn new(limit: usize) -> Self {
        Budget {
            limit: AtomicUsize::new(limit),
            overflows: AtomicU64::new(0),
            upstream_error: Mutex::new(None),
        }
    }

    /// The limit in bytes.
    pub(crate) fn limit(&self) -> usize {
        self.limit.load(Ordering::Relaxed)
    }

    /// Sets the limit in bytes (for every connection of the pool, from its next read on).
    pub(crate) fn set_limit(&self, bytes: usize) {
        self.limit.store(bytes, Ordering::Relaxed);
    }

    /// How many connections were closed for exceeding the limit so far.
    pub(crate) fn overflows(&self) -> u64 {
        self.overflows.load(Ordering::Relaxed)
    }

    /// Why the last attempt to reach the server failed (`None` once one succeeded).
    pub(crate) fn upstream_error(&self) -> Option<String> {
        self.upstream_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn set_upstream_error(&self, error: Option<String>) {
        *self
            .upstream_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = error;
    }
}

/// Stops the relay and removes its directory when dropped (kept by the pool, see above).
#[derive(Debug)]
pub(crate) struct RelayGuard {
    dir: PathBuf,
    /// The bound listener (each accept loop takes a clone of it).
    listener: std::os::unix::net::UnixListener,
    upstream: Upstream,
    budget: Arc<Budget>,
    /// The accept loop, once started.
    accept: Mutex<Option<AbortHandle>>,
}

impl RelayGuard {
    /// The relay's limit and what it refused.
    pub(crate) fn budget(&self) -> &Budget {
        &self.budget
    }

    /// Starts accepting connections on the current runtime, unless a loop runs already:
    /// the pool may have been made outside a runtime (`Sources::from_env` in a plain
    /// `main`), or in one that has ended since.
    pub(crate) fn ensure_running(&self) {
        let mut accept = self.accept.lock().unwrap_or_else(PoisonError::into_inner);
        if accept.as_ref().is_some_and(|h| !h.is_finished())
            || tokio::runtime::Handle::try_current().is_err()
        {
            return;
        }
        let started = self.listener.try_clone().and_then(|listener| {
            spawn_accept(listener, self.upstream.clone(), self.budget.clone())
        });
        match started {
            Ok(handle) => *accept = Some(handle),
            Err(e) => tracing::warn!(error = %e, "the database relay could not start"),
        }
    }
}

impl Drop for RelayGuard {
    fn drop(&mut self) {
        if let Some(handle) = &*self.accept.lock().unwrap_or_else(PoisonError::into_inner) {
            handle.abort();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The server the relay connects to.
#[derive(Clone, Debug)]
pub(crate) struct Upstream {
    /// A host name or an IP address, without brackets.
    pub(crate) host: String,
    pub(crate) port: u16,
}

impl Upstream {
    /// The server at `host:port`, `host` as sqlx's options give it: an IPv6 address keeps
    /// the URL's brackets there (`[::1]`), which sqlx trims before connecting, and so
    /// does this (name resolution knows no `[::1]`).
    pub(crate) fn new(host: &str, port: u16) -> Self {
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        Upstream {
            host: host.to_owned(),
            port,
        }
    }
}

/// How long the relay waits for the server to accept a connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Bytes copied per read, each way.
const CHUNK: usize = 64 * 1024;

/// After this much of one answer the relay pauses for [`PAUSE`], so that the client's
/// socket runs empty and its reading task returns `Pending` (see the module's docs).
const PACE_EVERY: usize = 1024 * 1024;

/// How long the relay pauses every [`PACE_EVERY`] bytes: at most 16 ms over an answer
/// of the default 16 MiB limit.
const PAUSE: Duration = Duration::from_millis(1);

/// The largest client write that may be a TLS record the client sends without being
/// asked a question: a TLS 1.2 `no_renegotiation` alert (23 to 31 bytes, the client's
/// answer to a server's `HelloRequest`) or a TLS 1.3 `KeyUpdate` (27 bytes, in answer to
/// a server's `KeyUpdate` with `update_requested`; rustls sends it with the client's next
/// request, but another TLS library may not). A request over TLS is larger, unless it
/// carries at most 11 bytes of protocol (21 to 29 bytes of TLS around it): a bare `Sync`,
/// a `COM_PING`.
const CONTROL_RECORD_MAX: usize = 32;

/// Whether `write`, one read of what the client wrote, starts a new answer.
///
/// A hostile server must not be able to make the client write in the middle of an
/// answer and so start the count again: that is what a TLS server can do with a
/// renegotiation request or a key update, which rustls answers with a short record of
/// its own. So a write of at most [`CONTROL_RECORD_MAX`] bytes that begins like a TLS
/// record after the handshake (content type alert or application data, version 0x0303)
/// continues the answer under way. The cost: a request that small over TLS (a ping) has
/// its answer counted with the one before. A plain-text request never looks like that (a
/// PostgreSQL message starts with a letter or a zero length byte, a short MySQL packet
/// has a zero in its second byte), so there every write starts an answer: MySQL's
/// execution of a prepared statement takes only 14 to 32 bytes.
fn starts_answer(write: &[u8]) -> bool {
    let tls_record = matches!(write, [0x15 | 0x17, 0x03, 0x03, ..]);
    !(tls_record && write.len() <= CONTROL_RECORD_MAX)
}

/// The running relays, by their socket's directory, so a source made from a pool
/// ([`DatabaseSource::new`](super::DatabaseSource::new)) finds the relay of a pool this
/// module made.
static RELAYS: Mutex<Vec<(PathBuf, Weak<RelayGuard>)>> = Mutex::new(Vec::new());

/// The relay whose socket is `socket` (a file or directory in the relay's directory), if
/// it still runs.
pub(crate) fn relay_of(socket: &Path) -> Option<Arc<RelayGuard>> {
    let mut relays = RELAYS.lock().unwrap_or_else(PoisonError::into_inner);
    relays.retain(|(_, weak)| weak.strong_count() > 0);
    relays
        .iter()
        .find(|(dir, _)| socket.starts_with(dir))
        .and_then(|(_, weak)| weak.upgrade())
}

/// Binds a relay to `upstream` at `<dir>/<socket_name>` in a fresh private directory and
/// starts it if a runtime is running (else on [`RelayGuard::ensure_running`]). Returns the
/// directory and the guard.
pub(crate) fn start(
    upstream: Upstream,
    socket_name: &str,
    limit: usize,
) -> io::Result<(PathBuf, Arc<RelayGuard>)> {
    let dir = private_dir()?;
    let listener = match std::os::unix::net::UnixListener::bind(dir.join(socket_name)) {
        Ok(l) => l,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&dir);
            return Err(e);
        }
    };
    let budget = Arc::new(Budget::new(limit));
    listener.set_nonblocking(true)?;
    let guard = Arc::new(RelayGuard {
        dir: dir.clone(),
        listener,
        upstream,
        budget,
        accept: Mutex::new(None),
    });
    RELAYS
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push((dir.clone(), Arc::downgrade(&guard)));
    guard.ensure_running();
    Ok((dir, guard))
}

/// The prefix of the relays' directories: `<prefix><pid>-<n>-<nanos>`.
const DIR_PREFIX: &str = "component_model-sql-";

/// A new directory only this user may enter, under the temporary directory.
fn private_dir() -> io::Result<PathBuf> {
    use std::os::unix::fs::DirBuilderExt;
    static N: AtomicU64 = AtomicU64::new(0);
    static SWEPT: std::sync::Once = std::sync::Once::new();
    let base = std::env::temp_dir();
    SWEPT.call_once(|| sweep(&base));
    let mut last = None;
    for _ in 0..8 {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let dir = base.join(format!(
            "{DIR_PREFIX}{}-{}-{nanos}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| io::Error::other("no directory for the database relay")))
}

/// Removes the directories that relays of processes no longer running left behind (a
/// pool kept until the process exited is never dropped). Only where `/proc` tells which
/// processes run, only this user's directories, and only those nobody listens in: a
/// process of another pid namespace (a container sharing the temporary directory) has a
/// pid `/proc` does not show, but its relay still accepts.
fn sweep(base: &Path) {
    use std::os::unix::fs::MetadataExt;
    if !Path::new("/proc/self").exists() {
        return;
    }
    let Ok(entries) = std::fs::read_dir(base) else {
        return;
    };
    let uid = std::fs::metadata("/proc/self").map(|m| m.uid()).ok();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix(DIR_PREFIX))
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<u32>().ok())
        else {
            continue;
        };
        let ours = entry
            .metadata()
            .is_ok_and(|m| m.is_dir() && Some(m.uid()) == uid);
        if ours
            && pid != std::process::id()
            && !Path::new(&format!("/proc/{pid}")).exists()
            && !listened_in(&entry.path())
        {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// Whether a socket in the relay directory `dir` may still have a listener: connecting
/// to it fails otherwise with "refused" (the socket file of a closed listener) or "not
/// found". Any other outcome (accepted, or an error that says nothing, such as a
/// permission denied) counts as listened in. An accepted connection is closed at once;
/// the relay sees it end.
fn listened_in(dir: &Path) -> bool {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return true;
    };
    entries.flatten().any(
        |entry| match std::os::unix::net::UnixStream::connect(entry.path()) {
            Ok(_) => true,
            Err(e) => !matches!(
                e.kind(),
                io::ErrorKind::ConnectionRefused | io::ErrorKind::NotFound
            ),
        },
    )
}

fn spawn_accept(
    listener: std::os::unix::net::UnixListener,
    upstream: Upstream,
    budget: Arc<Budget>,
) -> io::Result<AbortHandle> {
    let listener = UnixListener::from_std(listener)?;
    let task = tokio::spawn(async move {
        // The connections' tasks end with the accept loop (when the pool is dropped).
        let mut connections = JoinSet::new();
        loop {
            tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((client, _)) => {
                        connections.spawn(relay(client, upstream.clone(), budget.clone()));
                    }
                    Err(e) => {
                        tracing::debug!(error = %e, "the database relay could not accept");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                },
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
            }
        }
    });
    Ok(task.abort_handle())
}

/// Copies one connection both ways until either side ends or the server's answer to a
/// request exceeds the budget.
async fn relay(client: UnixStream, upstream: Upstream, budget: Arc<Budget>) {
    let connected = tokio::time::timeout(
        CONNECT_TIMEOUT,
        TcpStream::connect((upstream.host.as_str(), upstream.port)),
    )
    .await;
    let server = match connected {
        Ok(Ok(server)) => server,
        Ok(Err(e)) => {
            budget.set_upstream_error(Some(e.to_string()));
            return;
        }
        Err(_) => {
            budget.set_upstream_error(Some(format!(
                "no answer to connecting within {CONNECT_TIMEOUT:?}"
            )));
            return;
        }
    };
    budget.set_upstream_error(None);
    let _ = server.set_nodelay(true);
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    // Bytes the server sent since the client's last request began.
    let answered = AtomicUsize::new(0);

    let requests = async {
        let mut buf = vec![0u8; CHUNK];
        loop {
            let n = client_read.read(&mut buf).await?;
            if n == 0 {
                return io::Result::Ok(());
            }
            if starts_answer(&buf[..n]) {
                answered.store(0, Ordering::Relaxed);
            }
            server_write.write_all(&buf[..n]).await?;
        }
    };
    let answers = async {
        let mut buf = vec![0u8; CHUNK];
        loop {
            let n = server_read.read(&mut buf).await?;
            if n == 0 {
                return io::Result::Ok(());
            }
            let total = answered.fetch_add(n, Ordering::Relaxed).saturating_add(n);
            if total > budget.limit() {
                budget.overflows.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(
                    limit = budget.limit(),
                    "a database answer exceeded the response limit; closing its connection"
                );
                return Ok(());
            }
            client_write.write_all(&buf[..n]).await?;
            if total / PACE_EVERY != (total - n) / PACE_EVERY {
                tokio::time::sleep(PAUSE).await;
            }
        }
    };
    // Whichever direction ends first ends both: dropping the halves closes the sockets.
    tokio::select! {
        _ = requests => {}
        _ = answers => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A server that answers every request (any bytes) with `answer` bytes.
    async fn server(answer: usize) -> u16 {
        server_answering_each(answer, 1).await
    }

    /// A server taking `connections` connections, answering every request on each with
    /// `answer` bytes.
    async fn server_answering_each(answer: usize, connections: usize) -> u16 {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            for _ in 0..connections {
                let (mut socket, _) = listener.accept().await.unwrap();
                tokio::spawn(async move {
                    // Each request arrives in one read (the client writes it whole).
                    let mut buf = [0u8; 4096];
                    while socket.read(&mut buf).await.is_ok_and(|n| n > 0) {
                        if socket.write_all(&vec![b'x'; answer]).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        port
    }

    async fn read_answer(client: &mut UnixStream, want: usize) -> usize {
        let mut got = 0;
        let mut buf = vec![0u8; CHUNK];
        while got < want {
            match client.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => got += n,
            }
        }
        got
    }

    #[tokio::test]
    async fn each_answer_is_counted_from_the_last_request_and_one_over_the_limit_closes() {
        let port = server(3000).await;
        let upstream = Upstream {
            host: "127.0.0.1".into(),
            port,
        };
        let (dir, guard) = start(upstream, "s", 5000).unwrap();
        let mut client = UnixStream::connect(dir.join("s")).await.unwrap();
        // Two answers of 3000 bytes, each under the limit of 5000: both pass.
        for _ in 0..2 {
            client.write_all(b"q").await.unwrap();
            assert_eq!(read_answer(&mut client, 3000).await, 3000);
        }
        assert_eq!(guard.budget().overflows(), 0);
        // The limit lowered below one answer: the connection ends before it.
        guard.budget().set_limit(1000);
        client.write_all(b"q").await.unwrap();
        assert!(read_answer(&mut client, 3000).await < 3000);
        assert_eq!(guard.budget().overflows(), 1);
        // Dropping the last guard stops the relay and removes its directory.
        assert!(relay_of(&dir.join("s")).is_some());
        drop(guard);
        assert!(!dir.exists());
        assert!(relay_of(&dir.join("s")).is_none());
    }

    /// Made outside a runtime, used in one that ends, then in another: each starts it.
    #[test]
    fn the_relay_starts_in_whichever_runtime_uses_it() {
        let runtime = || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
        };
        let server = runtime();
        let port = server.block_on(server_answering_each(100, 2));
        let server_thread = std::thread::spawn(move || {
            server.block_on(async { tokio::time::sleep(Duration::from_secs(3)).await });
        });
        let (dir, guard) = start(
            Upstream {
                host: "127.0.0.1".into(),
                port,
            },
            "s",
            5000,
        )
        .unwrap();
        for _ in 0..2 {
            runtime().block_on(async {
                guard.ensure_running();
                let mut client = UnixStream::connect(dir.join("s")).await.unwrap();
                client.write_all(b"q").await.unwrap();
                let answer =
                    tokio::time::timeout(Duration::from_secs(2), read_answer(&mut client, 100));
                assert_eq!(answer.await.ok(), Some(100));
            });
        }
        drop(guard);
        drop(server_thread);
    }

    /// A directory of a pid `/proc` does not show is kept while its socket accepts
    /// (a relay of another pid namespace), and removed once connecting is refused.
    #[test]
    fn a_relay_of_another_pid_namespace_is_not_swept() {
        let base = std::env::temp_dir().join(format!("cm-sweep-ns-{}", std::process::id()));
        let live = base.join(format!("{DIR_PREFIX}4194305-0-1"));
        let closed = base.join(format!("{DIR_PREFIX}4194305-1-1"));
        for d in [&live, &closed] {
            std::fs::create_dir_all(d).unwrap();
        }
        let listener = std::os::unix::net::UnixListener::bind(live.join("mysql.sock")).unwrap();
        // A socket file whose listener is gone: connecting is refused.
        drop(std::os::unix::net::UnixListener::bind(closed.join("mysql.sock")).unwrap());
        sweep(&base);
        let (live_left, closed_left) = (live.exists(), closed.exists());
        drop(listener);
        let _ = std::fs::remove_dir_all(&base);
        assert!(live_left, "a listened-in relay directory was swept");
        assert!(!closed_left, "a relay directory nobody listens in was kept");
    }

    #[test]
    fn directories_of_processes_gone_are_swept_and_ours_kept() {
        let base = std::env::temp_dir().join(format!("cm-sweep-{}", std::process::id()));
        // A pid no process has (above the kernel's maximum, 2^22), and ours.
        let gone = base.join(format!("{DIR_PREFIX}4194305-0-1"));
        let mine = base.join(format!("{DIR_PREFIX}{}-0-1", std::process::id()));
        let other = base.join("unrelated-4194305");
        for d in [&gone, &mine, &other] {
            std::fs::create_dir_all(d).unwrap();
        }
        sweep(&base);
        let (gone_left, mine_left, other_left) = (gone.exists(), mine.exists(), other.exists());
        let _ = std::fs::remove_dir_all(&base);
        assert!(!gone_left && mine_left && other_left);
    }

    /// A short TLS record from the client (its answer to a server's renegotiation
    /// request or key update) continues the answer under way; any other write, however
    /// short, and a longer record start a new one.
    #[tokio::test]
    async fn a_short_tls_record_does_not_start_a_new_answer() {
        let port = server(3000).await;
        let (dir, guard) = start(Upstream::new("127.0.0.1", port), "s", 5000).unwrap();
        let mut client = UnixStream::connect(dir.join("s")).await.unwrap();
        // A plain-text request as short as a MySQL statement execution, twice: each
        // starts an answer of its own.
        let execute = [0x0a, 0, 0, 0, 0x17, 1, 0, 0, 0, 0, 1, 0, 0, 0];
        for _ in 0..2 {
            client.write_all(&execute).await.unwrap();
            assert_eq!(read_answer(&mut client, 3000).await, 3000);
        }
        // A request over TLS (a record longer than 32 bytes): a new answer.
        let mut request = vec![0x17, 0x03, 0x03, 0, 36];
        request.resize(41, 0xaa);
        client.write_all(&request).await.unwrap();
        assert_eq!(read_answer(&mut client, 3000).await, 3000);
        assert_eq!(guard.budget().overflows(), 0);
        // A TLS 1.3 KeyUpdate record (27 bytes): counted with the answer before, which
        // together exceed the limit.
        let mut key_update = vec![0x17, 0x03, 0x03, 0, 22];
        key_update.resize(27, 0xbb);
        client.write_all(&key_update).await.unwrap();
        assert!(read_answer(&mut client, 3000).await < 3000);
        assert_eq!(guard.budget().overflows(), 1);
    }

    #[test]
    fn the_rule_of_a_new_answer() {
        let record = |kind: u8, len: usize| {
            let mut r = vec![kind, 0x03, 0x03, 0, 0];
            r.resize(len, 0);
            r
        };
        // A TLS 1.2 no_renegotiation alert (AES-GCM 31, ChaCha20 23) and a TLS 1.3
        // KeyUpdate: no new answer.
        assert!(!starts_answer(&record(0x15, 31)));
        assert!(!starts_answer(&record(0x15, 23)));
        assert!(!starts_answer(&record(0x17, 27)));
        assert!(!starts_answer(&record(0x17, CONTROL_RECORD_MAX)));
        // Longer records, and short plain text (PostgreSQL Sync, a MySQL packet whose
        // payload length is 0x15 or 0x17), start one.
        assert!(starts_answer(&record(0x17, CONTROL_RECORD_MAX + 1)));
        assert!(starts_answer(b"S\0\0\0\x04"));
        assert!(starts_answer(&[0x15, 0, 0, 0, 0x17]));
        assert!(starts_answer(&[0x17, 0, 0, 0, 0x17]));
        assert!(starts_answer(b"q"));
    }

    #[test]
    fn an_ipv6_host_loses_its_brackets() {
        assert_eq!(Upstream::new("[::1]", 5432).host, "::1");
        assert_eq!(Upstream::new("::1", 5432).host, "::1");
        assert_eq!(Upstream::new("db.example", 3306).host, "db.example");
        assert_eq!(Upstream::new("[fe80::1%lo]", 1).host, "fe80::1%lo");
    }

    /// The relay reaches a server on the IPv6 loopback from the host a URL gives sqlx.
    #[tokio::test]
    async fn a_server_at_an_ipv6_address_is_reached() {
        let Ok(listener) = tokio::net::TcpListener::bind("[::1]:0").await else {
            eprintln!("no IPv6 loopback here; skipped");
            return;
        };
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 16];
            if socket.read(&mut buf).await.is_ok_and(|n| n > 0) {
                let _ = socket.write_all(b"pong").await;
            }
        });
        let (dir, guard) = start(Upstream::new("[::1]", port), "s", 5000).unwrap();
        let mut client = UnixStream::connect(dir.join("s")).await.unwrap();
        client.write_all(b"q").await.unwrap();
        let answer = tokio::time::timeout(Duration::from_secs(5), read_answer(&mut client, 4));
        assert_eq!(
            answer.await.ok(),
            Some(4),
            "{:?}",
            guard.budget().upstream_error()
        );
    }

    #[tokio::test]
    async fn an_unreachable_server_is_remembered_for_the_error() {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let upstream = Upstream {
            host: "127.0.0.1".into(),
            port,
        };
        let (dir, guard) = start(upstream, "s", 5000).unwrap();
        let mut client = UnixStream::connect(dir.join("s")).await.unwrap();
        assert_eq!(read_answer(&mut client, 1).await, 0);
        let why = guard.budget().upstream_error().unwrap();
        assert!(why.contains("refused"), "{why}");
    }
}
