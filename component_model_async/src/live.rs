//! Live configuration: a [`Live<T>`] holds the current value of a derived struct and keeps
//! it current. It fetches once, then watches the sources of its watched fields (a source's
//! own [`Source::watch`](crate::Source::watch), else polling at `watch_interval`); after a change settles (a
//! quiescence window), it builds the next candidate, validates it, and swaps it in — or
//! keeps the old value and says why. Every swap is a numbered version; the last N are
//! kept for [`Live::rollback`].
//!
//! A candidate reads only what changed, as the watches say it ([`Change`]): a
//! [`Change::Value`] is applied as the answer of the fields reading that request, with no
//! fetch; a [`Change::Changed`] fetches the fields of the requests it names; a
//! [`Change::All`] (a watch put in place, a reconnect), [`Live::refresh`], fetch every
//! field. A poll of a source that cannot watch fetches that source's watched fields.
//! Every other field keeps the raw value it last had (fields whose last result was no
//! raw value — a typed fetcher's, a failure — are fetched every time); the candidate is
//! converted, checked and validated whole, as the first fetch.
//!
//! Reads never wait: [`Live::get`] is an `ArcSwap` load (no lock), and a slow consumer of
//! [`Live::changes`] never blocks the watcher (a bounded channel; a consumer that falls
//! behind is told how many updates it missed).

use std::collections::VecDeque;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use futures::{FutureExt, Stream, StreamExt};
use tokio::sync::{broadcast, oneshot};

use crate::api::FetchFuture;
use crate::engine::{FieldView, Given, Nested, Plan, Watched};
use crate::error::ComponentError;
use crate::source::{Change, FetchContext, RawValue, Revision};
use crate::sources::Sources;

/// How long a watched source without a watch of its own is polled, by default.
pub const DEFAULT_WATCH_INTERVAL: Duration = Duration::from_secs(30);

/// How many versions [`Live::history`] keeps, by default.
pub const DEFAULT_HISTORY: usize = 10;

/// How many updates a [`Live::changes`] stream may fall behind before it is told it
/// missed some.
const CHANNEL: usize = 64;

/// One field's change in an applied update.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct FieldChange {
    /// `AppConfig.db.port`.
    pub field: String,
    /// The source name.
    pub source: String,
    /// The key as sent.
    pub key: Option<String>,
    /// The value before, as text (`None` when the field had none, or is secret).
    pub old: Option<String>,
    /// The value after, as text (`None` when the field has none now, or is secret).
    pub new: Option<String>,
    /// The value is secret: `old` and `new` are never carried, only that it changed.
    pub secret: bool,
    /// The new value's revision in its backend (an etcd `mod_revision`, a NATS KV
    /// sequence, a Consul `ModifyIndex`, a Kafka offset), when the watch that delivered it
    /// said ([`Change::Value`]); `None` for a value read again.
    pub revision: Option<Revision>,
}

impl fmt::Display for FieldChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.secret {
            return write!(f, "{}: changed (secret)", self.field);
        }
        let show = |v: &Option<String>| v.clone().unwrap_or_else(|| "(none)".to_owned());
        write!(
            f,
            "{}: {} -> {}",
            self.field,
            show(&self.old),
            show(&self.new)
        )
    }
}

/// What a [`Live`] did after its sources changed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigUpdate {
    /// A new version was swapped in.
    Applied {
        /// Its number (the first fetch is version 1).
        version: u64,
        /// The fields whose values changed.
        fields: Vec<FieldChange>,
        /// When it was swapped in.
        at: SystemTime,
    },
    /// The candidate was refused; the old value stays.
    Rejected {
        /// Why: every error, one per line's worth, joined with `; `.
        reason: String,
        /// The fields concerned (those that failed, or those that changed).
        fields: Vec<String>,
        /// Every error: each field that failed to fetch or convert, each rule that refused
        /// a value (kind [`Invalid`](crate::ErrorKind::Invalid)), each builder validator
        /// that refused the candidate.
        errors: Vec<ComponentError>,
    },
    /// [`Live::rollback`] swapped an earlier version back in.
    RolledBack {
        /// The version now current.
        to_version: u64,
    },
    /// This stream fell behind; it missed that many updates (the value itself is current:
    /// read it with [`Live::get`]).
    Lagged {
        /// How many updates were dropped for this stream.
        missed: u64,
    },
}

impl fmt::Display for ConfigUpdate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigUpdate::Applied {
                version, fields, ..
            } => {
                write!(f, "version {version} applied")?;
                for (i, c) in fields.iter().enumerate() {
                    f.write_str(if i == 0 { ": " } else { "; " })?;
                    write!(f, "{c}")?;
                }
                Ok(())
            }
            ConfigUpdate::Rejected { reason, fields, .. } => {
                write!(f, "update rejected ({}): {reason}", fields.join(", "))
            }
            ConfigUpdate::RolledBack { to_version } => {
                write!(f, "rolled back to version {to_version}")
            }
            ConfigUpdate::Lagged { missed } => write!(f, "{missed} updates missed"),
        }
    }
}

/// A version kept by [`Live::history`].
#[derive(Debug)]
#[non_exhaustive]
pub struct Version<T> {
    /// Its number.
    pub version: u64,
    /// The value.
    pub value: Arc<T>,
    /// When it was swapped in.
    pub at: SystemTime,
}

impl<T> Clone for Version<T> {
    fn clone(&self) -> Self {
        Version {
            version: self.version,
            value: self.value.clone(),
            at: self.at,
        }
    }
}

/// The error of [`Live::rollback`] to a version no longer (or never) kept.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("version {0} is not in the history (see `Live::history`)")]
pub struct UnknownVersion(pub u64);

type Check<T> = Arc<dyn Fn(Arc<T>) -> BoxFuture<'static, Result<(), String>> + Send + Sync>;

/// Options of a [`Live`]: validation, history, quiescence. Start one with
/// [`Live::builder`]; the generated `watch_with(&sources)` uses the defaults.
pub struct LiveBuilder<'s, T> {
    sources: &'s Sources,
    checks: Vec<Check<T>>,
    history: usize,
    quiet: Duration,
    max_wait: Duration,
}

impl<T> fmt::Debug for LiveBuilder<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LiveBuilder")
            .field("validators", &self.checks.len())
            .field("history", &self.history)
            .field("quiet", &self.quiet)
            .field("max_wait", &self.max_wait)
            .finish()
    }
}

impl<'s, T: Nested + Send + Sync + 'static> LiveBuilder<'s, T> {
    /// Validates every candidate, the first fetch included, after the struct's own field
    /// and struct rules: an `Err` keeps the old value (the first time, `start` fails) and
    /// is reported as [`ConfigUpdate::Rejected`]. Every validator runs, concurrently, and
    /// each refusal is one [`ComponentError::Invalid`] in its `errors`.
    #[must_use]
    pub fn validate<E: fmt::Display>(
        mut self,
        check: impl Fn(&T) -> Result<(), E> + Send + Sync + 'static,
    ) -> Self {
        let check = Arc::new(check);
        self.checks.push(Arc::new(move |candidate: Arc<T>| {
            let r = check(&candidate).map_err(|e| e.to_string());
            async move { r }.boxed()
        }));
        self
    }

    /// Like [`validate`](Self::validate), with an async check (e.g. "the port is free",
    /// a query against a database).
    #[must_use]
    pub fn validate_async<E, F>(
        mut self,
        check: impl Fn(Arc<T>) -> F + Send + Sync + 'static,
    ) -> Self
    where
        E: fmt::Display,
        F: std::future::Future<Output = Result<(), E>> + Send + 'static,
    {
        self.checks.push(Arc::new(move |candidate: Arc<T>| {
            let fut = check(candidate);
            async move { fut.await.map_err(|e| e.to_string()) }.boxed()
        }));
        self
    }

    /// Keeps the last `n` versions (default [`DEFAULT_HISTORY`], at least 1).
    #[must_use]
    pub fn history(mut self, n: usize) -> Self {
        self.history = n.max(1);
        self
    }

    /// After a change, waits until the sources have been quiet for `quiet`, but never
    /// longer than `max_wait` after the first change, before fetching (default 100 ms and
    /// 1 s): a burst of writes becomes one swap per `max_wait`.
    #[must_use]
    pub fn quiescence(mut self, quiet: Duration, max_wait: Duration) -> Self {
        self.quiet = quiet;
        self.max_wait = max_wait.max(quiet);
        self
    }

    /// Fetches and validates the first version, then starts watching.
    pub fn start(self) -> FetchFuture<'s, Result<Live<T>, Vec<ComponentError>>> {
        FetchFuture::new(start(self))
    }
}

/// The current value of a derived struct, kept current (see the [module](self)).
///
/// Clones share one value and one watcher; dropping the last clone stops the watcher.
///
/// ```
/// use std::time::Duration;
/// use component_model_async::{AsyncAssign, EnvSource, Live, Sources};
///
/// #[derive(AsyncAssign, Debug)]
/// struct App {
///     #[component(fetch_from = "env", watch, watch_interval = "1s")]
///     port: u16,
/// }
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let sources = Sources::new().with_env(EnvSource::from_map([("PORT", "8080")]));
/// let live = Live::<App>::builder(&sources)
///     .validate(|app: &App| if app.port < 1024 { Err("a privileged port") } else { Ok(()) })
///     .start()
///     .await
///     .unwrap();
/// assert_eq!(live.get().port, 8080);
/// assert_eq!(live.version(), 1);
/// # });
/// ```
pub struct Live<T> {
    shared: Arc<Shared<T>>,
    /// Dropped with the last clone: the watcher ends (even in the middle of a refresh,
    /// when it holds `shared` itself).
    stop: Arc<Mutex<Option<oneshot::Sender<()>>>>,
}

impl<T> Clone for Live<T> {
    fn clone(&self) -> Self {
        Live {
            shared: self.shared.clone(),
            stop: self.stop.clone(),
        }
    }
}

impl<T> fmt::Debug for Live<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Live")
            .field("version", &self.version())
            .finish_non_exhaustive()
    }
}

/// What the clones of one [`Live`] and its watcher share.
struct Shared<T> {
    current: ArcSwap<T>,
    state: tokio::sync::Mutex<State<T>>,
    history_view: Mutex<VecDeque<Version<T>>>,
    updates: broadcast::Sender<ConfigUpdate>,
    checks: Vec<Check<T>>,
    history: usize,
    sources: Sources,
}

/// What only one refresh at a time may touch.
struct State<T> {
    version: u64,
    latest: u64,
    /// The raw values of the current version, per slot, for diffs.
    raws: Arc<Vec<FieldView>>,
    /// The raw values of the latest fetch (after a rollback, not the current version's):
    /// a refresh that reads these again applies nothing.
    fetched: Arc<Vec<FieldView>>,
    /// The raw values of each kept version.
    kept: VecDeque<(u64, Arc<Vec<FieldView>>)>,
    /// What the latest fetch read, per field, as the next one starts from it: only the
    /// fields a change names are fetched again.
    given: Given,
    _value: std::marker::PhantomData<fn() -> T>,
}

/// A raw value as text for an update (JSON compact).
fn shown(raw: &RawValue) -> String {
    match raw {
        RawValue::Text(s) => s.clone(),
        RawValue::Bytes(b) => String::from_utf8_lossy(b).into_owned(),
        RawValue::Json(v) => v.to_string(),
    }
}

fn diff(old: &[FieldView], new: &[FieldView]) -> Vec<FieldChange> {
    diff_at(old, new, &Dirty::default())
}

/// [`diff`], each change with the revision `dirty` carried for its field.
fn diff_at(old: &[FieldView], new: &[FieldView], dirty: &Dirty) -> Vec<FieldChange> {
    old.iter()
        .zip(new)
        .enumerate()
        .filter(|(_, (a, b))| a.raw != b.raw)
        .map(|(slot, (a, b))| {
            let secret = a.secret || b.secret;
            FieldChange {
                revision: dirty.revisions.get(&slot).cloned(),
                field: b.path.clone(),
                source: b.source.to_owned(),
                key: b.key.clone(),
                old: (!secret).then(|| a.raw.as_ref().map(shown)).flatten(),
                new: (!secret).then(|| b.raw.as_ref().map(shown)).flatten(),
                secret,
            }
        })
        .collect()
}

/// What one fetch of the whole struct gave.
enum Candidate<T> {
    /// Fetched, converted and valid.
    Valid(Arc<T>, Vec<FieldView>),
    /// A field failed to fetch or convert.
    Failed {
        reason: String,
        fields: Vec<String>,
        errors: Vec<ComponentError>,
    },
    /// Fetched, and refused: by a validator, or (in a refresh) because a field's source
    /// failed and only its `fallback` literal stood in.
    Refused {
        reason: String,
        slots: Vec<FieldView>,
        errors: Vec<ComponentError>,
    },
}

/// One fetch of the whole struct, validated, and what it read (to start the next one
/// from). A refresh reads `fresh`: past the caches of `cache_for` fields (and stores what
/// it read in them), or a watched change would be answered from the cache. Fields with a
/// value in `given` are not fetched: they take it.
async fn candidate<T: Nested + Send + Sync + 'static>(
    plan: &Plan<'_>,
    checks: &[Check<T>],
    fresh: bool,
    given: Option<&Given>,
) -> (Candidate<T>, Given) {
    let mut out = plan
        // Notes say which values a cache served stale (not reused by the next run).
        .run_given(
            FetchContext::new()
                .fresh_read(fresh)
                .collecting(Arc::new(crate::source::Notes::default())),
            given,
        )
        .await;
    let read = out.given();
    let slots = out.watch_slots();
    let value = T::take(&mut out, false);
    let value = out.validated(value, plan.sources()).await;
    let degraded = out.degraded();
    let value = match out.into_result(value) {
        Ok(v) => v,
        Err(errors) => {
            let (reason, fields) = rejection(&errors);
            let failed = Candidate::Failed {
                reason,
                fields,
                errors,
            };
            return (failed, read);
        }
    };
    if fresh && !degraded.is_empty() {
        let errors: Vec<ComponentError> = degraded
            .iter()
            .map(|(field, why)| ComponentError::Invalid {
                target: field.clone().into(),
                reason: format!(
                    "{why} (the current value of `{field}` is kept rather than its `fallback`)"
                ),
            })
            .collect();
        let reason = refusal(&errors);
        return (
            Candidate::Refused {
                reason,
                slots,
                errors,
            },
            read,
        );
    }
    let value = Arc::new(value);
    // Every validator runs, concurrently (at most the struct's `validate_concurrency` at
    // a time, each within the async rules' default timeout: a validator that hangs must
    // not hold every later refresh); every refusal is kept.
    let limit = crate::engine::DEFAULT_RULE_TIMEOUT;
    // Boxed and collected first: a lazy `map` over borrowed validators makes the spawned
    // watcher's future not general enough over lifetimes.
    let runs: Vec<BoxFuture<'static, _>> = checks
        .iter()
        .enumerate()
        .map(|(k, check)| {
            let fut = check(value.clone());
            async move { (k, tokio::time::timeout(limit, fut).await) }.boxed()
        })
        .collect();
    let mut verdicts: Vec<_> = futures::stream::iter(runs)
        .buffer_unordered(T::VALIDATE_CONCURRENCY.max(1))
        .collect()
        .await;
    verdicts.sort_by_key(|(k, _)| *k);
    let errors: Vec<ComponentError> = verdicts
        .into_iter()
        .filter_map(|(_, verdict)| match verdict {
            Ok(Ok(())) => None,
            Ok(Err(reason)) => Some(ComponentError::Invalid {
                target: type_name::<T>().into(),
                reason,
            }),
            Err(_) => Some(ComponentError::Timeout {
                target: format!("a validator of {}", type_name::<T>()).into(),
                after: limit,
            }),
        })
        .collect();
    if !errors.is_empty() {
        let reason = refusal(&errors);
        return (
            Candidate::Refused {
                reason,
                slots,
                errors,
            },
            read,
        );
    }
    (Candidate::Valid(value, slots), read)
}

/// A refusal's reason: the validators' own words (without the struct's name), as a
/// `Rejected` update has always said them.
fn refusal(errors: &[ComponentError]) -> String {
    errors
        .iter()
        .map(|e| match e {
            ComponentError::Invalid { reason, .. } => reason.clone(),
            other => other.to_string(),
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// Fetch errors as a rejected update's reason (every error) and fields (their paths).
fn rejection(errors: &[ComponentError]) -> (String, Vec<String>) {
    let reason = errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ");
    (reason, errors.iter().filter_map(error_path).collect())
}

/// The struct's name for messages about it as a whole (`App`).
fn type_name<T>() -> String {
    let full = std::any::type_name::<T>();
    let base = full.split('<').next().unwrap_or(full);
    base.rsplit("::").next().unwrap_or(base).to_owned()
}

fn error_path(e: &ComponentError) -> Option<String> {
    let p = e.provenance()?;
    Some(format!("{}.{}", p.owner.as_deref()?, p.field.as_deref()?))
}

async fn start<T: Nested + Send + Sync + 'static>(
    builder: LiveBuilder<'_, T>,
) -> Result<Live<T>, Vec<ComponentError>> {
    let sources = builder.sources.clone();
    let plan = Plan::fresh::<T>(&sources);
    let (first, given) = candidate(&plan, &builder.checks, false, None).await;
    let (value, slots) = match first {
        Candidate::Valid(value, slots) => (value, slots),
        Candidate::Failed { errors, .. } => return Err(errors),
        Candidate::Refused { errors, .. } => return Err(errors),
    };
    let watched = plan.watched(&given);
    drop(plan);
    let (updates, _) = broadcast::channel(CHANNEL);
    let (stop_tx, stop_rx) = oneshot::channel();
    let slots = Arc::new(slots);
    let at = SystemTime::now();
    let shared = Arc::new(Shared {
        current: ArcSwap::new(value.clone()),
        state: tokio::sync::Mutex::new(State {
            version: 1,
            latest: 1,
            raws: slots.clone(),
            fetched: slots.clone(),
            kept: VecDeque::from([(1, slots)]),
            given,
            _value: std::marker::PhantomData,
        }),
        history_view: Mutex::new(VecDeque::from([Version {
            version: 1,
            value,
            at,
        }])),
        updates,
        checks: builder.checks,
        history: builder.history,
        sources,
    });
    if !watched.is_empty() {
        let weak = Arc::downgrade(&shared);
        let (quiet, max_wait) = (builder.quiet, builder.max_wait);
        drop(crate::task::spawn(watch_loop(
            weak, watched, stop_rx, quiet, max_wait,
        )));
    }
    Ok(Live {
        shared,
        stop: Arc::new(Mutex::new(Some(stop_tx))),
    })
}

impl<T: Nested + Send + Sync + 'static> Live<T> {
    /// Options before the first fetch: validators, history, quiescence.
    pub fn builder(sources: &Sources) -> LiveBuilder<'_, T> {
        LiveBuilder {
            sources,
            checks: Vec::new(),
            history: DEFAULT_HISTORY,
            quiet: Duration::from_millis(100),
            max_wait: Duration::from_secs(1),
        }
    }

    /// Fetches every field again now (e.g. on SIGHUP), validates and swaps as a watched
    /// change would. `None` when nothing changed.
    pub async fn refresh(&self) -> Option<ConfigUpdate> {
        let sources = self.shared.sources.clone();
        let plan = Plan::fresh::<T>(&sources);
        self.shared.refresh(&plan, &Dirty::every()).await
    }
}

impl<T> Live<T> {
    /// The current value: a lock-free load, cheap enough for every request. Hold the guard
    /// briefly (it pins this version); keep [`Live::snapshot`] instead to hold on to it.
    pub fn get(&self) -> arc_swap::Guard<Arc<T>> {
        self.shared.current.load()
    }

    /// The current value, to keep.
    pub fn snapshot(&self) -> Arc<T> {
        self.shared.current.load_full()
    }

    /// The number of the current version (1 for the first fetch).
    pub fn version(&self) -> u64 {
        self.history().last().map_or(0, |v| v.version)
    }

    /// The updates from now on. A consumer that falls more than 64 updates behind gets
    /// [`ConfigUpdate::Lagged`] and continues with the newest.
    pub fn changes(&self) -> ConfigUpdates {
        let rx = self.shared.updates.subscribe();
        let stream = futures::stream::unfold(rx, |mut rx| async move {
            match rx.recv().await {
                Ok(u) => Some((u, rx)),
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    Some((ConfigUpdate::Lagged { missed }, rx))
                }
                Err(broadcast::error::RecvError::Closed) => None,
            }
        });
        ConfigUpdates {
            inner: stream.boxed(),
            live: None,
        }
    }

    /// The kept versions, oldest first, the current one last (its order of application:
    /// after a rollback, the version rolled back to is last).
    pub fn history(&self) -> Vec<Version<T>> {
        self.shared
            .history_view
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .cloned()
            .collect()
    }

    /// Swaps version `version` (from [`Live::history`]) back in and emits
    /// [`ConfigUpdate::RolledBack`]. Later changes of the sources are applied on top of it
    /// as usual.
    pub async fn rollback(&self, version: u64) -> Result<(), UnknownVersion> {
        let mut state = self.shared.state.lock().await;
        let value = {
            let history = self
                .shared
                .history_view
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            history
                .iter()
                .find(|v| v.version == version)
                .map(|v| v.value.clone())
                .ok_or(UnknownVersion(version))?
        };
        let at = state
            .kept
            .iter()
            .position(|(v, _)| *v == version)
            .ok_or(UnknownVersion(version))?;
        // Kept in the order of application, like the history: the rolled-back-to version
        // is now the newest, the last to be evicted.
        let kept = state.kept.remove(at).ok_or(UnknownVersion(version))?;
        let raws = kept.1.clone();
        state.kept.push_back(kept);
        self.shared.current.store(value.clone());
        state.version = version;
        state.raws = raws;
        {
            let mut history = self
                .shared
                .history_view
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if let Some(at) = history.iter().position(|v| v.version == version) {
                let v = history.remove(at).map(|mut v| {
                    v.at = SystemTime::now();
                    v
                });
                history.extend(v);
            }
        }
        let _ = self.shared.updates.send(ConfigUpdate::RolledBack {
            to_version: version,
        });
        Ok(())
    }

    /// Stops watching now (the value stays readable); dropping the last clone does too.
    pub fn stop(&self) {
        let tx = self
            .stop
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(tx) = tx {
            let _ = tx.send(());
        }
    }
}

impl<T: Nested + Send + Sync + 'static> Shared<T> {
    /// Fetches what `dirty` names (with the values it carries, the rest as last read),
    /// validates, and swaps when something changed.
    async fn refresh(&self, plan: &Plan<'_>, dirty: &Dirty) -> Option<ConfigUpdate> {
        let mut state = self.state.lock().await;
        let given = (!dirty.all).then(|| dirty.applied_to(state.given.clone()));
        let (candidate, read) = candidate(plan, &self.checks, true, given.as_ref()).await;
        state.given = read;
        let update = match candidate {
            Candidate::Failed {
                reason,
                fields,
                errors,
            } => ConfigUpdate::Rejected {
                reason,
                fields,
                errors,
            },
            Candidate::Refused {
                reason,
                slots,
                errors,
            } => {
                // The same refused values read again were reported already.
                if diff(&state.fetched, &slots).is_empty() {
                    return None;
                }
                let fields = diff(&state.raws, &slots)
                    .into_iter()
                    .map(|c| c.field)
                    .collect();
                state.fetched = Arc::new(slots);
                ConfigUpdate::Rejected {
                    reason,
                    fields,
                    errors,
                }
            }
            Candidate::Valid(value, slots) => {
                // Nothing changed at the sources since the last fetch (after a rollback,
                // the sources still hold what was rolled back from): nothing to apply.
                if diff(&state.fetched, &slots).is_empty() {
                    return None;
                }
                let fields = diff_at(&state.raws, &slots, dirty);
                let slots = Arc::new(slots);
                state.fetched = slots.clone();
                if fields.is_empty() {
                    return None;
                }
                state.latest += 1;
                let version = state.latest;
                let at = SystemTime::now();
                self.current.store(value.clone());
                state.version = version;
                state.raws = slots.clone();
                state.kept.push_back((version, slots));
                while state.kept.len() > self.history {
                    state.kept.pop_front();
                }
                let mut history = self
                    .history_view
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner);
                history.push_back(Version { version, value, at });
                while history.len() > self.history {
                    history.pop_front();
                }
                ConfigUpdate::Applied {
                    version,
                    fields,
                    at,
                }
            }
        };
        if let ConfigUpdate::Rejected { reason, .. } = &update {
            tracing::warn!(reason = %reason, "a configuration update was rejected; the old value stays");
        }
        let _ = self.updates.send(update.clone());
        Some(update)
    }
}

/// The stream of [`Live::changes`] (and of the generated `watch_for_updates`).
pub struct ConfigUpdates {
    inner: BoxStream<'static, ConfigUpdate>,
    /// The `Live` a `watch_for_updates` stream keeps alive (its watcher stops with it).
    live: Option<Arc<dyn std::any::Any + Send + Sync>>,
}

impl ConfigUpdates {
    /// The [`Live`] behind a `watch_for_updates` stream, to read each applied version
    /// (`None` for another `T`, or when the first fetch failed).
    pub fn live<T: Send + Sync + 'static>(&self) -> Option<Live<T>> {
        self.live.as_ref()?.downcast_ref::<Live<T>>().cloned()
    }
}

impl fmt::Debug for ConfigUpdates {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ConfigUpdates")
    }
}

impl Stream for ConfigUpdates {
    type Item = ConfigUpdate;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<ConfigUpdate>> {
        self.inner.poll_next_unpin(cx)
    }
}

/// Why the watcher looks again, and what to read.
#[derive(Debug)]
enum Trigger {
    /// A source said something changed: wait for quiet first.
    Change(Dirty),
    /// A polling interval passed: read now.
    Poll(Dirty),
}

/// What a candidate reads again: every field (`all`), else the fields named, each with
/// its new raw value when the change carried one (`None`: fetch it). Changes arriving in
/// one quiescence window merge; a later one about a field replaces an earlier one.
#[derive(Debug, Default)]
struct Dirty {
    all: bool,
    fields: std::collections::BTreeMap<usize, Option<RawValue>>,
    /// The revisions the values in `fields` came with.
    revisions: std::collections::BTreeMap<usize, Revision>,
}

impl Dirty {
    fn every() -> Self {
        Dirty {
            all: true,
            ..Dirty::default()
        }
    }

    /// What `change` of `group`'s watch names: its requests' fields. A position the
    /// group does not have (a source's mistake) reads everything.
    fn of(change: Change, group: &Watched) -> Self {
        let mut dirty = Dirty::default();
        let (indices, value, revision) = match change {
            Change::All => return Dirty::every(),
            Change::Changed(indices) => (indices, None, None),
            Change::Value {
                index,
                value,
                revision,
            } => (vec![index], Some(value), revision),
        };
        for i in indices {
            match group.slots.get(i) {
                Some(slots) => {
                    for &slot in slots {
                        dirty.fields.insert(slot, value.clone());
                        match &revision {
                            Some(r) => dirty.revisions.insert(slot, r.clone()),
                            None => dirty.revisions.remove(&slot),
                        };
                    }
                }
                None => dirty.all = true,
            }
        }
        dirty
    }

    /// Every watched field of `group` (a poll).
    fn polled(group: &Watched) -> Self {
        Dirty {
            all: false,
            fields: group.slots.iter().flatten().map(|&s| (s, None)).collect(),
            revisions: Default::default(),
        }
    }

    fn merge(&mut self, later: Dirty) {
        self.all |= later.all;
        for slot in later.fields.keys() {
            self.revisions.remove(slot);
        }
        self.fields.extend(later.fields);
        self.revisions.extend(later.revisions);
    }

    /// `given` (what the last fetch read) with this applied: the values set, the fields
    /// to fetch forgotten.
    fn applied_to(&self, mut given: Given) -> Given {
        for (&slot, value) in &self.fields {
            match value {
                Some(value) => given.set(slot, value.clone()),
                None => given.forget(slot),
            }
        }
        given
    }
}

/// The triggers of one watched group: the source's own watch, re-established after it
/// ends or fails, with a backoff (500 ms doubling to 30 s, with jitter) that grows until
/// a re-established watch delivers something; a `Poll` every `watch_interval` for a
/// source that cannot watch (its watch fails with a configuration error: not built, not
/// enabled on the server, nothing to watch on).
///
/// A source says `Change::All` once its watch is in place (the built-in ones do, or hand
/// on every value), so what changed before — since the first read, or during an outage —
/// is read again; the first watch also starts with a `Change::All` here, for sources
/// that do not. Each change is mapped onto the fields reading the requests it names.
fn triggers(group: Watched) -> BoxStream<'static, Trigger> {
    enum Mode {
        Start,
        Watching(crate::Changes, u32),
        Waiting(u32),
        Polling,
    }
    let every = group.interval.unwrap_or(DEFAULT_WATCH_INTERVAL);
    let poll = move |why: &dyn fmt::Display| {
        tracing::warn!(
            every_s = every.as_secs_f64(),
            reason = %why,
            "a watched source cannot watch; polling it"
        );
        Mode::Polling
    };
    futures::stream::unfold((group, Mode::Start), move |(group, mut mode)| async move {
        loop {
            mode = match mode {
                Mode::Start | Mode::Waiting(_) => {
                    let (first, failures) = match mode {
                        Mode::Waiting(f) => (false, f),
                        _ => (true, 0),
                    };
                    if !first {
                        tokio::time::sleep(crate::resilience::retry::reconnect_delay(
                            Duration::from_millis(500),
                            failures.saturating_sub(1),
                        ))
                        .await;
                    }
                    match group.source.as_ref().map(|s| s.watch(group.requests.clone())) {
                        Some(Ok(changes)) if first => {
                            let all = Trigger::Change(Dirty::every());
                            return Some((all, (group, Mode::Watching(changes, 0))));
                        }
                        Some(Ok(changes)) => Mode::Watching(changes, failures),
                        Some(Err(e)) if e.kind() == crate::ErrorKind::Config => poll(&e),
                        Some(Err(_)) => Mode::Waiting(failures.saturating_add(1)),
                        None => Mode::Polling,
                    }
                }
                Mode::Watching(mut changes, failures) => match changes.next().await {
                    Some(Ok(change)) => {
                        let dirty = Trigger::Change(Dirty::of(change, &group));
                        return Some((dirty, (group, Mode::Watching(changes, 0))));
                    }
                    Some(Err(e)) if e.kind() == crate::ErrorKind::Config => poll(&e),
                    Some(Err(e)) => {
                        tracing::debug!(error = %e, "a watch failed; watching again after a backoff");
                        Mode::Waiting(failures.saturating_add(1))
                    }
                    None => Mode::Waiting(failures.saturating_add(1)),
                },
                Mode::Polling => {
                    tokio::time::sleep(every).await;
                    let polled = Trigger::Poll(Dirty::polled(&group));
                    return Some((polled, (group, Mode::Polling)));
                }
            };
        }
    })
    .boxed()
}

async fn watch_loop<T: Nested + Send + Sync + 'static>(
    weak: Weak<Shared<T>>,
    watched: Vec<Watched>,
    mut stop: oneshot::Receiver<()>,
    quiet: Duration,
    max_wait: Duration,
) {
    let mut triggers = futures::stream::select_all(watched.into_iter().map(triggers));
    // The keys the fields that reference others were watched at: when an update fills
    // them in differently (the region changed), the watches are aimed anew.
    let mut aimed = match weak.upgrade() {
        Some(shared) => shared.state.lock().await.given.filled(),
        None => return,
    };
    loop {
        let trigger = tokio::select! {
            _ = &mut stop => return,
            t = triggers.next() => match t { Some(t) => t, None => return },
        };
        // A change waits for quiet (at most `max_wait`): a burst becomes one fetch, of
        // what all its changes name. A poll reads at once.
        let dirty = match trigger {
            Trigger::Poll(dirty) => dirty,
            Trigger::Change(mut dirty) => {
                let deadline = tokio::time::Instant::now() + max_wait;
                loop {
                    let until = (tokio::time::Instant::now() + quiet).min(deadline);
                    tokio::select! {
                        _ = &mut stop => return,
                        _ = tokio::time::sleep_until(until) => break,
                        t = triggers.next() => match t {
                            None => return,
                            Some(Trigger::Change(more)) => {
                                dirty.merge(more);
                                if tokio::time::Instant::now() >= deadline {
                                    break;
                                }
                            }
                            Some(Trigger::Poll(more)) => dirty.merge(more),
                        },
                    }
                }
                dirty
            }
        };
        let Some(shared) = weak.upgrade() else { return };
        let sources = shared.sources.clone();
        let plan = Plan::fresh::<T>(&sources);
        // Stopping ends a refresh under way too (a fetch can wait on its timeouts).
        tokio::select! {
            _ = &mut stop => return,
            _ = shared.refresh(&plan, &dirty) => {}
        }
        let given = shared.state.lock().await.given.clone();
        let filled = given.filled();
        if filled != aimed {
            aimed = filled;
            let watched = plan.watched(&given);
            triggers = futures::stream::select_all(watched.into_iter().map(self::triggers));
        }
    }
}

/// `watch_with(&sources)` of a derived struct: a [`Live`] with the default options.
pub fn watch<T: Nested + Send + Sync + 'static>(
    sources: &Sources,
) -> FetchFuture<'_, Result<Live<T>, Vec<ComponentError>>> {
    Live::builder(sources).start()
}

/// The seed's `watch_for_updates(&mut self)` of a derived struct: fills `target` from the
/// process-wide sources, then yields the updates of a [`Live`] started on them (read
/// each applied version with [`ConfigUpdates::live`]). When the first fetch fails,
/// `target` is left as it was and the stream yields one [`ConfigUpdate::Rejected`].
pub fn watch_for_updates<T: Nested + Send + Sync + 'static>(
    target: &mut T,
) -> FetchFuture<'_, ConfigUpdates> {
    FetchFuture::new(async move {
        let sources = Sources::global();
        let failed = |errors: Vec<ComponentError>| {
            let (reason, fields) = rejection(&errors);
            let rejected = ConfigUpdate::Rejected {
                reason,
                fields,
                errors,
            };
            ConfigUpdates {
                inner: futures::stream::iter([rejected]).boxed(),
                live: None,
            }
        };
        // The struct is not `Clone`: it is read once into `target`, once for the watcher.
        match crate::api::fetch_all::<T>(sources).await {
            Ok(value) => *target = value,
            Err(errors) => return failed(errors),
        }
        match watch::<T>(sources).await {
            Ok(live) => {
                let mut updates = live.changes();
                updates.live = Some(Arc::new(live));
                updates
            }
            Err(errors) => failed(errors),
        }
    })
}
