//! The cache layer: hits are answered from memory and only the misses go down, together in
//! one `fetch_many`; concurrent misses of one request share one upstream call (single
//! flight, across batches and tasks); an expired value is kept for `stale_for` and served
//! when its refresh fails transiently.
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
}

impl std::fmt::Debug for CacheLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CacheLayer")
            .field("ttl", &self.ttl)
            .field("stale_for", &self.stale_for)
            .field("entries", &self.state.entries.entry_count())
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
        }
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

    pub(crate) fn sharing(ttl: Duration, stale_for: Duration, state: Arc<CacheState>) -> Self {
        CacheLayer {
            ttl,
            stale_for,
            state,
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

/// One cache: values by request, and the upstream calls in flight.
pub(crate) struct CacheState {
    entries: moka::sync::Cache<FetchRequest, Arc<Cached>>,
    inflight: Mutex<HashMap<FetchRequest, (Flight, usize)>>,
}

impl CacheState {
    pub(crate) fn new(capacity: u64) -> Self {
        CacheState {
            entries: moka::sync::Cache::builder()
                .max_capacity(capacity)
                .expire_after(KeepFor)
                .build(),
            inflight: Mutex::new(HashMap::new()),
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

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<FetchRequest, (Flight, usize)>> {
        self.inflight.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A source whose answers are cached (see [`CacheLayer`]).
pub struct CacheSource {
    inner: Arc<dyn Source>,
    ttl: Duration,
    stale_for: Duration,
    state: Arc<CacheState>,
}

impl CacheSource {
    /// The wrapped source.
    pub fn get_ref(&self) -> &Arc<dyn Source> {
        &self.inner
    }

    /// Starts one upstream `fetch_many` for `requests`, registered as in flight for each.
    fn start_flight(&self, requests: Vec<FetchRequest>) -> Flight {
        let inner = self.inner.clone();
        let state = self.state.clone();
        let (ttl, stale_for) = (self.ttl, self.stale_for);
        let owned = requests.clone();
        let flight: Flight = async move {
            let refs: Vec<&FetchRequest> = owned.iter().collect();
            let answers = inner.fetch_many(&refs).await;
            let now = Instant::now();
            for (request, answer) in owned.iter().zip(&answers) {
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
            for request in &owned {
                inflight.remove(request);
            }
            Arc::new(answers)
        }
        .boxed()
        .shared();
        let mut inflight = self.state.lock();
        for (i, request) in requests.into_iter().enumerate() {
            inflight.insert(request, (flight.clone(), i));
        }
        flight
    }
}

#[async_trait::async_trait]
impl Source for CacheSource {
    async fn fetch(&self, request: &FetchRequest) -> Result<RawValue, SourceError> {
        super::one(self.fetch_many(&[request]).await)
    }

    async fn fetch_many(&self, requests: &[&FetchRequest]) -> Vec<Result<RawValue, SourceError>> {
        let now = Instant::now();
        let mut answers: Vec<Option<Result<RawValue, SourceError>>> = vec![None; requests.len()];
        let mut stale: Vec<Option<Arc<Cached>>> = vec![None; requests.len()];
        // Waiting on flights already started (by anyone), and our own misses.
        let mut waits: Vec<(usize, Flight, usize)> = Vec::new();
        let mut misses: Vec<usize> = Vec::new();
        {
            let inflight = self.state.lock();
            for (i, request) in requests.iter().enumerate() {
                match self.state.entries.get(*request) {
                    Some(hit) if hit.fresh_until > now => {
                        crate::report::note(request, |n| n.cache_hit = true);
                        answers[i] = Some(Ok(hit.value.clone()));
                        continue;
                    }
                    Some(old) => stale[i] = Some(old),
                    None => {}
                }
                match inflight.get(*request) {
                    Some((flight, at)) => waits.push((i, flight.clone(), *at)),
                    None => misses.push(i),
                }
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
        let own_flight = (!own.is_empty()).then(|| self.start_flight(own));
        if let Some(flight) = &own_flight {
            for (&i, &at) in misses.iter().zip(&own_index) {
                waits.push((i, flight.clone(), at));
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
