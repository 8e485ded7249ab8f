//! The cache layer: hits are answered from memory and only the misses go down, together in
//! one `fetch_many`; concurrent misses of one request share one upstream call (single
//! flight, across batches and tasks); an expired value is kept for `stale_for` and served
//! when its refresh fails transiently.
//!
//! With a shared tier ([`CacheTier`], e.g. a [`RedisSource`](crate::RedisSource)), a miss
//! in memory is looked up there before the source, and a value fetched is put there for
//! `ttl`, so the instances of a fleet fetch each key once between them: the first to miss
//! takes a short lock per key (`SET NX`), the others wait for its value (polling the tier)
//! instead of asking the source. Secret values never go to the tier. The tier failing
//! never fails a fetch: the source is asked as without it.
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
use crate::source::{FetchRequest, RawValue, Source};

/// How long an expired value may still be served when its refresh fails, by default.
pub const DEFAULT_STALE_FOR: Duration = Duration::from_secs(300);

/// How many values one cache holds at most, by default.
pub const DEFAULT_CAPACITY: u64 = 10_000;

/// How long an instance holds the lock on a key of the shared tier while it fetches it
/// (the others wait at most this long for its value before asking the source themselves).
pub const TIER_LOCK_FOR: Duration = Duration::from_secs(5);

/// How often an instance waiting for another's value looks at the shared tier.
const TIER_POLL: Duration = Duration::from_millis(20);

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
}

/// What the shared tier holds for a request: the value, and the request it answers (a
/// digest collision is a miss, never another key's value).
#[derive(serde::Serialize, serde::Deserialize)]
struct TierEntry {
    request: String,
    value: crate::source::StoredValue,
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

tokio::task_local! {
    static FRESH: ();
}

/// Runs `fut` reading past the caches: every cached request is asked of its source (and
/// the answer stored), as a live refresh after a watched change must.
pub(crate) async fn fresh<F: std::future::Future>(fut: F) -> F::Output {
    FRESH.scope((), fut).await
}

fn is_fresh() -> bool {
    FRESH.try_with(|()| ()).is_ok()
}

/// One cache: values by request, and the upstream calls in flight.
pub(crate) struct CacheState {
    entries: moka::sync::Cache<FetchRequest, Arc<Cached>>,
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
                .build(),
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
    fn flight(&self, requests: Vec<FetchRequest>, fresh: bool, id: u64) -> Flight {
        let inner = self.inner.clone();
        let state = self.state.clone();
        let tier = self.tier.clone();
        let (ttl, stale_for) = (self.ttl, self.stale_for);
        let work = async move {
            let answers = match tier {
                None => {
                    let refs: Vec<&FetchRequest> = requests.iter().collect();
                    inner.fetch_many(&refs).await
                }
                Some(tier) => through_tier(tier.as_ref(), &inner, &requests, ttl, fresh).await,
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
            let mut inflight = state.lock();
            for request in &requests {
                if inflight.get(request).is_some_and(|(_, _, at)| *at == id) {
                    inflight.remove(request);
                }
            }
            Arc::new(answers)
        };
        // What the layers below note for a fetch report goes to the caller's report.
        let work = crate::metrics::carrying(crate::report::carrying(work));
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
        let now = Instant::now();
        let fresh = is_fresh();
        let mut answers: Vec<Option<Result<RawValue, SourceError>>> = vec![None; requests.len()];
        let mut stale: Vec<Option<Arc<Cached>>> = vec![None; requests.len()];
        // Waiting on flights already started (by anyone), and our own misses; looked up
        // and registered under one hold of the lock, so concurrent misses of a request
        // start one flight.
        let mut waits: Vec<(usize, Flight, usize)> = Vec::new();
        {
            let mut inflight = self.state.lock();
            let mut misses: Vec<usize> = Vec::new();
            for (i, request) in requests.iter().enumerate() {
                match self.state.entries.get(*request) {
                    Some(cached) if cached.fresh_until > now && !fresh => {
                        hit(request);
                        answers[i] = Some(Ok(cached.value.clone()));
                        continue;
                    }
                    Some(old) => stale[i] = Some(old),
                    None => {}
                }
                crate::metrics::cache(request.source_name(), false);
                match inflight.get(*request) {
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
                let flight = self.flight(own.clone(), fresh, id);
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
                match (answer, stale) {
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
                        crate::report::note(request, |n| n.stale = Some(age));
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
fn hit(request: &FetchRequest) {
    crate::report::note(request, |n| n.cache_hit = true);
    crate::metrics::cache(request.source_name(), true);
}

/// A read the shared tier answered (after the in-process cache missed).
fn tier_hit(request: &FetchRequest) {
    crate::report::note(request, |n| n.cache_hit = true);
    crate::metrics::shared_cache_hit(request.source_name());
}

/// The shared tier's key of `request` from `source`, and of its lock.
fn tier_key(source: &dyn Source, request: &FetchRequest) -> (String, String) {
    let identity = request.identity();
    let location = source.location().unwrap_or_default();
    let key = format!(
        "component_model:cache:{:016x}",
        digest(&format!("{location}\n{identity}"))
    );
    let lock = format!("{key}:lock");
    (key, lock)
}

fn decode_entry(bytes: &[u8], request: &FetchRequest) -> Option<RawValue> {
    let entry: TierEntry = serde_json::from_slice(bytes).ok()?;
    (entry.request == request.identity()).then(|| entry.value.into())
}

/// Answers `requests` through the shared tier: its values first, then the source for the
/// keys this instance could lock (one `fetch_many`), while waiting for the values of the
/// keys another instance is fetching; what never comes is asked of the source.
async fn through_tier(
    tier: &dyn CacheTier,
    inner: &Arc<dyn Source>,
    requests: &[FetchRequest],
    ttl: Duration,
    fresh: bool,
) -> Vec<Result<RawValue, SourceError>> {
    let shareable: Vec<usize> = (0..requests.len())
        .filter(|&i| !requests[i].is_sensitive() && !inner.is_sensitive())
        .collect();
    let keys: Vec<(String, String)> = shareable
        .iter()
        .map(|&i| tier_key(inner.as_ref(), &requests[i]))
        .collect();
    let mut answers: Vec<Option<Result<RawValue, SourceError>>> = vec![None; requests.len()];
    let tier_down = |e: &SourceError| {
        tracing::warn!(error = %e, "the shared cache tier failed; asking the source");
    };
    // 1. What the tier has (a fresh read asks the source for everything, and stores it).
    let values: Vec<String> = keys.iter().map(|(k, _)| k.clone()).collect();
    let found = match fresh {
        true => Ok(vec![None; values.len()]),
        false => tier.get_many(&values).await,
    };
    match found {
        Ok(found) => {
            for ((&i, bytes), _) in shareable.iter().zip(found).zip(&keys) {
                if let Some(v) = bytes.and_then(|b| decode_entry(&b, &requests[i])) {
                    tier_hit(&requests[i]);
                    answers[i] = Some(Ok(v));
                }
            }
        }
        Err(e) => tier_down(&e),
    }
    // 2. Locks on the rest: ours are fetched here, the others' awaited.
    let missing: Vec<usize> = (0..shareable.len())
        .filter(|&j| answers[shareable[j]].is_none())
        .collect();
    let locks: Vec<String> = missing.iter().map(|&j| keys[j].1.clone()).collect();
    let taken = match locks.is_empty() {
        true => Vec::new(),
        false if fresh => vec![true; locks.len()],
        false => tier
            .lock_many(&locks, TIER_LOCK_FOR)
            .await
            .unwrap_or_else(|e| {
                tier_down(&e);
                vec![true; locks.len()]
            }),
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
            held.push(keys[j].1.clone());
        } else {
            theirs.push(j);
        }
    }
    // Another instance may have stored a value between our read and our lock.
    if !locked.is_empty() {
        let ks: Vec<String> = locked.iter().map(|&j| keys[j].0.clone()).collect();
        let found = match fresh {
            true => Vec::new(),
            false => tier.get_many(&ks).await.unwrap_or_default(),
        };
        let mut found = found.into_iter();
        for &j in &locked {
            let i = shareable[j];
            match found
                .next()
                .flatten()
                .and_then(|b| decode_entry(&b, &requests[i]))
            {
                Some(v) => {
                    tier_hit(&requests[i]);
                    answers[i] = Some(Ok(v));
                }
                None => mine.push(i),
            }
        }
    }
    let fetch_mine = async {
        if mine.is_empty() {
            return Vec::new();
        }
        let refs: Vec<&FetchRequest> = mine.iter().map(|&i| &requests[i]).collect();
        let got = inner.fetch_many(&refs).await;
        let put: Vec<(String, Vec<u8>)> = mine
            .iter()
            .zip(&got)
            .filter_map(|(&i, answer)| {
                let j = shareable.iter().position(|&s| s == i)?;
                let value = answer.as_ref().ok()?.clone();
                let entry = TierEntry {
                    request: requests[i].identity(),
                    value: value.into(),
                };
                Some((keys[j].0.clone(), serde_json::to_vec(&entry).ok()?))
            })
            .collect();
        if !put.is_empty()
            && let Err(e) = tier.put_many(&put, ttl).await
        {
            tier_down(&e);
        }
        if !held.is_empty()
            && let Err(e) = tier.unlock_many(&held).await
        {
            tier_down(&e);
        }
        mine.iter().copied().zip(got).collect::<Vec<_>>()
    };
    let wait_theirs = async {
        let mut waiting = theirs.clone();
        let mut got: Vec<(usize, RawValue)> = Vec::new();
        let mut given_up: Vec<usize> = Vec::new();
        let deadline = tokio::time::Instant::now() + TIER_LOCK_FOR;
        while !waiting.is_empty() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(TIER_POLL).await;
            // Each value, and its lock: a lock released without a value (the holder got
            // not-found or an error) ends the wait at once.
            let ks: Vec<String> = waiting
                .iter()
                .flat_map(|&j| [keys[j].0.clone(), keys[j].1.clone()])
                .collect();
            let Ok(found) = tier.get_many(&ks).await else {
                break;
            };
            let mut found = found.into_iter();
            let mut still = Vec::new();
            for &j in &waiting {
                let (value, lock) = (found.next().flatten(), found.next().flatten());
                let i = shareable[j];
                match value.and_then(|b| decode_entry(&b, &requests[i])) {
                    Some(v) => got.push((i, v)),
                    None if lock.is_none() => given_up.push(j),
                    None => still.push(j),
                }
            }
            waiting = still;
        }
        waiting.extend(given_up);
        (got, waiting)
    };
    let (from_source, (from_others, never)) = futures::future::join(fetch_mine, wait_theirs).await;
    for (i, answer) in from_source {
        answers[i] = Some(answer);
    }
    for (i, v) in from_others {
        tier_hit(&requests[i]);
        answers[i] = Some(Ok(v));
    }
    // 3. Values another instance was to fetch and did not: asked here.
    if !never.is_empty() {
        let late: Vec<usize> = never.iter().map(|&j| shareable[j]).collect();
        let refs: Vec<&FetchRequest> = late.iter().map(|&i| &requests[i]).collect();
        for (i, answer) in late.iter().zip(inner.fetch_many(&refs).await) {
            answers[*i] = Some(answer);
        }
    }
    answers
        .into_iter()
        .map(|a| {
            a.unwrap_or_else(|| {
                Err(SourceError::new(crate::ErrorKind::Unavailable)
                    .with_message("the source returned fewer answers than requests"))
            })
        })
        .collect()
}
