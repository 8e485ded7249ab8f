//! A bounded relay between rskafka and the brokers: every response is read here first, so
//! a compressed batch that would inflate past the bound is refused before rskafka inflates
//! it.
//!
//! rskafka bounds a response frame (`max_message_size`) but decompresses a gzip batch in
//! it whole, inside one poll of the task that reads it: a 1.7 MB gzip batch (one record of
//! 256 MiB of zeros) grew the process by 276 MiB, in 2.8 s of CPU that no deadline could
//! interrupt. (Snappy is decompressed into at most the size its header claims.) rskafka
//! has no hook to wrap its socket, but it connects through a SOCKS5 proxy when told to
//! (`ClientBuilder::socks5_proxy`, feature `transport-socks5`) — to every broker, those the
//! metadata names included. So the source runs a SOCKS5 listener of its own on 127.0.0.1
//! ([`Relay`]); each connection learns its broker from the SOCKS request (only the
//! configured brokers and those a metadata response named are reached: the listener is no
//! open proxy), passes the client's requests on as they are (noting each one's API key,
//! version and correlation ID), and reads the broker's responses frame by frame, each at
//! most the frame bound. The record batches of a Fetch response (version 4, the one rskafka
//! speaks) are checked before it is passed on, against one budget for the whole response
//! (rskafka inflates every batch of every partition of a response in one decode): gzip is
//! inflated into nothing, stopping once the response's batches pass the batch bound
//! together (on a blocking thread, which stops too when the connection ends); snappy's
//! claimed sizes are added in. A response over either bound closes the connection and is
//! remembered with the topic and partition its request asked for
//! ([`Relay::take_refused`]): the source reports it as too large, and a consumer of that
//! partition steps over the batch. A response to a request
//! never sent (rskafka would log a warning for each and read on) breaks the connection
//! off ([`Relay::take_broken`]).

use std::collections::{HashMap, HashSet, VecDeque};
use std::io::Read;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

/// API keys the relay reads.
const FETCH: i16 = 1;
const METADATA: i16 = 3;

/// The most requests of one connection waiting for their response that the relay keeps
/// track of (rskafka has a handful in flight).
const MAX_PENDING: usize = 1024;

/// The most refusals kept until the source takes them (the oldest go first).
const MAX_REFUSALS: usize = 64;

/// The partition a Fetch request asked for, `(topic, partition)` (rskafka asks for one at
/// a time); `None` for other requests, or when it cannot be told.
type Partition = Option<(String, i32)>;

/// A request waiting for its response: API key, version, the partition of a Fetch.
struct Pending {
    key: i16,
    version: i16,
    partition: Partition,
}

/// A response refused for its size, until the source takes it.
struct Refusal {
    partition: Partition,
    why: String,
    at: Instant,
}

/// What the relay's connections share with the source.
struct Shared {
    /// The largest response frame passed on, in bytes.
    frame_bound: usize,
    /// The most a record batch may inflate to, in bytes.
    batch_bound: u64,
    /// How long reaching a broker may take.
    connect_timeout: Duration,
    /// The brokers that may be reached: `(host, port)`, host in lower case.
    allowed: Mutex<HashSet<(String, u16)>>,
    /// The responses refused lately, oldest first (at most [`MAX_REFUSALS`]), until the
    /// source takes them.
    refused: Mutex<VecDeque<Refusal>>,
    /// Why the last connection was broken off (the broker broke the protocol), until the
    /// source takes it.
    broken: Mutex<Option<String>>,
}

impl Shared {
    fn refuse(&self, partition: Partition, why: String) {
        tracing::debug!(%why, ?partition, "kafka relay: a response was refused");
        let mut refused = self.refused.lock().unwrap_or_else(PoisonError::into_inner);
        if refused.len() >= MAX_REFUSALS {
            refused.pop_front();
        }
        refused.push_back(Refusal {
            partition,
            why,
            at: Instant::now(),
        });
    }

    fn break_off(&self, why: String) {
        tracing::debug!(%why, "kafka relay: a connection was broken off");
        *self.broken.lock().unwrap_or_else(PoisonError::into_inner) = Some(why);
    }

    fn allows(&self, host: &str, port: u16) -> bool {
        let allowed = self.allowed.lock().unwrap_or_else(PoisonError::into_inner);
        allowed.contains(&(host.to_ascii_lowercase(), port))
    }

    fn allow(&self, brokers: impl IntoIterator<Item = (String, u16)>) {
        let mut allowed = self.allowed.lock().unwrap_or_else(PoisonError::into_inner);
        for (host, port) in brokers {
            // A cluster names a handful of brokers; a server naming thousands is not one.
            if allowed.len() < 4096 {
                allowed.insert((host.to_ascii_lowercase(), port));
            }
        }
    }
}

/// The relay's SOCKS5 listener and its connections; all of them end when it is dropped.
pub(crate) struct Relay {
    addr: SocketAddr,
    shared: Arc<Shared>,
    /// The bound listener (each accept loop takes a clone of it).
    listener: std::net::TcpListener,
    /// The accept loop, once started.
    accept: Mutex<Option<tokio::task::AbortHandle>>,
}

impl Drop for Relay {
    fn drop(&mut self) {
        if let Some(accept) = &*self.accept.lock().unwrap_or_else(PoisonError::into_inner) {
            accept.abort();
        }
    }
}

impl Relay {
    /// Binds a listener on 127.0.0.1 for rskafka's connections to `brokers` (`host:port`)
    /// and the brokers their metadata names; [`Relay::ensure_running`] accepts them.
    pub(crate) fn bind(
        brokers: &[String],
        frame_bound: usize,
        batch_bound: u64,
        connect_timeout: Duration,
    ) -> std::io::Result<Relay> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            frame_bound,
            batch_bound,
            connect_timeout,
            allowed: Mutex::default(),
            refused: Mutex::default(),
            broken: Mutex::default(),
        });
        shared.allow(brokers.iter().filter_map(|b| {
            let (host, port) = b.rsplit_once(':')?;
            Some((host.trim_matches(['[', ']']).to_owned(), port.parse().ok()?))
        }));
        Ok(Relay {
            addr,
            shared,
            listener,
            accept: Mutex::default(),
        })
    }

    /// Accepts connections on the current runtime, unless a loop runs already: the
    /// source may be used in one runtime that ends, then in another (the loop and its
    /// connections end with their runtime).
    pub(crate) fn ensure_running(&self) -> std::io::Result<()> {
        let mut accept = self.accept.lock().unwrap_or_else(PoisonError::into_inner);
        if accept.as_ref().is_some_and(|h| !h.is_finished()) {
            return Ok(());
        }
        let listener = TcpListener::from_std(self.listener.try_clone()?)?;
        let shared = self.shared.clone();
        let task = crate::task::spawn(async move {
            let mut connections = JoinSet::new();
            loop {
                match listener.accept().await {
                    Ok((client, _)) => {
                        let _ = client.set_nodelay(true);
                        connections.spawn(relay(client, shared.clone()));
                    }
                    Err(e) => {
                        tracing::debug!(error = %e, "kafka relay: accepting failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
                while connections.try_join_next().is_some() {}
            }
        });
        *accept = Some(task.abort_handle());
        Ok(())
    }

    /// The listener's address, for `ClientBuilder::socks5_proxy`.
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Why a response was refused for its size, if one was lately (within twice the
    /// connect timeout: rskafka retries a closed connection until its deadline, then the
    /// source asks). With a `partition`, only a refusal of a Fetch of that partition of
    /// `topic` is taken (a consumer steps over the batch it names: never one of another
    /// consumer); without, one of any partition of `topic` or of no partition.
    pub(crate) fn take_refused(&self, topic: &str, partition: Option<i32>) -> Option<String> {
        let mut refused = self
            .shared
            .refused
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let fresh = self.shared.connect_timeout.saturating_mul(2);
        refused.retain(|r| r.at.elapsed() <= fresh);
        let at = refused
            .iter()
            .position(|r| match (&r.partition, partition) {
                (Some((t, p)), Some(want)) => t == topic && *p == want,
                (Some((t, _)), None) => t == topic,
                (None, want) => want.is_none(),
            })?;
        refused.remove(at).map(|r| r.why)
    }

    /// Why a connection was broken off since the last call (the broker answered a request
    /// it was never sent), if one was.
    pub(crate) fn take_broken(&self) -> Option<String> {
        self.shared
            .broken
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }
}

/// One client connection: the SOCKS5 handshake, then both directions until either ends.
async fn relay(mut client: TcpStream, shared: Arc<Shared>) {
    let handshake = tokio::time::timeout(shared.connect_timeout, socks(&mut client, &shared));
    let Ok(Some(server)) = handshake.await else {
        return;
    };
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    let pending = Mutex::new(HashMap::<i32, Pending>::new());
    tokio::select! {
        _ = requests(client_read, server_write, &pending, &shared) => {}
        _ = responses(server_read, client_write, &pending, &shared) => {}
    }
}

/// The SOCKS5 handshake (no authentication, CONNECT): the broker's connection, or `None`
/// (the client was told why, as far as SOCKS can say it).
async fn socks(client: &mut TcpStream, shared: &Shared) -> Option<TcpStream> {
    let mut head = [0u8; 2];
    client.read_exact(&mut head).await.ok()?;
    let mut methods = vec![0u8; usize::from(head[1])];
    client.read_exact(&mut methods).await.ok()?;
    if head[0] != 5 || !methods.contains(&0) {
        let _ = client.write_all(&[5, 0xFF]).await;
        return None;
    }
    client.write_all(&[5, 0]).await.ok()?;
    let mut request = [0u8; 4];
    client.read_exact(&mut request).await.ok()?;
    let host = match request[3] {
        1 => {
            let mut ip = [0u8; 4];
            client.read_exact(&mut ip).await.ok()?;
            std::net::Ipv4Addr::from(ip).to_string()
        }
        3 => {
            let len = client.read_u8().await.ok()?;
            let mut name = vec![0u8; usize::from(len)];
            client.read_exact(&mut name).await.ok()?;
            String::from_utf8(name).ok()?
        }
        4 => {
            let mut ip = [0u8; 16];
            client.read_exact(&mut ip).await.ok()?;
            std::net::Ipv6Addr::from(ip).to_string()
        }
        _ => return None,
    };
    let port = client.read_u16().await.ok()?;
    // 2: not allowed by the rule set; 5: refused; 7: command not supported.
    let reply = |code: u8| [5, code, 0, 1, 0, 0, 0, 0, 0, 0];
    if request[1] != 1 {
        let _ = client.write_all(&reply(7)).await;
        return None;
    }
    if !shared.allows(&host, port) {
        tracing::debug!(%host, port, "kafka relay: a broker no configuration or metadata named was refused");
        let _ = client.write_all(&reply(2)).await;
        return None;
    }
    match TcpStream::connect((host.as_str(), port)).await {
        Ok(server) => {
            let _ = server.set_nodelay(true);
            client.write_all(&reply(0)).await.ok()?;
            Some(server)
        }
        Err(_) => {
            let _ = client.write_all(&reply(5)).await;
            None
        }
    }
}

/// Reads one frame (a 4-byte length, then that many bytes) of at most `bound` bytes.
/// `Err` with the announced length when it is over.
async fn frame<R: AsyncRead + Unpin>(
    reader: &mut R,
    bound: usize,
) -> std::io::Result<Result<Vec<u8>, u64>> {
    let len = reader.read_u32().await?;
    let Ok(len) = usize::try_from(len) else {
        return Ok(Err(u64::from(len)));
    };
    if len > bound {
        return Ok(Err(len as u64));
    }
    let mut body = vec![0u8; len];
    reader.read_exact(&mut body).await?;
    Ok(Ok(body))
}

/// The client's requests, passed on as they are; each one's API key and version noted by
/// its correlation ID.
async fn requests<R, W>(
    mut client: R,
    mut server: W,
    pending: &Mutex<HashMap<i32, Pending>>,
    shared: &Shared,
) where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    loop {
        let Ok(Ok(body)) = frame(&mut client, shared.frame_bound).await else {
            return;
        };
        if let Some(head) = body.get(..8) {
            let key = i16::from_be_bytes([head[0], head[1]]);
            let version = i16::from_be_bytes([head[2], head[3]]);
            let correlation = i32::from_be_bytes([head[4], head[5], head[6], head[7]]);
            let partition = match (key, version) {
                (FETCH, 4) => fetch_partition(&body[8..]),
                _ => None,
            };
            let mut pending = pending.lock().unwrap_or_else(PoisonError::into_inner);
            if pending.len() >= MAX_PENDING {
                pending.clear();
            }
            pending.insert(
                correlation,
                Pending {
                    key,
                    version,
                    partition,
                },
            );
        }
        let len = (body.len() as u32).to_be_bytes();
        if server.write_all(&len).await.is_err() || server.write_all(&body).await.is_err() {
            return;
        }
    }
}

/// The broker's responses, each read whole (at most the frame bound) and checked before it
/// is passed on.
async fn responses<R, W>(
    mut server: R,
    mut client: W,
    pending: &Mutex<HashMap<i32, Pending>>,
    shared: &Arc<Shared>,
) where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    // Set when the connection ends (the relay dropped, the client gone): an inflation
    // under way on a blocking thread stops at its next step.
    let given_up = GivenUp::default();
    loop {
        let body = match frame(&mut server, shared.frame_bound).await {
            Ok(Ok(body)) => body,
            Ok(Err(announced)) => {
                let partition = oversized(&mut server, pending).await;
                shared.refuse(
                    partition,
                    format!(
                        "a response of {announced} bytes, over the bound of {} bytes",
                        shared.frame_bound
                    ),
                );
                return;
            }
            Err(_) => return,
        };
        let correlation = body
            .get(..4)
            .map(|c| i32::from_be_bytes([c[0], c[1], c[2], c[3]]));
        let request = correlation.and_then(|c| {
            pending
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(&c)
        });
        // A response to no request: rskafka would log a warning for each one and read on
        // (a flood of them is a flood of log lines); the connection is broken off instead.
        let Some(request) = request else {
            shared.break_off(format!(
                "the broker answered a request it was never sent (correlation ID {})",
                correlation.map_or_else(|| "missing".to_owned(), |c| c.to_string())
            ));
            return;
        };
        let body = match (request.key, request.version) {
            (FETCH, 4) => {
                let bound = shared.batch_bound;
                // Inflating takes time (up to the bound): on a blocking thread.
                let handle = tokio::runtime::Handle::current();
                let gone = given_up.0.clone();
                let checked = crate::task::spawn_blocking(&handle, move || {
                    let verdict = check_fetch(&body[4..], bound, &gone);
                    (body, verdict)
                })
                .await;
                match checked {
                    Ok((body, Ok(()))) => body,
                    Ok((_, Err(why))) => {
                        shared.refuse(request.partition, why);
                        return;
                    }
                    Err(_) => return,
                }
            }
            (METADATA, version) => {
                shared.allow(metadata_brokers(&body[4..], version));
                body
            }
            _ => body,
        };
        let len = (body.len() as u32).to_be_bytes();
        if client.write_all(&len).await.is_err() || client.write_all(&body).await.is_err() {
            return;
        }
    }
}

/// The partition of the request a response over the frame bound answers, when it can be
/// told: the only request waiting, or the one its correlation ID (the 4 bytes after the
/// length) names, if they come within 200 ms.
async fn oversized<R: AsyncRead + Unpin>(
    server: &mut R,
    pending: &Mutex<HashMap<i32, Pending>>,
) -> Partition {
    {
        let pending = pending.lock().unwrap_or_else(PoisonError::into_inner);
        if pending.len() <= 1 {
            return pending.values().next().and_then(|p| p.partition.clone());
        }
    }
    let read = tokio::time::timeout(Duration::from_millis(200), server.read_i32());
    let correlation = read.await.ok()?.ok()?;
    let mut pending = pending.lock().unwrap_or_else(PoisonError::into_inner);
    pending.remove(&correlation)?.partition
}

/// The topic and partition a Fetch request (version 4, after its correlation ID) asks for,
/// when it asks for exactly one.
fn fetch_partition(body: &[u8]) -> Partition {
    let mut c = Cursor(body);
    let client_id = c.i16()?;
    c.take(usize::try_from(client_id).unwrap_or(0))?; // nullable
    c.take(4 + 4 + 4 + 4 + 1)?; // replica, max wait, min bytes, max bytes, isolation level
    if c.count()? != 1 {
        return None;
    }
    let topic = String::from_utf8(c.string()?.to_vec()).ok()?;
    if c.count()? != 1 {
        return None;
    }
    Some((topic, c.i32()?))
}

/// Set when dropped.
#[derive(Default)]
struct GivenUp(Arc<AtomicBool>);

impl Drop for GivenUp {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// A reader of Kafka's big-endian primitives over a byte slice; `None` past its end.
struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if n > self.0.len() {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }
    fn i16(&mut self) -> Option<i16> {
        self.take(2).map(|b| i16::from_be_bytes([b[0], b[1]]))
    }
    fn i32(&mut self) -> Option<i32> {
        self.take(4)
            .map(|b| i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn string(&mut self) -> Option<&'a [u8]> {
        let len = self.i16()?;
        self.take(usize::try_from(len).ok()?)
    }
    /// An array's length (a null array is empty).
    fn count(&mut self) -> Option<usize> {
        Some(usize::try_from(self.i32()?).unwrap_or(0))
    }
}

/// The brokers (`host`, `port`) a Metadata response (versions 0 to 4) names; what cannot be
/// read is left out.
fn metadata_brokers(body: &[u8], version: i16) -> Vec<(String, u16)> {
    let mut c = Cursor(body);
    let mut brokers = Vec::new();
    let mut read = || -> Option<()> {
        if version >= 3 {
            c.i32()?; // throttle time
        }
        for _ in 0..c.count()?.min(4096) {
            c.i32()?; // node ID
            let host = String::from_utf8(c.string()?.to_vec()).ok()?;
            let port = u16::try_from(c.i32()?).ok()?;
            if version >= 1 {
                c.string(); // rack (nullable: length -1)
            }
            brokers.push((host, port));
        }
        Some(())
    };
    let _ = read();
    brokers
}

/// Whether the record batches of a Fetch response (version 4) stay within `bound` bytes
/// once inflated, all of them together (rskafka inflates every batch of every partition
/// of a response in one decode: many small batches each under the bound are as much as
/// one over it). What cannot be read is let through (rskafka reports it); so is all of it
/// once `gone` is set (nobody waits for the answer).
fn check_fetch(body: &[u8], bound: u64, gone: &AtomicBool) -> Result<(), String> {
    let mut c = Cursor(body);
    let mut batches = Vec::new();
    let mut read = || -> Option<()> {
        c.i32()?; // throttle time
        for _ in 0..c.count()? {
            c.string()?; // topic
            for _ in 0..c.count()? {
                c.take(4 + 2 + 8 + 8)?; // partition, error, high watermark, last stable offset
                let aborted = c.count()?;
                c.take(aborted.checked_mul(16)?)?;
                let records = c.i32()?;
                let Ok(len) = usize::try_from(records) else {
                    continue; // null
                };
                batches.push(c.take(len)?);
            }
        }
        Some(())
    };
    let _ = read();
    let mut budget = Budget {
        bound,
        remaining: bound,
    };
    batches
        .into_iter()
        .try_for_each(|records| check_records(records, &mut budget, gone))
}

/// What the batches of one response may still inflate to.
struct Budget {
    /// The bound of the whole response.
    bound: u64,
    /// What is left of it.
    remaining: u64,
}

impl Budget {
    /// Takes `n` bytes; `false` (and nothing taken) when fewer remain.
    fn take(&mut self, n: u64) -> bool {
        match self.remaining.checked_sub(n) {
            Some(left) => {
                self.remaining = left;
                true
            }
            None => false,
        }
    }

    /// Says, after "past the bound of … bytes", what the batches before took.
    fn before(&self) -> String {
        match self.bound - self.remaining {
            0 => String::new(),
            used => format!(" for one response (its batches before it inflate to {used} bytes)"),
        }
    }
}

/// The batches of one partition's records.
fn check_records(records: &[u8], budget: &mut Budget, gone: &AtomicBool) -> Result<(), String> {
    let mut c = Cursor(records);
    while let (Some(base_offset), Some(len)) = (c.take(8), c.i32()) {
        let Some(batch) = usize::try_from(len).ok().and_then(|l| c.take(l)) else {
            return Ok(()); // a partial batch at the end: rskafka drops it
        };
        let offset = i64::from_be_bytes(base_offset.try_into().unwrap_or([0; 8]));
        check_batch(batch, budget, gone)
            .map_err(|why| format!("the batch at offset {offset} {why}"))?;
    }
    Ok(())
}

/// One batch (after its length): leader epoch, magic, CRC, attributes, then the fixed
/// fields and the records, compressed as the attributes say.
fn check_batch(batch: &[u8], budget: &mut Budget, gone: &AtomicBool) -> Result<(), String> {
    // Epoch 4, magic 1, CRC 4, attributes 2, last offset delta 4, timestamps 16,
    // producer ID 8, producer epoch 2, base sequence 4, record count 4.
    const RECORDS_AT: usize = 49;
    let (Some(&2), Some(attributes), Some(payload)) =
        (batch.get(4), batch.get(9..11), batch.get(RECORDS_AT..))
    else {
        return Ok(());
    };
    match attributes[1] & 0x07 {
        1 => {
            let mut inflating = flate2::read::GzDecoder::new(payload);
            let mut step = vec![0u8; 64 * 1024];
            let mut inflated = 0u64;
            while inflated <= budget.remaining && !gone.load(Ordering::Relaxed) {
                match inflating.read(&mut step) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => inflated += n as u64,
                }
            }
            if !budget.take(inflated) {
                return Err(format!(
                    "(gzip, {} bytes) inflates past the bound of {} bytes{}",
                    payload.len(),
                    budget.bound,
                    budget.before()
                ));
            }
        }
        2 => {
            let claimed = snappy_claims(payload);
            if !budget.take(claimed) {
                return Err(format!(
                    "(snappy, {} bytes) claims {claimed} bytes once inflated, over the bound of {} bytes{}",
                    payload.len(),
                    budget.bound,
                    budget.before()
                ));
            }
        }
        _ => {}
    }
    Ok(())
}

/// What snappy data claims to inflate to: the length at the head of raw snappy, or the sum
/// over the chunks of Java's framing (as rskafka reads them).
fn snappy_claims(payload: &[u8]) -> u64 {
    const JAVA_MAGIC: &[u8] = &[0x82, b'S', b'N', b'A', b'P', b'P', b'Y', 0];
    fn uvarint(bytes: &[u8]) -> u64 {
        let mut value = 0u64;
        for (i, b) in bytes.iter().take(10).enumerate() {
            value |= u64::from(b & 0x7F) << (7 * i);
            if b & 0x80 == 0 {
                break;
            }
        }
        value
    }
    let Some(framed) = payload.strip_prefix(JAVA_MAGIC) else {
        return uvarint(payload);
    };
    let mut c = Cursor(framed.get(8..).unwrap_or_default()); // version, compatibility
    let mut claimed = 0u64;
    while let Some(len) = c.i32() {
        let Some(chunk) = usize::try_from(len).ok().and_then(|l| c.take(l)) else {
            break;
        };
        claimed = claimed.saturating_add(uvarint(chunk));
    }
    claimed
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// Somebody waits for every answer.
    static GONE: AtomicBool = AtomicBool::new(false);

    /// A Fetch v4 response body (after the correlation ID) with one partition whose
    /// records are `records`.
    fn fetch_body(records: &[u8]) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(&0i32.to_be_bytes());
        b.extend_from_slice(&1i32.to_be_bytes());
        b.extend_from_slice(&6i16.to_be_bytes());
        b.extend_from_slice(b"config");
        b.extend_from_slice(&1i32.to_be_bytes());
        b.extend_from_slice(&[0; 4 + 2 + 8 + 8]);
        b.extend_from_slice(&(-1i32).to_be_bytes());
        b.extend_from_slice(&(records.len() as i32).to_be_bytes());
        b.extend_from_slice(records);
        b
    }

    /// A batch (with its offset and length) of `compression` over `payload`.
    fn batch(compression: u8, payload: &[u8]) -> Vec<u8> {
        let mut body = vec![0, 0, 0, 0, 2, 0, 0, 0, 0, 0, compression];
        body.resize(49, 0);
        body.extend_from_slice(payload);
        let mut b = 7i64.to_be_bytes().to_vec();
        b.extend_from_slice(&(body.len() as i32).to_be_bytes());
        b.extend_from_slice(&body);
        b
    }

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn a_gzip_batch_is_inflated_up_to_the_bound_only() {
        let small = fetch_body(&batch(1, &gzip(&[0; 1000])));
        assert_eq!(check_fetch(&small, 1000, &GONE), Ok(()));
        let bomb = fetch_body(&batch(1, &gzip(&vec![0; 16 * 1024 * 1024])));
        assert!(bomb.len() < 64 * 1024, "{}", bomb.len());
        // Nobody waits: nothing more is inflated.
        assert_eq!(
            check_fetch(&bomb, 1024 * 1024, &AtomicBool::new(true)),
            Ok(())
        );
        let err = check_fetch(&bomb, 1024 * 1024, &GONE).unwrap_err();
        assert!(err.contains("the batch at offset 7 (gzip"), "{err}");
        assert!(err.contains("past the bound of 1048576 bytes"), "{err}");
    }

    #[test]
    fn snappy_claims_are_added_up_and_other_batches_pass() {
        // Raw snappy claiming 2^32 - 1 bytes (a length varint and nothing else).
        let raw = fetch_body(&batch(2, &[0xFF, 0xFF, 0xFF, 0xFF, 0x0F]));
        assert!(
            check_fetch(&raw, 1 << 20, &GONE)
                .unwrap_err()
                .contains("claims 4294967295")
        );
        let mut java = b"\x82SNAPPY\x00\x00\x00\x00\x01\x00\x00\x00\x01".to_vec();
        for _ in 0..3 {
            java.extend_from_slice(&2i32.to_be_bytes());
            java.extend_from_slice(&[0x80, 0x40]); // 8 KiB claimed
        }
        assert_eq!(
            check_fetch(&fetch_body(&batch(2, &java)), 24 * 1024, &GONE),
            Ok(())
        );
        assert!(check_fetch(&fetch_body(&batch(2, &java)), 24 * 1024 - 1, &GONE).is_err());
        // Uncompressed, truncated, empty: let through.
        assert_eq!(
            check_fetch(&fetch_body(&batch(0, &[1; 100])), 10, &GONE),
            Ok(())
        );
        assert_eq!(
            check_fetch(&fetch_body(&batch(1, &gzip(&[0; 99]))[..30]), 10, &GONE),
            Ok(())
        );
        assert_eq!(check_fetch(&[], 10, &GONE), Ok(()));
    }

    /// Many gzip batches of one response, each under the bound, are refused once they pass
    /// it together (rskafka inflates them all in one decode); so are snappy claims.
    #[test]
    fn the_batches_of_one_response_share_one_bound() {
        let one = batch(1, &gzip(&vec![0; 64 * 1024]));
        let mut records = Vec::new();
        for _ in 0..20 {
            records.extend_from_slice(&one);
        }
        let bound = 1024 * 1024;
        assert_eq!(check_fetch(&fetch_body(&one), bound, &GONE), Ok(()));
        let err = check_fetch(&fetch_body(&records), bound, &GONE).unwrap_err();
        assert!(err.contains("past the bound of 1048576 bytes"), "{err}");
        assert!(
            err.contains("for one response (its batches before it inflate to 1048576 bytes)"),
            "{err}"
        );
        // Exactly the bound together passes.
        assert_eq!(
            check_fetch(&fetch_body(&records[..16 * one.len()]), bound, &GONE),
            Ok(())
        );
        let snappy = batch(2, &[0x80, 0x80, 0x20]); // 512 KiB claimed
        let two = [snappy.clone(), snappy.clone()].concat();
        assert_eq!(check_fetch(&fetch_body(&two), bound, &GONE), Ok(()));
        let three = [two, snappy].concat();
        assert!(check_fetch(&fetch_body(&three), bound, &GONE).is_err());
    }

    #[test]
    fn a_fetch_request_names_its_partition() {
        let mut b = 15i16.to_be_bytes().to_vec();
        b.extend_from_slice(b"component_model");
        b.extend_from_slice(&[0; 17]);
        b.extend_from_slice(&1i32.to_be_bytes());
        b.extend_from_slice(&6i16.to_be_bytes());
        b.extend_from_slice(b"config");
        b.extend_from_slice(&1i32.to_be_bytes());
        b.extend_from_slice(&3i32.to_be_bytes());
        assert_eq!(fetch_partition(&b), Some(("config".to_owned(), 3)));
        let mut null_id = (-1i16).to_be_bytes().to_vec();
        null_id.extend_from_slice(&b[17..]);
        assert_eq!(fetch_partition(&null_id), Some(("config".to_owned(), 3)));
        assert_eq!(fetch_partition(&b[..b.len() - 1]), None);
    }

    /// A consumer takes only the refusal of its own partition; an unkeyed one goes to a
    /// caller that names no partition.
    #[test]
    fn refusals_are_taken_by_their_partition() {
        let relay = Relay::bind(&[], 1024, 1024, Duration::from_secs(10)).expect("bound");
        let shared = &relay.shared;
        shared.refuse(Some(("config".to_owned(), 1)), "one".to_owned());
        shared.refuse(None, "unkeyed".to_owned());
        assert_eq!(relay.take_refused("config", Some(0)), None);
        assert_eq!(relay.take_refused("other", Some(1)), None);
        assert_eq!(
            relay.take_refused("config", Some(1)).as_deref(),
            Some("one")
        );
        assert_eq!(relay.take_refused("config", Some(1)), None);
        assert_eq!(
            relay.take_refused("config", None).as_deref(),
            Some("unkeyed")
        );
        shared.refuse(Some(("config".to_owned(), 2)), "two".to_owned());
        assert_eq!(relay.take_refused("config", None).as_deref(), Some("two"));
        for i in 0..2 * MAX_REFUSALS {
            shared.refuse(None, i.to_string());
        }
        assert_eq!(shared.refused.lock().unwrap().len(), MAX_REFUSALS);
    }

    /// Bound outside a runtime, used in one that ends, then in another: each starts it.
    #[test]
    fn the_relay_answers_in_whichever_runtime_uses_it() {
        let relay = Relay::bind(
            &["127.0.0.1:9".to_owned()],
            1024,
            1024,
            Duration::from_secs(1),
        )
        .expect("bound");
        for _ in 0..2 {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime");
            runtime.block_on(async {
                relay.ensure_running().expect("running");
                let mut client = TcpStream::connect(relay.addr()).await.expect("connected");
                client.write_all(&[5, 1, 0]).await.expect("greeting");
                let mut answer = [0u8; 2];
                let read =
                    tokio::time::timeout(Duration::from_secs(5), client.read_exact(&mut answer));
                read.await.expect("answered in time").expect("answered");
                assert_eq!(answer, [5, 0]);
                // A broker nobody named is refused.
                client
                    .write_all(&[5, 1, 0, 1, 10, 0, 0, 1, 0, 80])
                    .await
                    .expect("request");
                let mut reply = [0u8; 10];
                client.read_exact(&mut reply).await.expect("reply");
                assert_eq!(reply[1], 2);
            });
        }
    }

    #[test]
    fn metadata_names_its_brokers() {
        let mut b = 1i32.to_be_bytes().to_vec();
        b.extend_from_slice(&3i32.to_be_bytes());
        b.extend_from_slice(&9i16.to_be_bytes());
        b.extend_from_slice(b"Broker-1.");
        b.extend_from_slice(&9093i32.to_be_bytes());
        assert_eq!(
            metadata_brokers(&b, 0),
            vec![("Broker-1.".to_owned(), 9093)]
        );
        let mut v1 = b.clone();
        v1.extend_from_slice(&(-1i16).to_be_bytes());
        assert_eq!(metadata_brokers(&v1, 1).len(), 1);
        let mut v3 = 0i32.to_be_bytes().to_vec();
        v3.extend_from_slice(&v1);
        assert_eq!(metadata_brokers(&v3, 3).len(), 1);
    }
}
