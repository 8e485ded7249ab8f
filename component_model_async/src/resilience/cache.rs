//! The cache layer: hits are answered from memory and only the misses go down, together in
//! one `fetch_many`; concurrent misses of one request share one upstream call (single
//! flight, across batches and tasks); an expired value is kept for `stale_for` and served
//! when its refresh fails transiently.
//!
//! With a shared tier ([`CacheTier`], e.g. a [`RedisSource`](crate::RedisSource)), a miss
//! in memory is looked up there before the source, and a value fetched is put there, so
//! the instances of a fleet fetch each key once between them: the first to miss takes a
//! short lock per key (`SET NX`), the others wait for its value (polling the tier) instead
//! of asking the source. The holder renews its lock while its request is out; a waiter
//! whose wait ([`TIER_LOCK_FOR`]) ends with the lock still held answers
//! [`Timeout`](crate::ErrorKind::Timeout) (serving a stale value) rather than send a
//! second request to a source that hangs; only a lock released with neither value nor
//! failure mark sends the waiter to the source. Values stay in the tier `ttl + stale_for`, marked with when they
//! were fetched: fresh for `ttl`, then served (as stale, with their age in the fetch
//! report) only when the source fails — also to an instance that starts during an outage
//! with nothing in memory.
//!
//! When the lock holder's fetch fails transiently (unavailable, timed out), it leaves a
//! short "failing" mark on the key ([`TIER_FAILING_FOR`] after a first failure, doubling
//! with each failure in a row up to [`TIER_FAILING_FOR_MAX`]); until it ends, no instance
//! asks that source for that key: the waiters and every instance that misses serve their
//! stale value, or fail at once with the holder's error kind (a message saying the fleet
//! saw it fail). So an outage costs the upstream one attempt per mark for the whole
//! fleet, not one per instance, when it is weakest.
//!
//! Secret values never go to the tier. The tier failing never fails a fetch: the source is
//! asked as without it.
//!
//! Storage is moka (bounded, per-entry expiry). The single flight is written here because
//! moka's (`try_get_with`) loads one key at a time, and a batch must stay one call: each
//! flight is one `fetch_many` shared by every caller waiting for one of its requests.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use futures::FutureExt;
use futures::future::{BoxFuture, Shared};
use zeroize::Zeroize;

use super::SourceLayer;
use crate::error::SourceError;
use crate::source::{FetchContext, FetchRequest, RawValue, Source};

/// How long an expired value may still be served when its refresh fails, by default.
pub const DEFAULT_STALE_FOR: Duration = Duration::from_secs(300);

/// How many values one cache holds at most, by default.
pub const DEFAULT_CAPACITY: u64 = 10_000;

/// How long the lock an instance takes on a key of the shared tier lasts unless renewed:
/// its holder renews it while it fetches (a holder that died frees the key within this),
/// and the others wait at most this long for its value. A waiter whose wait ends with the
/// lock still held answers [`ErrorKind::Timeout`](crate::ErrorKind::Timeout) (so a stale
/// value is served) rather than asking a source that already has one slow request.
pub const TIER_LOCK_FOR: Duration = Duration::from_secs(5);

/// How long a holder renews its lock at most (a fetch that takes longer than this has
/// no timeout worth the name; the lock then ends and another instance may try).
pub const TIER_LOCK_RENEWED_FOR: Duration = Duration::from_secs(120);

/// The longest time a value stays in the shared tier (`ttl + stale_for` is cut to this: a
/// store has a largest expiry it accepts, and `Duration::MAX` is past it).
pub const TIER_KEPT_AT_MOST: Duration = Duration::from_secs(365 * 24 * 3600);

/// How often an instance waiting for another's value looks at the shared tier.
const TIER_POLL: Duration = Duration::from_millis(20);

/// How long the fleet leaves a source alone for a key after a first failed fetch of it
/// (see the [module](self)); doubled with each failure in a row.
pub const TIER_FAILING_FOR: Duration = Duration::from_secs(1);

/// The longest the fleet leaves a failing source alone for a key.
pub const TIER_FAILING_FOR_MAX: Duration = Duration::from_secs(30);

/// A cache shared by processes (a fleet's instances), behind the in-memory one: the
/// [`RedisSource`](crate::RedisSource) implements it. Keys are built here (a prefix, the
/// source's location and a digest of the request); values are opaque bytes.
#[async_trait::async_trait]
pub trait CacheTier: Send + Sync + 'static {
    /// The values stored under `keys`, in order (`None`: absent).
    async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>, SourceError>;
    /// Stores each value under its key for `ttl`.
    async fn put_many(
        &self,
        entries: &[(String, Vec<u8>)],
        ttl: Duration,
    ) -> Result<(), SourceError>;
    /// Takes the lock named by each key for `ttl` where nobody holds it (`SET NX`); says,
    /// in order, which were taken.
    async fn lock_many(&self, keys: &[String], ttl: Duration) -> Result<Vec<bool>, SourceError>;
    /// Releases locks taken with `lock_many`.
    async fn unlock_many(&self, keys: &[String]) -> Result<(), SourceError>;
    /// Makes the locks this process holds among `keys` (taken with `lock_many`) last `ttl`
    /// from now; leaves the others alone. The holder calls it while its fetch is out, so
    /// a slow source is not asked again by the instances waiting for it.
    ///
    /// By default it does nothing (a tier written before this method existed keeps
    /// working): a lock then expires after the `ttl` it was taken with, and an instance
    /// that finds it gone with no value may ask the source itself.
    async fn extend_many(&self, keys: &[String], ttl: Duration) -> Result<(), SourceError> {
        let _ = (keys, ttl);
        Ok(())
    }

    /// This tier with every key prefixed by `prefix` (keys otherwise start with
    /// `component_model:cache:`).
    fn namespaced(self, prefix: impl Into<String>) -> Namespaced<Self>
    where
        Self: Sized,
    {
        Namespaced::new(self, prefix)
    }
}

/// A tier whose keys all start with `prefix` (one application's or test's key space).
#[derive(Debug, Clone)]
pub struct Namespaced<T> {
    tier: T,
    prefix: String,
}

impl<T: CacheTier> Namespaced<T> {
    /// `tier` with every key prefixed by `prefix`.
    pub fn new(tier: T, prefix: impl Into<String>) -> Self {
        Namespaced {
            tier,
            prefix: prefix.into(),
        }
    }

    fn keys(&self, keys: &[String]) -> Vec<String> {
        keys.iter().map(|k| format!("{}{k}", self.prefix)).collect()
    }
}

#[async_trait::async_trait]
impl<T: CacheTier> CacheTier for Namespaced<T> {
    async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>, SourceError> {
        self.tier.get_many(&self.keys(keys)).await
    }
    async fn put_many(
        &self,
        entries: &[(String, Vec<u8>)],
        ttl: Duration,
    ) -> Result<(), SourceError> {
        let entries: Vec<(String, Vec<u8>)> = entries
            .iter()
            .map(|(k, v)| (format!("{}{k}", self.prefix), v.clone()))
            .collect();
        self.tier.put_many(&entries, ttl).await
    }
    async fn lock_many(&self, keys: &[String], ttl: Duration) -> Result<Vec<bool>, SourceError> {
        self.tier.lock_many(&self.keys(keys), ttl).await
    }
    async fn unlock_many(&self, keys: &[String]) -> Result<(), SourceError> {
        self.tier.unlock_many(&self.keys(keys)).await
    }
    async fn extend_many(&self, keys: &[String], ttl: Duration) -> Result<(), SourceError> {
        self.tier.extend_many(&self.keys(keys), ttl).await
    }
}

/// What the shared tier holds for a request: the value, the request it answers (a digest
/// collision is a miss, never another key's value), when it was fetched and until when it
/// is fresh (milliseconds since the Unix epoch: the instances of a fleet share no clock
/// but the wall clock).
#[derive(serde::Serialize, serde::Deserialize)]
struct TierEntry {
    request: String,
    value: crate::source::StoredValue,
    stored_ms: u64,
    fresh_until_ms: u64,
}

/// A value read from the tier: fresh, or kept past its freshness for stale-if-error.
struct FromTier {
    value: RawValue,
    fresh: bool,
    age: Duration,
}

/// The mark an instance leaves when its fetch of a key failed: no instance asks the source
/// for that key before `retry_at_ms`. Kept a while after that (`failures` in a row set the
/// next mark's length).
#[derive(serde::Serialize, serde::Deserialize)]
struct FailingMark {
    /// `"timeout"` or `"unavailable"`: the failed fetch's kind.
    kind: String,
    failures: u32,
    since_ms: u64,
    retry_at_ms: u64,
}

impl FailingMark {
    /// Whether the mark holds at `now_ms` (this reader's clock). A mark ending further
    /// ahead than the longest mark can was written by a clock running ahead of ours: it
    /// is not believed, so such a writer cannot silence a source for longer than
    /// [`TIER_FAILING_FOR_MAX`].
    fn active(&self, now_ms: u64) -> bool {
        now_ms < self.retry_at_ms && self.retry_at_ms - now_ms <= millis(TIER_FAILING_FOR_MAX)
    }

    /// The error a fetch the mark holds back answers with.
    fn error(&self, now_ms: u64) -> SourceError {
        let kind = match self.kind.as_str() {
            "timeout" => crate::ErrorKind::Timeout,
            _ => crate::ErrorKind::Unavailable,
        };
        let ago = Duration::from_millis(now_ms.saturating_sub(self.since_ms));
        let left = Duration::from_millis(self.retry_at_ms.saturating_sub(now_ms));
        let times = match self.failures {
            1 => "once".to_owned(),
            n => format!("{n} times in a row"),
        };
        let ago = match ago.as_secs() {
            0 => "just now".to_owned(),
            s => format!("{} ago", crate::error::humanize(Duration::from_secs(s))),
        };
        SourceError::new(kind).with_message(format!(
            "the source is failing: an instance sharing this cache saw it fail {times}, {ago}; not asked again for {} (the shared cache's failure mark)",
            crate::error::humanize(Duration::from_secs(left.as_secs().max(1))),
        ))
    }
}

/// The length of the mark left after `failures` failures in a row.
fn failing_for(failures: u32) -> Duration {
    let doubled = TIER_FAILING_FOR.saturating_mul(1u32 << failures.saturating_sub(1).min(16));
    doubled.min(TIER_FAILING_FOR_MAX)
}

/// Milliseconds since the Unix epoch.
fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// How long a value stays in the tier: `ttl + stale_for`, at most [`TIER_KEPT_AT_MOST`].
fn tier_ttl(ttl: Duration, stale_for: Duration) -> Duration {
    ttl.saturating_add(stale_for).min(TIER_KEPT_AT_MOST)
}

/// FNV-1a, 64 bits: the same digest in every process and build.
fn digest(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}
/// Caches the answers of the wrapped source for `ttl` (see the [module](self)).
///
/// Clones of the layer, and every source it wraps, share one cache.
///
/// ```
/// use std::time::Duration;
/// use component_model_async::resilience::{CacheLayer, SourceExt};
/// use component_model_async::{EnvSource, Sources};
///
/// let cached = EnvSource::from_map([("PORT", "8080")])
///     .with_layer(CacheLayer::new(Duration::from_secs(60)).stale_for(Duration::from_secs(600)));
/// let sources = Sources::new().register("settings", cached);
/// # let _ = sources;
/// ```
#[derive(Clone)]
pub struct CacheLayer {
    ttl: Duration,
    stale_for: Duration,
    state: Arc<CacheState>,
    tier: Option<Arc<dyn CacheTier>>,
}

impl std::fmt::Debug for CacheLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CacheLayer")
            .field("ttl", &self.ttl)
            .field("stale_for", &self.stale_for)
            .field("entries", &self.state.entries.entry_count())
            .field("shared_tier", &self.tier.is_some())
            .finish()
    }
}

impl CacheLayer {
    /// Values are fresh for `ttl`, then kept [`DEFAULT_STALE_FOR`] for stale-if-error.
    pub fn new(ttl: Duration) -> Self {
        CacheLayer {
            ttl,
            stale_for: DEFAULT_STALE_FOR,
            state: Arc::new(CacheState::new(DEFAULT_CAPACITY)),
            tier: None,
        }
    }

    /// Puts a shared tier behind the memory (see the [module](self)): e.g. a
    /// [`RedisSource`](crate::RedisSource), so instances starting together fetch each key
    /// once between them.
    #[must_use]
    pub fn shared(mut self, tier: impl CacheTier) -> Self {
        self.tier = Some(Arc::new(tier));
        self
    }

    /// How long an expired value is kept to be served when its refresh fails transiently
    /// (`Duration::ZERO`: never served stale).
    #[must_use]
    pub fn stale_for(mut self, stale_for: Duration) -> Self {
        self.stale_for = stale_for;
        self
    }

    /// Holds at most `capacity` values (least recently used go first).
    #[must_use]
    pub fn max_capacity(mut self, capacity: u64) -> Self {
        self.state = Arc::new(CacheState::new(capacity));
        self
    }

    /// Forgets every cached value.
    pub fn invalidate_all(&self) {
        self.state.invalidate_all();
    }

    pub(crate) fn sharing(
        ttl: Duration,
        stale_for: Duration,
        state: Arc<CacheState>,
        tier: Option<Arc<dyn CacheTier>>,
    ) -> Self {
        CacheLayer {
            ttl,
            stale_for,
            state,
            tier,
        }
    }
}

impl SourceLayer for CacheLayer {
    fn layer(&self, inner: Arc<dyn Source>) -> Arc<dyn Source> {
        Arc::new(CacheSource {
            inner,
            ttl: self.ttl,
            stale_for: self.stale_for,
            state: self.state.clone(),
            tier: self.tier.clone(),
        })
    }
}

/// A value in the cache; its bytes are zeroed when the last holder drops it (evicted,
/// replaced or invalidated), so a secret does not linger in freed memory.
struct Cached {
    value: RawValue,
    stored: Instant,
    fresh_until: Instant,
    keep_for: Duration,
}

impl Drop for Cached {
    fn drop(&mut self) {
        zeroize_raw(&mut self.value);
    }
}

fn zeroize_raw(value: &mut RawValue) {
    match value {
        RawValue::Text(s) => s.zeroize(),
        RawValue::Bytes(b) => b.zeroize(),
        RawValue::Json(v) => zeroize_json(v),
    }
}

fn zeroize_json(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::String(s) => s.zeroize(),
        serde_json::Value::Array(items) => items.iter_mut().for_each(zeroize_json),
        serde_json::Value::Object(map) => map.values_mut().for_each(zeroize_json),
        _ => {}
    }
}

struct KeepFor;

impl moka::Expiry<FetchRequest, Arc<Cached>> for KeepFor {
    fn expire_after_create(
        &self,
        _key: &FetchRequest,
        value: &Arc<Cached>,
        _created_at: Instant,
    ) -> Option<Duration> {
        Some(value.keep_for)
    }

    fn expire_after_update(
        &self,
        _key: &FetchRequest,
        value: &Arc<Cached>,
        _updated_at: Instant,
        _duration_until_expiry: Option<Duration>,
    ) -> Option<Duration> {
        Some(value.keep_for)
    }
}

type Answers = Arc<Vec<Result<RawValue, SourceError>>>;
type Flight = Shared<BoxFuture<'static, Answers>>;
/// A flight registered for a request: the flight, the request's place in it, its number.
type Registered = (Flight, usize, u64);

/// One cache: values by request, and the upstream calls in flight.
pub(crate) struct CacheState {
    entries: moka::sync::Cache<FetchRequest, Arc<Cached>, foldhash::fast::RandomState>,
    inflight: Mutex<HashMap<FetchRequest, Registered>>,
    /// Numbers flights, so a flight unregisters only itself.
    flights: std::sync::atomic::AtomicU64,
}

impl CacheState {
    pub(crate) fn new(capacity: u64) -> Self {
        CacheState {
            entries: moka::sync::Cache::builder()
                .max_capacity(capacity)
                .expire_after(KeepFor)
                .build_with_hasher(foldhash::fast::RandomState::default()),
            inflight: Mutex::new(HashMap::new()),
            flights: std::sync::atomic::AtomicU64::new(0),
        }
    }

    pub(crate) fn invalidate_all(&self) {
        self.entries.invalidate_all();
    }

    /// Forgets the values whose key (as the source names it: a Consul key, a Vault path,
    /// a URL, a query's bound key) is `key`. Returns how many were forgotten.
    pub(crate) fn invalidate_key(&self, key: &str) -> usize {
        let matching: Vec<Arc<FetchRequest>> = self
            .entries
            .iter()
            .filter(|(r, _)| r.key() == Some(key) || r.native_key().is_some_and(|(_, k)| k == key))
            .map(|(r, _)| r)
            .collect();
        for r in &matching {
            self.entries.invalidate(r.as_ref());
        }
        matching.len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<FetchRequest, Registered>> {
        self.inflight.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A source whose answers are cached (see [`CacheLayer`]).
pub struct CacheSource {
    inner: Arc<dyn Source>,
    ttl: Duration,
    stale_for: Duration,
    state: Arc<CacheState>,
    tier: Option<Arc<dyn CacheTier>>,
}

impl CacheSource {
    /// The wrapped source.
    pub fn get_ref(&self) -> &Arc<dyn Source> {
        &self.inner
    }

    /// One upstream `fetch_many` for `requests`, run as a task of its own so it finishes
    /// (and unregisters) even when every caller waiting for it is cancelled; never
    /// suspended half-way holding a connection or a permit. The caller registers it.
    fn flight(&self, requests: Vec<FetchRequest>, cx: &FetchContext, id: u64) -> Flight {
        // What the layers below note for a fetch report goes to the caller's report; the
        // starter's deadline does not bound the callers that share the flight.
        let cx = cx.without_deadline();
        let inner = self.inner.clone();
        let state = self.state.clone();
        let tier = self.tier.clone();
        let (ttl, stale_for) = (self.ttl, self.stale_for);
        let work = async move {
            let (answers, from_tier) = match tier {
                None => {
                    let refs: Vec<&FetchRequest> = requests.iter().collect();
                    (inner.fetch_many_in(&cx, &refs).await, Vec::new())
                }
                Some(tier) => {
                    let times = (ttl, stale_for);
                    through_tier(tier.as_ref(), &inner, &requests, times, &cx).await
                }
            };
            let now = Instant::now();
            for (request, answer) in requests.iter().zip(&answers) {
                if let Ok(value) = answer {
                    let cached = Cached {
                        value: value.clone(),
                        stored: now,
                        fresh_until: now + ttl,
                        keep_for: ttl.saturating_add(stale_for),
                    };
                    state.entries.insert(request.clone(), Arc::new(cached));
                }
            }
            // The tier's stale values of failed requests go to memory, expired, unless it
            // holds a newer one: served below as any stale value is.
            for (request, stale) in requests.iter().zip(from_tier) {
                let Some(FromTier { value, age, .. }) = stale else {
                    continue;
                };
                let keep_for = ttl.saturating_add(stale_for).saturating_sub(age);
                let stored = now.checked_sub(age).unwrap_or(now);
                let newer = state
                    .entries
                    .get(request)
                    .is_some_and(|c| c.stored >= stored);
                if keep_for.is_zero() || newer {
                    continue;
                }
                let cached = Cached {
                    value,
                    stored,
                    fresh_until: now,
                    keep_for,
                };
                state.entries.insert(request.clone(), Arc::new(cached));
            }
            let mut inflight = state.lock();
            for request in &requests {
                if inflight.get(request).is_some_and(|(_, _, at)| *at == id) {
                    inflight.remove(request);
                }
            }
            Arc::new(answers)
        };
        let work = crate::metrics::carrying(work);
        let task = crate::task::spawn(work);
        async move {
            task.await.unwrap_or_else(|_| {
                Arc::new(Vec::new()) // the task panicked: every waiter gets "no answer"
            })
        }
        .boxed()
        .shared()
    }
}

#[async_trait::async_trait]
impl Source for CacheSource {
    async fn fetch(&self, request: &FetchRequest) -> Result<RawValue, SourceError> {
        super::one(self.fetch_many(&[request]).await)
    }

    async fn fetch_many(&self, requests: &[&FetchRequest]) -> Vec<Result<RawValue, SourceError>> {
        self.fetch_many_in(&FetchContext::new(), requests).await
    }

    async fn fetch_many_in(
        &self,
        cx: &FetchContext,
        requests: &[&FetchRequest],
    ) -> Vec<Result<RawValue, SourceError>> {
        let now = Instant::now();
        // A fresh read (a live refresh after a watched change) passes the cache.
        let fresh = cx.is_fresh_read();
        let mut answers: Vec<Option<Result<RawValue, SourceError>>> = vec![None; requests.len()];
        let mut stale: Vec<Option<Arc<Cached>>> = vec![None; requests.len()];
        // Waiting on flights already started (by anyone), and our own misses; looked up
        // and registered under one hold of the lock, so concurrent misses of a request
        // start one flight.
        let mut waits: Vec<(usize, Flight, usize)> = Vec::new();
        // Fresh hits first, without the lock (a batch served from memory takes no lock).
        let mut maybe: Vec<usize> = Vec::new();
        if !fresh {
            for (i, request) in requests.iter().enumerate() {
                match self.state.entries.get(*request) {
                    Some(cached) if cached.fresh_until > now => {
                        hit(cx, request);
                        answers[i] = Some(Ok(cached.value.clone()));
                    }
                    _ => maybe.push(i),
                }
            }
        } else {
            maybe.extend(0..requests.len());
        }
        if !maybe.is_empty() {
            let mut inflight = self.state.lock();
            let mut misses: Vec<usize> = Vec::new();
            for i in maybe {
                let request = requests[i];
                // Looked up again under the lock: a flight that ended in between has
                // stored its value (and unregistered) under it.
                match self.state.entries.get(request) {
                    Some(cached) if cached.fresh_until > now && !fresh => {
                        hit(cx, request);
                        answers[i] = Some(Ok(cached.value.clone()));
                        continue;
                    }
                    Some(old) => stale[i] = Some(old),
                    None => {}
                }
                crate::metrics::cache(request.source_name(), false);
                match inflight.get(request) {
                    // A fresh read does not take an answer already on its way.
                    Some((flight, at, _)) if !fresh => waits.push((i, flight.clone(), *at)),
                    _ => misses.push(i),
                }
            }
            // A request asked twice in one batch goes up once.
            let mut own: Vec<FetchRequest> = Vec::new();
            let mut own_index: Vec<usize> = Vec::with_capacity(misses.len());
            for &i in &misses {
                match own.iter().position(|r| r == requests[i]) {
                    Some(at) => own_index.push(at),
                    None => {
                        own_index.push(own.len());
                        own.push(requests[i].clone());
                    }
                }
            }
            if !own.is_empty() {
                let id = self
                    .state
                    .flights
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let flight = self.flight(own.clone(), cx, id);
                for (at, request) in own.into_iter().enumerate() {
                    inflight.insert(request, (flight.clone(), at, id));
                }
                for (&i, &at) in misses.iter().zip(&own_index) {
                    waits.push((i, flight.clone(), at));
                }
            }
        }
        for (i, flight, at) in waits {
            let got = flight.await;
            answers[i] = Some(got.get(at).cloned().unwrap_or_else(|| {
                Err(SourceError::new(crate::ErrorKind::Unavailable)
                    .with_message("the source returned fewer answers than requests"))
            }));
        }
        answers
            .into_iter()
            .zip(stale)
            .zip(requests)
            .map(|((answer, stale), request)| {
                let answer = answer.unwrap_or_else(|| Err(SourceError::not_found()));
                if answer.is_ok() {
                    return answer; // nothing to serve stale for
                }
                // What memory holds now: the flight may have put the shared tier's stale
                // value there (an instance that started with nothing), or a newer one.
                let now = Instant::now();
                let stale = match (self.state.entries.get(*request), stale) {
                    (Some(a), Some(b)) if b.stored > a.stored => Some(b),
                    (a, b) => a.or(b),
                };
                match (answer, stale) {
                    // A fresh read (a live refresh) that failed is served stale, and says so.
                    (Err(e), Some(old))
                        if e.kind().is_transient() && old.fresh_until > now && !fresh =>
                    {
                        hit(cx, request);
                        Ok(old.value.clone())
                    }
                    (Err(e), Some(old)) if e.kind().is_transient() => {
                        let age = old.stored.elapsed();
                        tracing::warn!(
                            field = format_args!("{}.{}", request.owner(), request.field()),
                            source = request.source_name(),
                            key = request.native_key().map(|(_, k)| k).unwrap_or_default(),
                            age_s = age.as_secs(),
                            error = %e.kind(),
                            "serving a stale cached value: its refresh failed"
                        );
                        cx.note(request, |n| n.stale = Some(age));
                        Ok(old.value.clone())
                    }
                    (answer, _) => answer,
                }
            })
            .collect()
    }

    crate::forward_description!(inner);
}

/// A read the cache answered: for the report and the metrics.
fn hit(cx: &FetchContext, request: &FetchRequest) {
    cx.note(request, |n| n.cache_hit = true);
    crate::metrics::cache(request.source_name(), true);
}

/// A read the shared tier answered (after the in-process cache missed).
fn tier_hit(cx: &FetchContext, request: &FetchRequest) {
    cx.note(request, |n| n.cache_hit = true);
    crate::metrics::shared_cache_hit(request.source_name());
}

/// The shared tier's keys of a request: its value, its lock, its failure mark.
struct TierKeys {
    value: String,
    lock: String,
    failing: String,
}

/// The keys of `request` from `source`. The digest covers a format version: entries carry
/// their freshness since `v2`, and they are kept past it; an older reader would take such
/// an entry for a fresh one, so the two never share keys.
fn tier_keys(source: &dyn Source, request: &FetchRequest) -> TierKeys {
    let identity = request.identity();
    let location = source.location().unwrap_or_default();
    let value = format!(
        "component_model:cache:{:016x}",
        digest(&format!("v2\n{location}\n{identity}"))
    );
    TierKeys {
        lock: format!("{value}:lock"),
        failing: format!("{value}:failing"),
        value,
    }
}

/// An entry of the tier as this reader sees it at `now_ms`, with its values fresh for
/// `ttl`. The writer's clock may differ from ours: an entry fresh for longer than `ttl`
/// from now was written by a clock running ahead and is taken for stale (the source is
/// asked), and one stored "in the future" is as old as one stored now.
fn decode_entry(
    bytes: &[u8],
    request: &FetchRequest,
    now_ms: u64,
    ttl: Duration,
) -> Option<FromTier> {
    let entry: TierEntry = serde_json::from_slice(bytes).ok()?;
    let fresh = now_ms < entry.fresh_until_ms && entry.fresh_until_ms - now_ms <= millis(ttl);
    (entry.request == request.identity()).then(|| FromTier {
        value: entry.value.into(),
        fresh,
        age: Duration::from_millis(now_ms.saturating_sub(entry.stored_ms.min(now_ms))),
    })
}

/// What the tier says of a key.
enum Seen {
    /// A fresh value.
    Fresh(RawValue),
    /// Another instance saw the source fail: its error, until the mark ends.
    Marked(SourceError),
    /// Neither: the source is to be asked (by us or by the lock holder).
    Missing,
}

/// Reads a key's `value` and failure `mark` as the tier holds them (values fresh for
/// `ttl`); keeps a stale value in `stale` and the failures in a row the mark counts in
/// `failures`.
fn seen(
    (value, mark): (Option<Vec<u8>>, Option<Vec<u8>>),
    request: &FetchRequest,
    ttl: Duration,
    stale: &mut Option<FromTier>,
    failures: &mut u32,
) -> Seen {
    let now = now_ms();
    if let Some(entry) = value.and_then(|b| decode_entry(&b, request, now, ttl)) {
        if entry.fresh {
            return Seen::Fresh(entry.value);
        }
        *stale = Some(entry);
    }
    if let Some(mark) = mark.and_then(|b| serde_json::from_slice::<FailingMark>(&b).ok()) {
        *failures = mark.failures;
        if mark.active(now) {
            return Seen::Marked(mark.error(now));
        }
    }
    Seen::Missing
}

/// How long a failure mark stays in the tier: past its end, for the count of failures in
/// a row (the next mark's length), at most this.
const MARK_KEPT_FOR: Duration = Duration::from_secs(120);

/// What [`through_tier`] answers: one answer per request, and for each failed one the
/// stale value the tier kept, when it has one.
type TierAnswers = (Vec<Result<RawValue, SourceError>>, Vec<Option<FromTier>>);

/// Answers `requests` through the shared tier: its fresh values first; then the source for
/// the keys this instance could lock (one `fetch_many`), while waiting for the values of
/// the keys another instance is fetching; what never comes is asked of the source. A key
/// marked failing is asked of no source until the mark ends (see the [module](self)).
async fn through_tier(
    tier: &dyn CacheTier,
    inner: &Arc<dyn Source>,
    requests: &[FetchRequest],
    times: (Duration, Duration),
    cx: &FetchContext,
) -> TierAnswers {
    let fresh = cx.is_fresh_read();
    let ttl = times.0;
    let shareable: Vec<usize> = (0..requests.len())
        .filter(|&i| !requests[i].is_sensitive() && !inner.is_sensitive())
        .collect();
    let keys: Vec<TierKeys> = shareable
        .iter()
        .map(|&i| tier_keys(inner.as_ref(), &requests[i]))
        .collect();
    let mut answers: Vec<Option<Result<RawValue, SourceError>>> = vec![None; requests.len()];
    let mut stale: Vec<Option<FromTier>> = (0..requests.len()).map(|_| None).collect();
    // By shareable index: the failures in a row the key's mark counted.
    let mut failures: Vec<u32> = vec![0; shareable.len()];
    // 1. Each key's value and mark (a fresh read asks the source for everything, and
    // stores it).
    let mut missing: Vec<usize> = Vec::new();
    let pairs: Vec<String> = keys
        .iter()
        .flat_map(|k| [k.value.clone(), k.failing.clone()])
        .collect();
    let found = match fresh {
        true => Ok(vec![None; pairs.len()]),
        false => tier.get_many(&pairs).await,
    };
    let found = found.unwrap_or_else(|e| {
        tier_down(&e);
        vec![None; pairs.len()]
    });
    let mut found = found.into_iter();
    for (j, &i) in shareable.iter().enumerate() {
        let (value, mark) = (found.next().flatten(), found.next().flatten());
        match seen(
            (value, mark),
            &requests[i],
            ttl,
            &mut stale[i],
            &mut failures[j],
        ) {
            Seen::Fresh(v) => {
                tier_hit(cx, &requests[i]);
                answers[i] = Some(Ok(v));
            }
            Seen::Marked(e) => answers[i] = Some(Err(e)),
            Seen::Missing => missing.push(j),
        }
    }
    // 2. Locks on the rest: ours are fetched here, the others' awaited.
    let locks: Vec<String> = missing.iter().map(|&j| keys[j].lock.clone()).collect();
    let (taken, locking) = match locks.is_empty() {
        true => (Vec::new(), false),
        false if fresh => (vec![true; locks.len()], false),
        false => match tier.lock_many(&locks, TIER_LOCK_FOR).await {
            Ok(taken) => (taken, true),
            Err(e) => {
                tier_down(&e);
                (vec![true; locks.len()], false)
            }
        },
    };
    let mut mine: Vec<usize> = (0..requests.len())
        .filter(|i| !shareable.contains(i))
        .collect();
    let mut theirs: Vec<usize> = Vec::new();
    let mut held: Vec<String> = Vec::new();
    let mut locked: Vec<usize> = Vec::new();
    for (&j, taken) in missing.iter().zip(&taken) {
        if *taken {
            locked.push(j);
            if locking {
                held.push(keys[j].lock.clone());
            }
        } else {
            theirs.push(j);
        }
    }
    // Another instance may have stored a value, or marked the key, between our read and
    // our lock.
    if !locked.is_empty() {
        let ks: Vec<String> = locked
            .iter()
            .flat_map(|&j| [keys[j].value.clone(), keys[j].failing.clone()])
            .collect();
        let found = match fresh {
            true => Vec::new(),
            false => tier.get_many(&ks).await.unwrap_or_default(),
        };
        let mut found = found.into_iter();
        for &j in &locked {
            let i = shareable[j];
            let (value, mark) = (found.next().flatten(), found.next().flatten());
            match seen(
                (value, mark),
                &requests[i],
                ttl,
                &mut stale[i],
                &mut failures[j],
            ) {
                Seen::Fresh(v) => {
                    tier_hit(cx, &requests[i]);
                    answers[i] = Some(Ok(v));
                }
                Seen::Marked(e) => answers[i] = Some(Err(e)),
                Seen::Missing => mine.push(i),
            }
        }
    }
    let share = Sharing {
        tier,
        inner,
        requests,
        shareable: &shareable,
        keys: &keys,
        failures: &failures,
        times,
        cx,
    };
    let fetch_mine = async {
        // Our locks are renewed while the source works: a slow (hanging) source keeps
        // its one request, the others wait, then answer Timeout.
        let got = match held.is_empty() {
            true => share.fetch(&mine).await,
            false => {
                let fetching = std::pin::pin!(share.fetch(&mine));
                let renewing = std::pin::pin!(renew(tier, &held));
                match futures::future::select(fetching, renewing).await {
                    futures::future::Either::Left((got, _)) => got,
                    futures::future::Either::Right(((), fetching)) => fetching.await,
                }
            }
        };
        if !held.is_empty()
            && let Err(e) = tier.unlock_many(&held).await
        {
            tier_down(&e);
        }
        got
    };
    let wait_theirs = async {
        let mut waiting = theirs.clone();
        let mut got: Vec<(usize, Result<RawValue, SourceError>)> = Vec::new();
        let mut stale_seen: Vec<(usize, FromTier)> = Vec::new();
        let mut given_up: Vec<usize> = Vec::new();
        let mut tier_failed = false;
        let deadline = tokio::time::Instant::now() + TIER_LOCK_FOR;
        while !waiting.is_empty() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(TIER_POLL).await;
            // Each value, its lock and its mark: a lock released without a value ends
            // the wait at once — with the holder's failure when it marked the key.
            let ks: Vec<String> = waiting
                .iter()
                .flat_map(|&j| {
                    let k = &keys[j];
                    [k.value.clone(), k.lock.clone(), k.failing.clone()]
                })
                .collect();
            let Ok(found) = tier.get_many(&ks).await else {
                tier_failed = true;
                break;
            };
            let mut found = found.into_iter();
            let mut still = Vec::new();
            for &j in &waiting {
                let (value, lock, mark) = (
                    found.next().flatten(),
                    found.next().flatten(),
                    found.next().flatten(),
                );
                let i = shareable[j];
                let (mut old, mut ignored) = (None, 0);
                match seen((value, mark), &requests[i], ttl, &mut old, &mut ignored) {
                    Seen::Fresh(v) => {
                        tier_hit(cx, &requests[i]);
                        got.push((i, Ok(v)));
                    }
                    Seen::Marked(e) => got.push((i, Err(e))),
                    Seen::Missing if lock.is_none() => given_up.push(j),
                    Seen::Missing => still.push(j),
                }
                if let Some(old) = old {
                    stale_seen.push((i, old));
                }
            }
            waiting = still;
        }
        // Still locked at the deadline: the holder's request is still out (a slow or
        // hanging source); asking it once more per waiter is what the lock prevents.
        if !tier_failed {
            for j in std::mem::take(&mut waiting) {
                got.push((shareable[j], Err(still_fetched())));
            }
        }
        waiting.extend(given_up);
        (got, stale_seen, waiting)
    };
    let (from_source, (from_others, stale_seen, never)) =
        futures::future::join(fetch_mine, wait_theirs).await;
    for (i, answer) in from_source.into_iter().chain(from_others) {
        answers[i] = Some(answer);
    }
    for (i, old) in stale_seen {
        stale[i] = Some(old);
    }
    // 3. Values another instance was to fetch and did not (its lock ended without a value
    // nor a mark: it found nothing, failed for good or died), or when the tier failed:
    // asked here.
    let late: Vec<usize> = never.iter().map(|&j| shareable[j]).collect();
    for (i, answer) in share.fetch(&late).await {
        answers[i] = Some(answer);
    }
    let answers: Vec<Result<RawValue, SourceError>> = answers
        .into_iter()
        .map(|a| {
            a.unwrap_or_else(|| {
                Err(SourceError::new(crate::ErrorKind::Unavailable)
                    .with_message("the source returned fewer answers than requests"))
            })
        })
        .collect();
    // A stale value is handed back only where the fetch failed transiently.
    let stale = stale
        .into_iter()
        .zip(&answers)
        .map(|(old, answer)| old.filter(|_| matches!(answer, Err(e) if e.kind().is_transient())))
        .collect();
    (answers, stale)
}

/// What a waiter answers when the lock holder's fetch outlasts its wait.
fn still_fetched() -> SourceError {
    SourceError::new(crate::ErrorKind::Timeout).with_message(format!(
        "an instance sharing this cache has been fetching it for over {} without an answer; not asked again from here (the shared cache's lock)",
        crate::error::humanize(TIER_LOCK_FOR)
    ))
}

/// Renews `held` locks every third of [`TIER_LOCK_FOR`], for at most
/// [`TIER_LOCK_RENEWED_FOR`] (or until the tier fails).
async fn renew(tier: &dyn CacheTier, held: &[String]) {
    let until = tokio::time::Instant::now() + TIER_LOCK_RENEWED_FOR;
    while tokio::time::Instant::now() < until {
        tokio::time::sleep(TIER_LOCK_FOR / 3).await;
        if let Err(e) = tier.extend_many(held, TIER_LOCK_FOR).await {
            tier_down(&e);
            return;
        }
    }
}

fn tier_down(e: &SourceError) {
    tracing::warn!(error = %e, "the shared cache tier failed; asking the source");
}

/// What asking the source through the tier needs: the requests, their keys in the tier,
/// the failures in a row each key's mark counted, `(ttl, stale_for)`.
struct Sharing<'a> {
    tier: &'a dyn CacheTier,
    inner: &'a Arc<dyn Source>,
    requests: &'a [FetchRequest],
    shareable: &'a [usize],
    keys: &'a [TierKeys],
    failures: &'a [u32],
    times: (Duration, Duration),
    cx: &'a FetchContext,
}

impl Sharing<'_> {
    /// Asks the source for the requests at `indices` (one `fetch_many`) and shares what
    /// came: values go to the tier for `ttl + stale_for`; a transient failure marks the
    /// key failing (one more in a row); a success clears a key's earlier mark.
    async fn fetch(&self, indices: &[usize]) -> Vec<(usize, Result<RawValue, SourceError>)> {
        if indices.is_empty() {
            return Vec::new();
        }
        let refs: Vec<&FetchRequest> = indices.iter().map(|&i| &self.requests[i]).collect();
        let got = self.inner.fetch_many_in(self.cx, &refs).await;
        let (ttl, stale_for) = self.times;
        let now = now_ms();
        let mut values: Vec<(String, Vec<u8>)> = Vec::new();
        let mut marks: Vec<(String, Vec<u8>)> = Vec::new();
        for (&i, answer) in indices.iter().zip(&got) {
            let Some(j) = self.shareable.iter().position(|&s| s == i) else {
                continue;
            };
            let keys = &self.keys[j];
            let before = self.failures[j];
            let mark = match answer {
                Ok(value) => {
                    let entry = TierEntry {
                        request: self.requests[i].identity(),
                        value: value.clone().into(),
                        stored_ms: now,
                        fresh_until_ms: now.saturating_add(millis(ttl)),
                    };
                    if let Ok(bytes) = serde_json::to_vec(&entry) {
                        values.push((keys.value.clone(), bytes));
                    }
                    // Back: the next failure starts the count again.
                    (before > 0).then_some(FailingMark {
                        kind: String::new(),
                        failures: 0,
                        since_ms: now,
                        retry_at_ms: 0,
                    })
                }
                Err(e) if e.kind().is_transient() => {
                    let failures = before.saturating_add(1);
                    let kind = match e.kind() {
                        crate::ErrorKind::Timeout => "timeout",
                        _ => "unavailable",
                    };
                    Some(FailingMark {
                        kind: kind.to_owned(),
                        failures,
                        since_ms: now,
                        retry_at_ms: now.saturating_add(millis(failing_for(failures))),
                    })
                }
                Err(_) => None,
            };
            if let Some(bytes) = mark.and_then(|m| serde_json::to_vec(&m).ok()) {
                marks.push((keys.failing.clone(), bytes));
            }
        }
        if !values.is_empty()
            && let Err(e) = self.tier.put_many(&values, tier_ttl(ttl, stale_for)).await
        {
            tier_down(&e);
        }
        if !marks.is_empty()
            && let Err(e) = self.tier.put_many(&marks, MARK_KEPT_FOR).await
        {
            tier_down(&e);
        }
        indices.iter().copied().zip(got).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_mark_doubles_with_each_failure_in_a_row_up_to_its_maximum() {
        let secs = |n| failing_for(n).as_secs();
        assert_eq!([secs(1), secs(2), secs(3), secs(5)], [1, 2, 4, 16]);
        assert_eq!(failing_for(6), TIER_FAILING_FOR_MAX);
        assert_eq!(failing_for(u32::MAX), TIER_FAILING_FOR_MAX);
        assert_eq!(failing_for(0), TIER_FAILING_FOR);
    }

    #[test]
    fn a_failure_mark_holds_until_its_end_and_says_so() {
        let mark = FailingMark {
            kind: "timeout".to_owned(),
            failures: 3,
            since_ms: 10_000,
            retry_at_ms: 14_000,
        };
        assert!(mark.active(13_999));
        assert!(!mark.active(14_000));
        let e = mark.error(12_000);
        assert_eq!(e.kind(), crate::ErrorKind::Timeout);
        let text = e.message().unwrap_or_default();
        assert!(text.contains("3 times in a row, 2s ago"), "{text}");
        assert!(text.contains("not asked again for 2s"), "{text}");
    }

    #[test]
    fn a_failure_mark_from_a_clock_running_ahead_is_not_believed() {
        // Written by an instance whose clock is an hour ahead: "retry in an hour".
        let now = 1_000_000_000;
        let mark = FailingMark {
            kind: "unavailable".to_owned(),
            failures: 1,
            since_ms: now + 3_600_000,
            retry_at_ms: now + 3_601_000,
        };
        assert!(!mark.active(now), "an hour-long mark is not believed");
        // Its end comes within the longest mark: believed from then.
        let max = millis(TIER_FAILING_FOR_MAX);
        assert!(!mark.active(now + 3_601_000 - max - 1));
        assert!(mark.active(now + 3_601_000 - max));
        // A writer a little ahead (a 16 s mark seen as 20 s long) still holds.
        let near = FailingMark {
            retry_at_ms: now + 20_000,
            ..mark
        };
        assert!(near.active(now));
    }

    #[test]
    fn a_tier_entry_from_a_clock_running_ahead_is_not_believed_fresh_nor_younger_than_now() {
        static SPEC: crate::source::FieldSpec =
            crate::source::FieldSpec::new("App", "port", "u16", "consul").key("app/port");
        let request = FetchRequest::new(&SPEC);
        let ttl = Duration::from_secs(60);
        let now = 1_000_000_000;
        // The writer's clock is an hour ahead: stored "in an hour", fresh for an hour more.
        let entry = TierEntry {
            request: request.identity(),
            value: RawValue::Text("8080".to_owned()).into(),
            stored_ms: now + 3_600_000,
            fresh_until_ms: now + 3_660_000,
        };
        let bytes = serde_json::to_vec(&entry).expect("json");
        let ahead = decode_entry(&bytes, &request, now, ttl).expect("entry");
        assert!(
            !ahead.fresh,
            "fresh for an hour with a ttl of a minute: not believed"
        );
        assert_eq!(ahead.age, Duration::ZERO);
        // A writer a little ahead (fresh for 50 s more of a 60 s ttl): fresh.
        let near = TierEntry {
            request: request.identity(),
            value: RawValue::Text("8080".to_owned()).into(),
            stored_ms: now + 5_000,
            fresh_until_ms: now + 50_000,
        };
        let bytes = serde_json::to_vec(&near).expect("json");
        let near = decode_entry(&bytes, &request, now, ttl).expect("entry");
        assert!(near.fresh);
        assert_eq!(near.age, Duration::ZERO);
        // A writer an hour behind: the entry expired long ago for this reader.
        let behind = TierEntry {
            request: request.identity(),
            value: RawValue::Text("8080".to_owned()).into(),
            stored_ms: now - 3_600_000,
            fresh_until_ms: now - 3_540_000,
        };
        let bytes = serde_json::to_vec(&behind).expect("json");
        let old = decode_entry(&bytes, &request, now, ttl).expect("entry");
        assert!(!old.fresh);
        assert_eq!(old.age, Duration::from_secs(3_600));
    }

    /// Answers `8080`, or fails transiently once `failing` is set.
    struct Switch(std::sync::atomic::AtomicBool);

    #[async_trait::async_trait]
    impl Source for Switch {
        async fn fetch(&self, _: &FetchRequest) -> Result<RawValue, SourceError> {
            match self.0.load(std::sync::atomic::Ordering::SeqCst) {
                true => Err(SourceError::new(crate::ErrorKind::Unavailable)),
                false => Ok(RawValue::Text("8080".to_owned())),
            }
        }
    }

    #[tokio::test]
    async fn a_live_refresh_that_fails_is_served_the_cached_value_as_stale_not_as_a_hit() {
        static SPEC: crate::source::FieldSpec =
            crate::source::FieldSpec::new("App", "port", "u16", "switch").key("app/port");
        let request = FetchRequest::new(&SPEC);
        let switch = Arc::new(Switch(std::sync::atomic::AtomicBool::new(false)));
        let cached = CacheLayer::new(Duration::from_secs(60)).layer(switch.clone());
        assert!(cached.fetch(&request).await.is_ok());
        switch.0.store(true, std::sync::atomic::Ordering::SeqCst);
        // Within its ttl; read past the cache (a live refresh), the source failing.
        let notes = Arc::new(crate::source::Notes::default());
        let cx = FetchContext::new()
            .fresh_read(true)
            .collecting(notes.clone());
        let got = crate::resilience::one(cached.fetch_many_in(&cx, &[&request]).await);
        assert!(
            matches!(got, Ok(RawValue::Text(ref t)) if t == "8080"),
            "{got:?}"
        );
        let note = notes.get(&request);
        assert!(!note.cache_hit, "reported as a cache hit");
        assert!(note.stale.is_some(), "not reported stale");
    }

    #[test]
    fn a_value_stays_in_the_tier_ttl_plus_stale_for_at_most_a_year() {
        let (ttl, stale) = (Duration::from_secs(60), Duration::from_secs(600));
        assert_eq!(tier_ttl(ttl, stale), Duration::from_secs(660));
        assert_eq!(tier_ttl(ttl, Duration::MAX), TIER_KEPT_AT_MOST);
        assert_eq!(tier_ttl(Duration::MAX, Duration::MAX), TIER_KEPT_AT_MOST);
    }
}
