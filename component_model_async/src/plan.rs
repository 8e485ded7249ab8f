//! The engine behind `fetch_all_components`: every field of one struct becomes a slot;
//! plain requests are handed to their source together (one `fetch_many` per source, which is
//! where backends coalesce round trips), fields with resilience layers and typed fetchers run
//! on their own, all concurrently; then `fallback_to` sources are asked for what failed.
//! Conversion into field types happens when the generated code takes each result.

use std::any::{Any, TypeId};
use std::borrow::Cow;
use std::marker::PhantomData;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use futures::FutureExt;
use futures::future::BoxFuture;
use serde::de::DeserializeOwned;
use tracing::Instrument;

use crate::convert::{self, Target};
use crate::error::{BoxError, ComponentError, ErrorKind, Provenance};
use crate::fetcher::{DynFetcher, IntoFetcher};
use crate::nested::{ComponentSource, Nest, Nested};
use crate::partial::Partial;
use crate::report::{FieldReport, Notes, Outcome};
use crate::resilience::{self, Failure};
use crate::source::{FetchRequest, FieldSpec, RawValue, Source};
use crate::sources::{Entry, Sources};

/// What one concurrent job reports: slot index, result, time taken.
type JobResults = Vec<(usize, Result<Got, Failure>, Duration)>;
/// A job borrows the plan it runs for: its requests are read in place, not cloned per run.
type Job<'p> = BoxFuture<'p, JobResults>;

type TypedCall =
    Arc<dyn Fn() -> BoxFuture<'static, Result<Box<dyn Any + Send>, BoxError>> + Send + Sync>;

#[derive(Clone)]
enum Route {
    Raw(Arc<dyn Source>),
    Typed(TypedCall),
    /// A configuration error found while planning (the detail); built anew each run.
    Fail(Arc<str>),
}

enum Got {
    Raw(RawValue),
    Typed(Box<dyn Any + Send>),
}

/// Where a field's decoded value goes: the `&mut Option<T>` of [`Outcomes::take`], as
/// `dyn Any` (decoding writes in place: no box per field).
type Out<'o> = &'o mut dyn Any;

/// A typed fetcher's answer, boxed by its call, or nothing when the value was written to
/// the [`Out`].
type Value = Option<Box<dyn Any + Send>>;

fn put<T: 'static>(out: Out<'_>, value: T) {
    if let Some(slot) = out.downcast_mut::<Option<T>>() {
        *slot = Some(value);
    }
}

/// How a field's raw values, `fallback` literal and absence become its type: chosen
/// where the field is added (the only place that needs `T: Deserialize`).
#[derive(Clone, Copy)]
struct Decoders {
    raw: fn(RawValue, &Target<'_>, Out<'_>) -> Result<(), ComponentError>,
    text: fn(String, &Target<'_>, Out<'_>) -> Result<(), ComponentError>,
    /// Whether the type has a value for "absent" (an `Option`), written to the out.
    absent: fn(Out<'_>) -> bool,
}

impl Decoders {
    fn of<T: DeserializeOwned + Send + 'static>() -> Self {
        Decoders {
            raw: |raw, t, out| convert::decode::<T>(raw, t).map(|v| put(out, v)),
            text: |text, t, out| convert::decode_text::<T>(text, t).map(|v| put(out, v)),
            absent: |out| convert::absent::<T>().map(|v| put(out, v)).is_some(),
        }
    }
}

#[derive(Clone)]
struct Slot {
    spec: &'static FieldSpec,
    /// The struct at the root of the fetch (the field's own struct unless nested).
    owner: &'static str,
    /// The field's path below `owner` (`replica.port` when nested).
    field: Cow<'static, str>,
    /// The source answering, for the location in error messages.
    source: Option<Arc<dyn Source>>,
    sensitive: bool,
    request: Option<FetchRequest>,
    primary: Option<Route>,
    fallback: Option<Route>,
    /// The request as the `fallback_to` source reads it (its own wire form).
    fallback_request: Option<FetchRequest>,
    /// `None` for a fetcher of a type that need not implement `Deserialize`.
    decoders: Option<Decoders>,
}

/// [`Nested::plan`] of a sub-struct, as a function pointer.
pub type PlanFn = fn(&mut Plan<'_>);
/// [`Nested::take`] of a sub-struct, as a function pointer.
pub type TakeFn<S> = fn(&mut Outcomes<'_>, bool) -> Option<S>;

/// Which slot a result belongs to, and its type.
pub struct Handle<T> {
    index: usize,
    _type: PhantomData<fn() -> T>,
}

impl<T> Clone for Handle<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for Handle<T> {}

impl<T> Handle<T> {
    /// The handle of a field a [`Plan::only`] passed over: it names no slot.
    fn passed() -> Self {
        Handle {
            index: usize::MAX,
            _type: PhantomData,
        }
    }
}

/// One struct's fetch, being planned. Built by generated code; see the crate docs.
pub struct Plan<'s> {
    sources: &'s Sources,
    /// Shared with the [`Sources`]' plan cache once built (see [`Plan::of`]).
    slots: Arc<Vec<Slot>>,
    /// The last source looked up by name: fields of one struct mostly share a few sources.
    last: Option<(&'static str, Arc<dyn Source>)>,
    /// The `nested` fields being planned, innermost last.
    scopes: Vec<Frame>,
    /// `Option<Nested>` fields, in the order they were planned (see [`Group`]).
    groups: Arc<Vec<Group>>,
    /// `fetch_<field>`: the one field planned; every other is passed over.
    only: Option<&'static FieldSpec>,
    /// Whether the plan is the same on every fetch from these `Sources`: no `${VAR}` was
    /// read, no `fetcher = ...` value was made, nothing failed to plan (its error or
    /// warning is said on every fetch).
    reusable: AtomicBool,
}

/// A struct type: its `type_name` and its `Nested::plan` function (`type_name` alone is not
/// guaranteed unique; two types sharing both would have identical plans anyway). Plans are
/// kept in the `Sources`' memo under it: a struct's requests, routes and batches are the
/// same on every fetch unless a `${VAR}` is read while planning, so `fetch_*` plans a
/// struct once per `Sources` and runs it many times. A clone of the `Sources` starts
/// empty, and every method that changes one (`register`, `with_env`, `layer`) empties it.
fn plan_key<T: Nested>() -> crate::sources::MemoKey {
    let name = std::any::type_name::<T>();
    let plan: PlanFn = T::plan;
    (name.as_ptr() as usize, name.len(), plan as usize)
}

#[derive(Clone)]
struct Built {
    slots: Arc<Vec<Slot>>,
    groups: Arc<Vec<Group>>,
}

/// A `nested` field being planned: where its sub-struct's fields go.
struct Frame {
    /// The struct at the root of the fetch.
    owner: &'static str,
    /// `replica` or `replica.pool`.
    path: String,
    /// The env prefix of the sub-struct's fields (`APP_REPLICA_`).
    env_prefix: String,
    /// Prepended to `key`, `path` and `secret` below; `Err`: a `${VAR}` in it is unset.
    key_prefix: Result<String, Arc<str>>,
}

/// The slots of an `Option<Nested>` field: `start..end`, and how many groups nest inside.
#[derive(Clone, Copy)]
struct Group {
    start: usize,
    end: usize,
    inner: usize,
}

/// Where a field's value was supposed to come from; built only for error messages.
fn provenance_of(
    slot: &Slot,
    request: Option<&FetchRequest>,
    source: Option<&dyn Source>,
) -> Provenance {
    let spec = slot.spec;
    let unresolved;
    let request = match request {
        Some(r) => r,
        None => {
            unresolved = FetchRequest::new(spec);
            &unresolved
        }
    };
    let native = match source {
        Some(s) => s.native_key(request),
        None => request.native_key(),
    };
    let (label, key) = match native {
        Some((label, key)) => (label, Some(key)),
        None => ("key", None),
    };
    Provenance {
        owner: Some(slot.owner.into()),
        field: Some(slot.field.clone()),
        source: Some(spec.source.into()),
        key_label: label.into(),
        bound_key: (label == "query")
            .then(|| request.bound_key().map(str::to_owned))
            .flatten(),
        key,
        location: source.and_then(Source::location),
    }
}

/// The key shown in a field's span (as sent: prefixes applied), formatted only if a
/// subscriber records it; URLs lose their password.
struct SpanKey<'a>(&'a Slot);

impl std::fmt::Display for SpanKey<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let slot = self.0;
        let native = slot.request.as_ref().and_then(|r| match &slot.source {
            Some(s) => s.native_key(r),
            None => r.native_key(),
        });
        match native {
            Some((_, key)) => f.write_str(&key),
            None => f.write_str(slot.spec.default_key.unwrap_or_default()),
        }
    }
}

impl Slot {
    fn provenance(&self) -> Provenance {
        provenance_of(self, self.request.as_ref(), self.source.as_deref())
    }

    /// This run's span of the field: recorded with its outcome and time.
    fn span(&self) -> tracing::Span {
        let spec = self.spec;
        tracing::debug_span!(
            "component_fetch",
            owner = self.owner,
            field = &*self.field,
            source = spec.source,
            key = %SpanKey(self),
            outcome = tracing::field::Empty,
            elapsed_ms = tracing::field::Empty,
        )
    }

    /// A configuration error of this field found while planning.
    fn config_error(&self, detail: &str) -> ComponentError {
        ComponentError::field(ErrorKind::Config)
            .provenance(self.provenance())
            .detail(detail)
            .build()
    }

    /// How this field's value converts, as its source describes itself.
    fn target<'a>(&'a self, provenance: &'a dyn Fn() -> Provenance) -> Target<'a> {
        self.target_of(provenance, self.source.as_ref(), self.request.as_ref())
    }

    /// How a value that `source` answered for `request` converts.
    fn target_of<'a>(
        &'a self,
        provenance: &'a dyn Fn() -> Provenance,
        source: Option<&'a Arc<dyn Source>>,
        request: Option<&'a FetchRequest>,
    ) -> Target<'a> {
        let mut target = Target::new(self.spec, provenance, self.sensitive);
        if let Some(source) = source {
            if source.selects_field() {
                target.select = None;
            }
            target.unwrap_single = source.unwraps_single_member();
            target.origin = request.map(|r| (source.as_ref(), r));
        }
        target
    }
}

/// The results of one run of a [`Plan`], taken field by field.
pub struct Outcomes<'p> {
    slots: &'p [Slot],
    groups: &'p [Group],
    spans: Vec<tracing::Span>,
    results: Vec<Option<(Result<Got, ComponentError>, Duration)>>,
    /// Which fields the `fallback_to` source answered (converted as that source says).
    via_fallback: Vec<bool>,
    /// The next slot and `Option` group to take, when taken in planning order.
    next: usize,
    next_group: usize,
    /// The errors of the fields taken in planning order.
    errors: Vec<ComponentError>,
    /// How each field got its value, once taken.
    outcomes: Vec<Option<(Outcome, Duration)>>,
    /// What the layers said, when a report is collected.
    notes: Option<Arc<Notes>>,
    /// Why a field took its `fallback` literal after its source failed (not merely had
    /// nothing): a live refresh keeps the current value instead.
    degraded: Vec<Option<String>>,
}

fn fallbackable(kind: ErrorKind) -> bool {
    matches!(
        kind,
        ErrorKind::NotFound
            | ErrorKind::Unavailable
            | ErrorKind::Timeout
            | ErrorKind::CircuitOpen
            | ErrorKind::Other
    )
}

impl<'s> Plan<'s> {
    /// An empty plan over `sources`.
    pub fn new(sources: &'s Sources) -> Self {
        Self::with_capacity(sources, 0)
    }

    /// An empty plan with room for `fields` fields.
    pub fn with_capacity(sources: &'s Sources, fields: usize) -> Self {
        Plan {
            sources,
            slots: Arc::new(Vec::with_capacity(fields)),
            last: None,
            scopes: Vec::new(),
            groups: Arc::default(),
            only: None,
            reusable: AtomicBool::new(true),
        }
    }

    /// The plan of `T` from `sources`: built by `T::plan` the first time, then taken from
    /// the `Sources`' cache while nothing in it can differ (see [`PlanCache`]).
    pub(crate) fn of<T: Nested>(sources: &'s Sources) -> Self {
        let key = plan_key::<T>();
        if let Some(built) = sources.memo().get::<Built>(key) {
            let mut plan = Self::new(sources);
            plan.slots = built.slots.clone();
            plan.groups = built.groups.clone();
            return plan;
        }
        let mut plan = Self::new(sources);
        T::plan(&mut plan);
        if plan.reusable.load(Ordering::Relaxed) {
            let built = Built {
                slots: plan.slots.clone(),
                groups: plan.groups.clone(),
            };
            sources.memo().insert(key, Arc::new(built));
        }
        plan
    }

    /// The environment of the `Sources`, for `${VAR}` placeholders: reading it makes the
    /// plan one of this fetch only.
    fn lookup(&self, name: &str) -> Option<String> {
        self.reusable.store(false, Ordering::Relaxed);
        self.sources.env().get(name)
    }

    /// A plan of one field of a struct: its `Nested::plan` passes over every field but
    /// the one with `spec` (and every nested struct), so a `fetch_<field>` method needs no
    /// code of its own per field.
    pub fn only(sources: &'s Sources, spec: &'static FieldSpec) -> Self {
        let mut plan = Self::with_capacity(sources, 1);
        plan.only = Some(spec);
        plan
    }

    /// Whether the field with `spec` is planned (not in a [`Plan::only`] of another field):
    /// a `fetcher = ...` expression is evaluated only then.
    #[inline]
    pub fn wants(&self, spec: &'static FieldSpec) -> bool {
        self.only.is_none_or(|only| std::ptr::eq(only, spec))
    }

    /// Plans the sub-struct of a `nested` field (`plan` is its [`Nested::plan`]): its
    /// fields join this plan with their paths below the field and the field's prefixes.
    pub fn nest(&mut self, nest: &'static Nest, plan: PlanFn) {
        if self.only.is_some() {
            return;
        }
        let lookup = |name: &str| self.lookup(name);
        let own_key_prefix = nest
            .key_prefix
            .map(|p| crate::placeholder::expand(p, &lookup).map_err(|e| Arc::from(e.to_string())))
            .transpose();
        let segment = match nest.env_prefix {
            Some(p) => p.to_owned(),
            None => format!("{}_", nest.field.to_uppercase()),
        };
        let frame = match self.scopes.last() {
            None => Frame {
                owner: nest.owner,
                path: nest.field.to_owned(),
                env_prefix: format!("{}{segment}", nest.owner_env_prefix),
                key_prefix: own_key_prefix.map(|p| p.map(Cow::into_owned).unwrap_or_default()),
            },
            Some(parent) => Frame {
                owner: parent.owner,
                path: format!("{}.{}", parent.path, nest.field),
                env_prefix: format!("{}{segment}", parent.env_prefix),
                key_prefix: match (&parent.key_prefix, own_key_prefix) {
                    (Err(e), _) => Err(e.clone()),
                    (Ok(_), Err(e)) => Err(e),
                    (Ok(outer), Ok(own)) => Ok(format!("{outer}{}", own.unwrap_or_default())),
                },
            },
        };
        self.scopes.push(frame);
        plan(self);
        self.scopes.pop();
    }

    /// Plans `Option<S>`: its fields are remembered as a group, absent together.
    pub fn optional<S: Nested>(&mut self) {
        if self.only.is_some() {
            return;
        }
        let at = self.groups.len();
        let start = self.slots.len();
        Arc::make_mut(&mut self.groups).push(Group {
            start,
            end: start,
            inner: 0,
        });
        S::plan(self);
        let inner = self.groups.len() - at - 1;
        let end = self.slots.len();
        let groups = Arc::make_mut(&mut self.groups);
        groups[at].end = end;
        groups[at].inner = inner;
    }

    /// Every field planned so far, as the sources resolve it.
    pub fn describe(&self) -> Vec<ComponentSource> {
        self.slots
            .iter()
            .map(|slot| {
                let p = slot.provenance();
                ComponentSource {
                    path: format!("{}.{}", slot.owner, slot.field),
                    spec: slot.spec,
                    key_label: p.key_label.into_owned(),
                    key: p.key,
                    location: p.location,
                    problem: match &slot.primary {
                        Some(Route::Fail(detail)) => Some(detail.to_string()),
                        _ => None,
                    },
                }
            })
            .collect()
    }

    /// The field's request, with `${VAR}`s resolved and, when nested, its path and env
    /// variable name in the tree.
    fn request_for(&self, spec: &'static FieldSpec) -> Result<FetchRequest, Arc<str>> {
        let lookup = |name: &str| self.lookup(name);
        let request =
            FetchRequest::resolved(spec, &lookup).map_err(|e| Arc::from(e.to_string()))?;
        Ok(match self.scopes.last() {
            None => request,
            Some(frame) => request
                .in_field(frame.owner, format!("{}.{}", frame.path, spec.field))
                .with_default_key(format!("{}{}", frame.env_prefix, spec.field.to_uppercase())),
        })
    }

    /// `request` with the `key_prefix` of the nested fields around it, as `source` reads
    /// it: not for a source that keys by field name (its variables take `env_prefix`),
    /// never for SQL text nor a key bound into SQL.
    fn prefixed(
        &self,
        request: FetchRequest,
        source: &dyn Source,
    ) -> Result<FetchRequest, Arc<str>> {
        let Some(frame) = self.scopes.last() else {
            return Ok(request);
        };
        let prefix = frame.key_prefix.as_ref().map_err(Arc::clone)?;
        if prefix.is_empty() || !source.takes_key_prefix() {
            return Ok(request);
        }
        Ok(request.with_key_prefix(prefix))
    }

    fn slot(&self, spec: &'static FieldSpec, sensitive: bool) -> Slot {
        let (request, failure) = match self.request_for(spec) {
            Ok(r) => (Some(r), None),
            Err(e) => (None, Some(Route::Fail(e))),
        };
        let (owner, field) = match self.scopes.last() {
            None => (spec.owner, Cow::Borrowed(spec.field)),
            Some(frame) => (
                frame.owner,
                Cow::Owned(format!("{}.{}", frame.path, spec.field)),
            ),
        };
        Slot {
            spec,
            owner,
            field,
            source: None,
            sensitive,
            request,
            primary: failure,
            fallback: None,
            fallback_request: None,
            decoders: None,
        }
    }

    fn route<T: Send + 'static>(&mut self, name: &'static str, spec: &'static FieldSpec) -> Route {
        if let Some((last, src)) = &self.last
            && *last == name
        {
            return Route::Raw(src.clone());
        }
        let fail = |detail: String| Route::Fail(detail.into());
        match self.sources.entry(name) {
            Some(Entry::Raw(s)) => {
                self.last = Some((name, s.clone()));
                Route::Raw(s.clone())
            }
            Some(Entry::Typed(_))
                if spec.cache_for.is_some()
                    || spec.circuit_breaker
                    || spec.max_concurrency.is_some() =>
            {
                let key = match (spec.cache_for, spec.circuit_breaker) {
                    (Some(_), _) => "cache_for",
                    (None, true) => "circuit_breaker",
                    (None, false) => "max_concurrency",
                };
                fail(format!(
                    "`{key}` works on a `Source`, and `{name}` is registered as a typed `ComponentFetcher` (only `timeout` and `retry_attempts` apply to one): register a `Source` under `{name}`, or drop `{key}`"
                ))
            }
            Some(Entry::Typed(t)) if t.type_id == TypeId::of::<T>() => match t.downcast::<T>() {
                Some(f) => Route::Typed(typed_call(f)),
                None => fail(format!(
                    "source `{name}` could not be used for `{}`",
                    spec.type_name
                )),
            },
            Some(Entry::Typed(t)) => fail(format!(
                "source `{name}` is a fetcher of `{}`, but the field is `{}`",
                t.type_name, spec.type_name
            )),
            None => fail(format!(
                "no source named `{name}` is registered; {}",
                self.unknown_source_hint(name)
            )),
        }
    }

    /// Adds a field fetched from a named source (`fetch_from`); `secret_type` says whether
    /// its type is a [`SecretValue`](crate::SecretValue).
    pub fn add<T: DeserializeOwned + Send + 'static>(
        &mut self,
        spec: &'static FieldSpec,
        secret_type: bool,
    ) -> Handle<T> {
        if !self.wants(spec) {
            return Handle::passed();
        }
        let sensitive = spec.sensitive || secret_type;
        let mut slot = self.slot(spec, sensitive);
        slot.decoders = Some(Decoders::of::<T>());
        if slot.primary.is_none() {
            let mut primary = self.route::<T>(spec.source, spec);
            if let Route::Raw(s) = &primary {
                // Secrecy and value handling follow the source, not its name.
                slot.sensitive |= s.is_sensitive();
                slot.source = Some(s.clone());
                if let Some(r) = slot.request.take() {
                    match self.prefixed(r, s.as_ref()) {
                        Ok(r) => slot.request = Some(for_source(r, s.as_ref())),
                        Err(e) => primary = Route::Fail(e),
                    }
                }
            }
            slot.primary = Some(primary);
            slot.fallback = spec.fallback_to.map(|name| self.route::<T>(name, spec));
            if let Some(Route::Fail(why)) = &slot.fallback {
                // Said now, not only when the fallback is needed.
                tracing::warn!(
                    field = format_args!("{}.{}", slot.owner, slot.field),
                    fallback_to = spec.fallback_to.unwrap_or_default(),
                    reason = %why,
                    "the field's `fallback_to` source cannot be used"
                );
            }
            // A value that may come from a secret source is secret; the fallback source
            // gets the request in its own wire form.
            if let Some(Route::Raw(fb)) = &slot.fallback {
                slot.sensitive |= fb.is_sensitive();
                slot.fallback_request = self
                    .request_for(spec)
                    .and_then(|r| self.prefixed(r, fb.as_ref()))
                    .ok()
                    .map(|r| for_source(r, fb.as_ref()));
            }
            // Layers (a shared cache tier) see what the engine knows: the value is secret.
            if slot.sensitive {
                slot.request = slot.request.take().map(|r| r.sensitive(true));
                slot.fallback_request = slot.fallback_request.take().map(|r| r.sensitive(true));
            }
        }
        self.push(slot)
    }

    /// Adds a field fetched by a fetcher expression (`fetcher = ...`).
    pub fn add_fetcher<T, F, M>(
        &mut self,
        spec: &'static FieldSpec,
        secret_type: bool,
        fetcher: F,
    ) -> Handle<T>
    where
        T: Send + 'static,
        F: IntoFetcher<T, M>,
    {
        if !self.wants(spec) {
            return Handle::passed();
        }
        // The fetcher value is made by the struct's `plan` on every fetch.
        self.reusable.store(false, Ordering::Relaxed);
        let sensitive = spec.sensitive || secret_type;
        let mut slot = self.slot(spec, sensitive);
        if slot.primary.is_none() {
            let erased: Arc<dyn DynFetcher<T>> = Arc::new(fetcher.into_fetcher());
            slot.primary = Some(Route::Typed(typed_call(erased)));
            slot.fallback = spec.fallback_to.map(|name| self.route::<T>(name, spec));
        }
        self.push(slot)
    }

    /// Makes a fetcher field's `fallback` literal and `fallback_to` answers decodable.
    pub fn decodes<T: DeserializeOwned + Send + 'static>(
        &mut self,
        handle: Handle<T>,
    ) -> Handle<T> {
        if let Some(slot) = Arc::make_mut(&mut self.slots).get_mut(handle.index) {
            slot.decoders = Some(Decoders::of::<T>());
        }
        handle
    }

    /// The first field planned: in a [`Plan::only`], the one field.
    pub(crate) fn first<T>(&self) -> Option<Handle<T>> {
        (!self.slots.is_empty()).then_some(Handle {
            index: 0,
            _type: PhantomData,
        })
    }

    fn push<T>(&mut self, slot: Slot) -> Handle<T> {
        if matches!(slot.primary, Some(Route::Fail(_)))
            || matches!(slot.fallback, Some(Route::Fail(_)))
        {
            self.reusable.store(false, Ordering::Relaxed);
        }
        Arc::make_mut(&mut self.slots).push(slot);
        Handle {
            index: self.slots.len() - 1,
            _type: PhantomData,
        }
    }

    /// Fetches every slot concurrently. A plan can run again (a refresh): each run asks
    /// the same sources for the same requests and returns its own outcomes.
    pub async fn run(&self) -> Outcomes<'_> {
        self.run_noting(None).await
    }

    /// Like [`Plan::run`], collecting what the layers did for each request into `notes`
    /// (for a [`FetchReport`](crate::FetchReport)).
    pub(crate) async fn run_noting(&self, notes: Option<Arc<Notes>>) -> Outcomes<'_> {
        match &notes {
            Some(n) => crate::report::collecting(n.clone(), self.run_inner(notes)).await,
            None => self.run_inner(None).await,
        }
    }

    async fn run_inner(&self, notes: Option<Arc<Notes>>) -> Outcomes<'_> {
        let spans: Vec<tracing::Span> = self.slots.iter().map(Slot::span).collect();
        let mut results: Vec<Option<(Result<Got, ComponentError>, Duration)>> =
            (0..self.slots.len()).map(|_| None).collect();
        // How long each field took is for the report, a span someone records and the
        // warning of a failed field; a clock read costs more than a fetcher answering
        // from memory, so only when one of them can be seen.
        let timed = notes.is_some()
            || crate::metrics::ENABLED
            || tracing::enabled!(tracing::Level::WARN)
            || spans.iter().any(|s| !s.is_disabled());
        let jobs = self.primary_jobs(&spans, &mut results, timed);
        for (i, r, elapsed) in futures::future::join_all(jobs).await.into_iter().flatten() {
            let r = r.map_err(|f| to_component_error(f, &self.slots[i]));
            results[i] = Some((r, elapsed));
        }
        let remembering = self.remember(&results);
        let (via_fallback, ()) = futures::future::join(
            self.fallback_round(&spans, &mut results, timed),
            futures::future::join_all(remembering).map(drop),
        )
        .await;
        Outcomes {
            slots: &self.slots,
            groups: &self.groups,
            spans,
            results,
            via_fallback,
            next: 0,
            next_group: 0,
            errors: Vec::new(),
            outcomes: vec![None; self.slots.len()],
            notes,
            degraded: vec![None; self.slots.len()],
        }
    }

    /// Hands the values the first round fetched to the `fallback_to` sources that keep
    /// them (last-known-good), one call per source; never a secret value.
    fn remember(
        &self,
        results: &[Option<(Result<Got, ComponentError>, Duration)>],
    ) -> Vec<crate::source::Remembering> {
        type Kept = Vec<(FetchRequest, RawValue)>;
        let mut keep: Vec<(&Arc<dyn Source>, Kept)> = Vec::new();
        for (slot, result) in self.slots.iter().zip(results) {
            let (Some(Route::Raw(fb)), Some((Ok(Got::Raw(raw)), _)), Some(request)) =
                (&slot.fallback, result, &slot.fallback_request)
            else {
                continue;
            };
            if !fb.keeps_answers() {
                continue;
            }
            // Only a value the field accepts is last-known-good: one that does not convert
            // (or is over `max_size`) must not replace a good one.
            let provenance = || slot.provenance();
            let target = slot.target(&provenance);
            let converts = too_large(raw, &target).is_none()
                && slot
                    .decoders
                    .is_some_and(|d| (d.raw)(raw.clone(), &target, &mut ()).is_ok());
            if !converts {
                continue;
            }
            if slot.sensitive {
                tracing::warn!(
                    field = format_args!("{}.{}", slot.owner, slot.field),
                    fallback_to = slot.spec.fallback_to.unwrap_or_default(),
                    "the value is secret: it is not stored for fallback"
                );
                continue;
            }
            let answer = (request.clone(), raw.clone());
            match keep.iter_mut().find(|(s, _)| Arc::ptr_eq(s, fb)) {
                Some((_, answers)) => answers.push(answer),
                None => keep.push((fb, vec![answer])),
            }
        }
        keep.into_iter()
            .filter_map(|(fb, answers)| fb.remember(answers))
            .collect()
    }

    /// Jobs of the first round: one per batch (a source and its fields' layer settings),
    /// one per typed fetcher; planning errors go straight into `results`.
    fn primary_jobs(
        &self,
        spans: &[tracing::Span],
        results: &mut [Option<(Result<Got, ComponentError>, Duration)>],
        timed: bool,
    ) -> Vec<Job<'_>> {
        // Fields with `timeout`/`retry_attempts` stay in a batch with the fields that have
        // the same settings; the layers wrap the whole batch.
        let mut batches: Vec<Batch<'_>> = Vec::new();
        let mut jobs: Vec<Job<'_>> = Vec::new();
        for (i, slot) in self.slots.iter().enumerate() {
            match &slot.primary {
                Some(Route::Fail(detail)) => {
                    results[i] = Some((Err(slot.config_error(detail)), Duration::ZERO))
                }
                Some(Route::Raw(src)) => join_batch(&mut batches, src, slot.spec, i),
                Some(Route::Typed(call)) => jobs.push(single_typed(
                    i,
                    call.clone(),
                    slot.spec,
                    spans[i].clone(),
                    timed,
                )),
                None => {}
            }
        }
        for (src, _, members) in batches {
            let src = self
                .sources
                .layers()
                .layered(src, self.slots[members[0]].spec);
            jobs.push(self.batch_job(src, members, false, timed));
        }
        jobs
    }

    /// One `fetch_many` of a batch; each member gets its answer.
    fn batch_job(
        &self,
        src: Arc<dyn Source>,
        members: Vec<usize>,
        fallback: bool,
        timed: bool,
    ) -> Job<'_> {
        let requests: Vec<&FetchRequest> = members
            .iter()
            .filter_map(|&i| {
                let slot = &self.slots[i];
                match fallback {
                    true => slot.fallback_request.as_ref(),
                    false => slot.request.as_ref(),
                }
            })
            .collect();
        let source = members.first().map_or("", |&i| {
            let spec = self.slots[i].spec;
            match fallback {
                true => spec.fallback_to.unwrap_or_default(),
                false => spec.source,
            }
        });
        let span = tracing::debug_span!("component_batch", source, size = members.len());
        Box::pin(
            async move {
                let started = timed.then(Instant::now);
                let answers = crate::metrics::scope(source, src.fetch_many(&requests)).await;
                let elapsed = started.map_or(Duration::ZERO, |t| t.elapsed());
                crate::metrics::call(source, members.len(), elapsed);
                let mut answers = answers.into_iter();
                members
                    .into_iter()
                    .map(|i| {
                        let r = answers.next().unwrap_or_else(|| {
                            Err(crate::SourceError::new(ErrorKind::Unavailable)
                                .with_message("the source returned fewer answers than requests"))
                        });
                        if let Err(e) = &r {
                            crate::metrics::error(source, e.kind());
                        }
                        (i, r.map(Got::Raw).map_err(Failure::Source), elapsed)
                    })
                    .collect()
            }
            .instrument(span),
        )
    }

    /// Second round: `fallback_to` for what failed in a way another source may fix — one
    /// batch per fallback source and layer settings, as in the first round. Says which
    /// fields the fallback answered.
    async fn fallback_round(
        &self,
        spans: &[tracing::Span],
        results: &mut [Option<(Result<Got, ComponentError>, Duration)>],
        timed: bool,
    ) -> Vec<bool> {
        let mut answered = vec![false; self.slots.len()];
        let mut batches: Vec<Batch<'_>> = Vec::new();
        let mut jobs = Vec::new();
        for (i, slot) in self.slots.iter().enumerate() {
            let failed = matches!(&results[i], Some((Err(e), _)) if fallbackable(e.kind()));
            if !failed {
                continue;
            }
            match &slot.fallback {
                // A source that keeps last-known-good values never got this secret one.
                Some(Route::Raw(src)) if slot.sensitive && src.keeps_answers() => {
                    let why = ComponentError::field(ErrorKind::NotFound)
                        .provenance(slot.provenance())
                        .detail(
                            "the value is secret, and secret values are never stored for fallback",
                        )
                        .build();
                    append(&mut results[i], slot.spec, &why)
                }
                Some(Route::Raw(src)) if slot.fallback_request.is_some() => {
                    join_batch(&mut batches, src, slot.spec, i)
                }
                Some(Route::Typed(call)) => jobs.push(single_typed(
                    i,
                    call.clone(),
                    slot.spec,
                    spans[i].clone(),
                    timed,
                )),
                Some(Route::Fail(detail)) => {
                    append(&mut results[i], slot.spec, &slot.config_error(detail))
                }
                _ => {}
            }
        }
        for (src, _, members) in batches {
            let src = self
                .sources
                .layers()
                .layered(src, self.slots[members[0]].spec);
            jobs.push(self.batch_job(src, members, true, timed));
        }
        if jobs.is_empty() {
            return answered;
        }
        for (i, r, elapsed) in futures::future::join_all(jobs).await.into_iter().flatten() {
            // The field waited for its own source first.
            let elapsed = results[i].as_ref().map_or(Duration::ZERO, |(_, d)| *d) + elapsed;
            match r {
                Ok(got) => {
                    results[i] = Some((Ok(got), elapsed));
                    answered[i] = true;
                }
                Err(f) => {
                    let e = to_component_error(f, &self.slots[i]);
                    append(&mut results[i], self.slots[i].spec, &e);
                }
            }
        }
        answered
    }
}

impl Plan<'_> {
    /// For a name nothing is registered under: the closest registered or built-in name
    /// (a typo), else how to register it (a built-in backend says how).
    fn unknown_source_hint(&self, name: &str) -> String {
        let registered = self.sources.names();
        let builtins = crate::fetchers::BUILTINS
            .iter()
            .flat_map(|b| b.names.iter().copied());
        let candidates = registered.iter().map(String::as_str).chain(builtins);
        let base = name.split(':').next().unwrap_or(name);
        let close = candidates
            .map(|c| (edit_distance(base, c), c))
            .filter(|(d, c)| *d > 0 && *d <= 2.max(c.len() / 4))
            .min_by_key(|(d, _)| *d)
            .map(|(_, c)| c);
        let register = format!("register one with `Sources::new().register(\"{name}\", ...)`");
        match (close, crate::fetchers::builtin(name)) {
            (Some(c), _) if crate::fetchers::builtin(name).is_none() => {
                format!("did you mean `{c}`?")
            }
            (_, Some(b)) => format!("{register} ({})", b.hint),
            (_, None) => register,
        }
    }
}

/// What a [`Live`](crate::Live) watches: a source and the requests of its watched fields
/// (`None`: typed fetchers, polled), and the shortest `watch_interval` among them.
pub(crate) struct Watched {
    pub(crate) source: Option<Arc<dyn Source>>,
    pub(crate) requests: Vec<FetchRequest>,
    pub(crate) interval: Option<Duration>,
}

impl Plan<'_> {
    /// The watched fields (those marked `watch`, else all; `stream_from` fields always)
    /// grouped by source, and apart by kind: a source's streams (`topic`) and its keys
    /// are watched separately, so one cannot stop the other (a Redis source watches
    /// both, and its keys may fall back to polling).
    pub(crate) fn watched(&self) -> Vec<Watched> {
        let marked = self.slots.iter().any(|s| s.spec.watch);
        let mut groups: Vec<(Watched, bool)> = Vec::new();
        for slot in self
            .slots
            .iter()
            .filter(|s| !marked || s.spec.watch || s.spec.streamed)
        {
            let (source, request) = match (&slot.primary, &slot.request) {
                (Some(Route::Raw(src)), Some(r)) => (Some(src.clone()), Some(r.clone())),
                (Some(Route::Typed(_)), _) => (None, None),
                _ => continue,
            };
            let stream = request.as_ref().is_some_and(|r| r.topic().is_some());
            let at = groups.iter().position(|(g, s)| {
                *s == stream
                    && match (&g.source, &source) {
                        (Some(a), Some(b)) => Arc::ptr_eq(a, b),
                        (None, None) => true,
                        _ => false,
                    }
            });
            let group = match at {
                Some(at) => &mut groups[at].0,
                None => {
                    groups.push((
                        Watched {
                            source,
                            requests: Vec::new(),
                            interval: None,
                        },
                        stream,
                    ));
                    &mut groups.last_mut().expect("just pushed").0
                }
            };
            if let Some(r) = request
                && !group.requests.contains(&r)
            {
                group.requests.push(r);
            }
            group.interval = match (group.interval, slot.spec.watch_interval) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
        }
        groups.into_iter().map(|(g, _)| g).collect()
    }
}

/// A source, its fields' layer settings, and the slots fetched from it together.
type Batch<'a> = (&'a Arc<dyn Source>, resilience::Settings, Vec<usize>);

/// Puts slot `i` into the batch of `src` with the same layer settings, or a new one.
fn join_batch<'a>(
    batches: &mut Vec<Batch<'a>>,
    src: &'a Arc<dyn Source>,
    spec: &FieldSpec,
    i: usize,
) {
    let settings = resilience::Settings::of(spec);
    match batches
        .iter_mut()
        .find(|(s, set, _)| Arc::ptr_eq(s, src) && *set == settings)
    {
        Some((_, _, members)) => members.push(i),
        None => batches.push((src, settings, vec![i])),
    }
}

/// `request` in the wire form `source` reads: with the `field` member when the source
/// selects it itself, with the field's default key when it keys by field name.
fn for_source(mut request: FetchRequest, source: &dyn Source) -> FetchRequest {
    if source.selects_field() {
        request.select_on_wire();
    }
    if source.keys_by_field_name() {
        request.default_key_on_wire();
    }
    request
}

/// Levenshtein distance, for "did you mean" hints.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// Keeps the primary error and notes that `fallback_to` failed too, and why.
fn append(
    slot: &mut Option<(Result<Got, ComponentError>, Duration)>,
    spec: &FieldSpec,
    fallback: &ComponentError,
) {
    if let Some((Err(primary), _)) = slot {
        let reason = match fallback.detail() {
            Some(detail) => format!("{}: {detail}", fallback.kind()),
            None => fallback.kind().to_string(),
        };
        let note = format!(
            "fallback_to `{}` failed too: {reason}",
            spec.fallback_to.unwrap_or("?")
        );
        let taken = std::mem::replace(primary, ComponentError::Multiple(Vec::new()));
        *primary = taken.with_note(note);
    }
}

fn typed_call<T: Send + 'static>(f: Arc<dyn DynFetcher<T>>) -> TypedCall {
    Arc::new(move || {
        let f = f.clone();
        Box::pin(async move {
            f.fetch_dyn()
                .await
                .map(|v| Box::new(v) as Box<dyn Any + Send>)
        })
    })
}

fn single_typed(
    i: usize,
    call: TypedCall,
    spec: &'static FieldSpec,
    span: tracing::Span,
    timed: bool,
) -> Job<'static> {
    Box::pin(
        async move {
            let started = timed.then(Instant::now);
            let r = resilience::call(spec, || {
                let fut = call();
                async move { fut.await.map_err(Failure::Fetcher) }
            })
            .await;
            let elapsed = started.map_or(Duration::ZERO, |t| t.elapsed());
            crate::metrics::call(spec.source, 1, elapsed);
            if let Err(e) = &r {
                crate::metrics::error(spec.source, e.kind());
            }
            vec![(i, r.map(Got::Typed), elapsed)]
        }
        .instrument(span),
    )
}

fn to_component_error(f: Failure, slot: &Slot) -> ComponentError {
    let kind = f.kind();
    let builder = ComponentError::field(kind).provenance(slot.provenance());
    match f {
        Failure::Source(e) => e.into_field_error(builder),
        Failure::Fetcher(e) => {
            if slot.sensitive {
                builder
                    .detail(
                        "the fetcher failed (its message is hidden because the field is secret)",
                    )
                    .build()
            } else {
                builder.cause(e).build()
            }
        }
    }
}

impl Outcomes<'_> {
    /// The field's value: converted, or absent, or its `fallback`; recorded in its span.
    fn finish(&mut self, index: usize, out: Out<'_>) -> Result<Value, ComponentError> {
        let slot = &self.slots[index];
        let provenance = || slot.provenance();
        let fallback_source = match (&slot.fallback, self.via_fallback[index]) {
            (Some(Route::Raw(fb)), true) => Some(fb),
            _ => None,
        };
        let target = match fallback_source {
            Some(fb) => slot.target_of(&provenance, Some(fb), slot.fallback_request.as_ref()),
            None => slot.target(&provenance),
        };
        let (result, elapsed) = self.results[index].take().unwrap_or_else(|| {
            (
                Err(ComponentError::field(ErrorKind::Config)
                    .provenance(slot.provenance())
                    .detail("this field's result was already taken")
                    .build()),
                Duration::ZERO,
            )
        });
        let mut outcome = "ok";
        let fetched = result.is_ok();
        let converted = match result {
            Ok(Got::Raw(raw)) => match (too_large(&raw, &target), slot.decoders) {
                (Some(e), _) => Err(e),
                (None, Some(d)) => (d.raw)(raw, &target, &mut *out).map(|()| None),
                (None, None) => Err(convert::error(
                    ErrorKind::Config,
                    &target,
                    format!(
                        "`{}` does not implement `serde::Deserialize`; only a fetcher of that type can serve it",
                        slot.spec.type_name
                    ),
                )),
            },
            Ok(Got::Typed(any)) => Ok(Some(any)),
            Err(e) => Err(e),
        };
        let decoders = slot.decoders;
        let fallback = |text: &'static str, t: &Target<'_>, out: Out<'_>| {
            decoders.map(|d| (d.text)(text.to_owned(), t, out).map(|()| None))
        };
        let result = match converted {
            Ok(v) => Ok(v),
            Err(e) if e.kind() == ErrorKind::NotFound => {
                if decoders.is_some_and(|d| (d.absent)(&mut *out)) {
                    outcome = "absent";
                    Ok(None)
                } else {
                    use_fallback(e, &target, |t, tg| fallback(t, tg, out), &mut outcome)
                }
            }
            Err(e) if fallbackable(e.kind()) => {
                let why = e.to_string();
                let r = use_fallback(e, &target, |t, tg| fallback(t, tg, out), &mut outcome);
                if outcome == "fallback" {
                    self.degraded[index] = Some(why);
                }
                r
            }
            Err(e) => Err(e),
        };
        let how = match (&result, outcome) {
            (Err(e), _) => Outcome::Failed(e.kind()),
            (Ok(_), "absent") => Outcome::Absent,
            (Ok(_), "fallback") => Outcome::Fallback,
            (Ok(_), _) if fetched => self.fetched_outcome(index),
            (Ok(_), _) => Outcome::Fetched,
        };
        self.outcomes[index] = Some((how, elapsed));
        let span = &self.spans[index];
        let elapsed_ms = elapsed.as_secs_f64() * 1000.0;
        match &result {
            Ok(_) => {
                span.record("outcome", outcome);
                span.record("elapsed_ms", elapsed_ms);
                tracing::debug!(parent: span, outcome, elapsed_ms, "component fetched");
            }
            Err(e) => {
                span.record("outcome", e.kind().as_str());
                span.record("elapsed_ms", elapsed_ms);
                tracing::warn!(parent: span, error = %e, elapsed_ms, "component fetch failed");
            }
        }
        result
    }

    /// How a fetched value came: from the primary source (and how its layers answered)
    /// or from the `fallback_to` source.
    fn fetched_outcome(&self, index: usize) -> Outcome {
        let slot = &self.slots[index];
        let note = |r: Option<&FetchRequest>| match (&self.notes, r) {
            (Some(notes), Some(r)) => notes.get(r),
            _ => crate::report::Note::default(),
        };
        if self.via_fallback[index] {
            return Outcome::FallbackTo {
                source: slot.spec.fallback_to.unwrap_or_default(),
                age: note(slot.fallback_request.as_ref()).stored,
            };
        }
        let n = note(slot.request.as_ref());
        match n {
            _ if n.stale.is_some() => Outcome::Stale {
                age: n.stale.unwrap_or_default(),
            },
            _ if n.cache_hit => Outcome::CacheHit,
            _ if n.retries > 0 => Outcome::Retried { retries: n.retries },
            _ => Outcome::Fetched,
        }
    }

    /// One row per field taken so far (all of them after the struct is taken).
    pub(crate) fn report(&self) -> Vec<FieldReport> {
        self.slots
            .iter()
            .zip(&self.outcomes)
            .filter_map(|(slot, taken)| {
                let (outcome, elapsed) = (*taken)?;
                let p = slot.provenance();
                Some(FieldReport {
                    path: format!("{}.{}", slot.owner, slot.field),
                    source: slot.spec.source,
                    key_label: p.key_label.into_owned(),
                    key: p.key,
                    bound_key: p.bound_key,
                    location: p.location,
                    elapsed,
                    outcome,
                })
            })
            .collect()
    }

    /// The field's value in its type (absent `Option` = `None`, `fallback` applied when
    /// the value is absent or the source failed).
    pub fn take<T: 'static>(&mut self, handle: Handle<T>) -> Result<T, ComponentError> {
        let mut out: Option<T> = None;
        let boxed = self.finish(handle.index, &mut out)?;
        let value = match boxed {
            Some(any) => any.downcast::<T>().ok().map(|v| *v),
            None => out,
        };
        value.ok_or_else(|| {
            let slot = &self.slots[handle.index];
            ComponentError::field(ErrorKind::Config)
                .provenance(slot.provenance())
                .detail(format!(
                    "the fetcher produced another type than `{}`",
                    slot.spec.type_name
                ))
                .build()
        })
    }

    /// The field's `fallback` literal converted, for degraded fetches.
    pub fn fallback_value<T: 'static>(&self, handle: &Handle<T>) -> Option<T> {
        let slot = &self.slots[handle.index];
        let text = slot.spec.fallback?;
        let decoders = slot.decoders?;
        let provenance = || slot.provenance();
        let target = slot.target(&provenance);
        let mut out: Option<T> = None;
        (decoders.text)(text.to_owned(), &target, &mut out).ok()?;
        out
    }
}

impl Outcomes<'_> {
    /// The fields taken so far that fell back to their `fallback` literal because their
    /// source failed, with the failure.
    pub(crate) fn degraded(&self) -> Vec<(String, String)> {
        self.slots
            .iter()
            .zip(&self.degraded)
            .filter_map(|(slot, why)| {
                Some((format!("{}.{}", slot.owner, slot.field), why.clone()?))
            })
            .collect()
    }

    /// Every field with its raw value (before conversion), for a live update's diff.
    pub(crate) fn watch_slots(&self) -> Vec<FieldView> {
        self.slots
            .iter()
            .zip(&self.results)
            .map(|(slot, result)| {
                let p = slot.provenance();
                FieldView {
                    path: format!("{}.{}", slot.owner, slot.field),
                    source: slot.spec.source,
                    key: p.key,
                    secret: slot.sensitive,
                    raw: match result {
                        Some((Ok(Got::Raw(raw)), _)) => {
                            let provenance = || slot.provenance();
                            let target = slot.target(&provenance);
                            Some(narrowed(raw, target.select, target.pointer))
                        }
                        // The `fallback` literal stands in: an update from it shows it as
                        // the old value (not "none").
                        Some((Err(e), _))
                            if fallbackable(e.kind())
                                && !(e.kind() == ErrorKind::NotFound
                                    && slot.decoders.is_some_and(|d| (d.absent)(&mut ()))) =>
                        {
                            slot.spec.fallback.map(|f| RawValue::Text(f.to_owned()))
                        }
                        _ => None,
                    },
                }
            })
            .collect()
    }
}

/// The part of `raw` a field reads (`field`, then `pointer`), for a live update's diff:
/// two fields of one document change apart. `raw` itself when nothing is selected or the
/// selection fails (the conversion reports that).
fn narrowed(raw: &RawValue, select: Option<&str>, pointer: Option<&str>) -> RawValue {
    if select.is_none() && pointer.is_none() {
        return raw.clone();
    }
    let doc = match raw {
        RawValue::Json(v) => Some(v.clone()),
        RawValue::Text(s) => serde_json::from_str(s).ok(),
        RawValue::Bytes(b) => serde_json::from_slice(b).ok(),
    };
    let picked = doc.and_then(|mut v| {
        if let Some(f) = select {
            v = v.get_mut(f).map(serde_json::Value::take)?;
        }
        if let Some(p) = pointer {
            v = v.pointer_mut(p).map(serde_json::Value::take)?;
        }
        Some(v)
    });
    match picked {
        Some(serde_json::Value::String(s)) => RawValue::Text(s),
        Some(v) => RawValue::Json(v),
        None => raw.clone(),
    }
}

/// Taking results in planning order: what generated `Nested::take` implementations call.
impl Outcomes<'_> {
    fn next_index(&mut self) -> usize {
        let i = self.next;
        self.next += 1;
        i
    }

    /// The next field's value; its error goes into the outcomes. With `available`, a
    /// failed field takes its `fallback` literal, else `default()`.
    pub fn field<T: 'static>(&mut self, available: bool, default: Option<fn() -> T>) -> Option<T> {
        let handle = Handle {
            index: self.next_index(),
            _type: PhantomData,
        };
        match self.take(handle) {
            Ok(v) => Some(v),
            Err(e) => {
                self.errors.push(e);
                available
                    .then(|| {
                        self.fallback_value(&handle)
                            .or_else(|| default.map(|d| d()))
                    })
                    .flatten()
            }
        }
    }

    /// The next `nested` field: its sub-struct, or, with `available`, `default()` when a
    /// field inside failed without a `fallback` or `Default` of its own.
    pub fn nested<S>(
        &mut self,
        available: bool,
        take: TakeFn<S>,
        default: Option<fn() -> S>,
    ) -> Option<S> {
        take(self, available).or_else(|| default.filter(|_| available).map(|d| d()))
    }

    /// The next `Option<S>` field: `None` when every field of `S` (recursively) was not
    /// found, before any `fallback`; else `S` as usual, so fields that were not found
    /// fail (or take their `fallback`, `Option` or `Default`) one by one.
    pub fn optional<S: Nested>(&mut self, available: bool) -> Option<Option<S>> {
        let group = self.groups.get(self.next_group).copied();
        self.next_group += 1;
        if let Some(g) = group
            && g.start == self.next
            && g.end > g.start
            && (g.start..g.end).all(|i| self.not_found(i))
        {
            for i in g.start..g.end {
                let elapsed = self.results[i].take().map_or(Duration::ZERO, |(_, d)| d);
                self.outcomes[i] = Some((Outcome::Absent, elapsed));
                self.spans[i].record("outcome", "absent");
            }
            self.next = g.end;
            self.next_group += g.inner;
            return Some(None);
        }
        S::take(self, available).map(Some)
    }

    fn not_found(&self, i: usize) -> bool {
        matches!(&self.results[i], Some((Err(e), _)) if e.kind() == ErrorKind::NotFound)
    }

    /// `value` if every field taken was fetched, else every error.
    pub fn into_result<T>(self, value: Option<T>) -> Result<T, Vec<ComponentError>> {
        match value {
            Some(v) if self.errors.is_empty() => Ok(v),
            _ => Err(self.errors),
        }
    }

    /// `value` with the errors of the fields that fell back, or the errors when a failed
    /// field had nothing to fall back to.
    pub fn into_partial<T>(self, value: Option<T>) -> Result<Partial<T>, Vec<ComponentError>> {
        match value {
            Some(value) => Ok(Partial {
                value,
                errors: self.errors,
            }),
            None => Err(self.errors),
        }
    }
}

/// The error of a value over the field's `max_size`, checked per value (a batch is never
/// split for it).
fn too_large(raw: &RawValue, target: &Target<'_>) -> Option<ComponentError> {
    let max = target.spec.max_size?;
    let len = raw.len() as u64;
    (len > max).then(|| {
        convert::error(
            ErrorKind::TooLarge,
            target,
            format!(
                "a value of {len} bytes, over the field's `max_size` of {}",
                crate::error::bytes(max)
            ),
        )
    })
}

fn use_fallback<T>(
    e: ComponentError,
    target: &Target<'_>,
    fallback: impl FnOnce(&'static str, &Target<'_>) -> Option<Result<T, ComponentError>>,
    outcome: &mut &'static str,
) -> Result<T, ComponentError> {
    let Some(text) = target.spec.fallback else {
        return Err(e);
    };
    match fallback(text, target) {
        Some(Ok(v)) => {
            *outcome = "fallback";
            tracing::info!(reason = %e, "using the fallback value");
            Ok(v)
        }
        Some(Err(bad)) => Err(bad.with_note("while converting the `fallback` literal".to_owned())),
        None => Err(e),
    }
}

/// One field of a fetched version as `Live` sees it (its diff of two versions): the
/// engine hands `live` this view, not its slots.
#[derive(Clone)]
pub(crate) struct FieldView {
    pub(crate) path: String,
    pub(crate) source: &'static str,
    pub(crate) key: Option<String>,
    pub(crate) secret: bool,
    pub(crate) raw: Option<RawValue>,
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use futures::StreamExt;

    use super::*;
    use crate::resilience::{RetryLayer, SourceExt};
    use crate::{Change, Changes, SourceError};

    /// Counts fetches; its watch says once that everything changed.
    struct Counter(AtomicU32);

    #[async_trait::async_trait]
    impl Source for Counter {
        async fn fetch(&self, _: &FetchRequest) -> Result<RawValue, SourceError> {
            Ok(RawValue::Text(
                self.0.fetch_add(1, Ordering::SeqCst).to_string(),
            ))
        }
        fn watch(&self, requests: Vec<FetchRequest>) -> Result<Changes, SourceError> {
            assert_eq!(requests.len(), 1);
            Ok(futures::stream::iter([Ok(Change::All)]).boxed())
        }
    }

    static SPEC: FieldSpec = FieldSpec::new("C", "n", "u32", "counter").key("n");

    #[tokio::test]
    async fn a_plan_runs_again_with_the_same_slots_and_sees_new_values() {
        let sources = Sources::new().register("counter", Counter(AtomicU32::new(0)));
        let mut plan = Plan::new(&sources);
        let n = plan.add::<u32>(&SPEC, false);
        assert_eq!(plan.run().await.take(n).unwrap(), 0);
        assert_eq!(plan.run().await.take(n).unwrap(), 1);
    }

    #[tokio::test]
    async fn a_watch_passes_through_layers() {
        let source = Counter(AtomicU32::new(0)).with_layer(RetryLayer::new(1));
        let mut changes = source.watch(vec![FetchRequest::new(&SPEC)]).unwrap();
        assert_eq!(changes.next().await.unwrap().unwrap(), Change::All);
        assert!(changes.next().await.is_none());
    }
}
