//! The engine behind `fetch_all_components`: every field of one struct becomes a slot;
//! plain requests are handed to their source together (one `fetch_many` per source, which is
//! where backends coalesce round trips), fields with resilience layers and typed fetchers run
//! on their own, all concurrently; then `fallback_to` sources are asked for what failed.
//! Conversion into field types happens when the generated code takes each result.

use std::any::{Any, TypeId};
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use serde::de::DeserializeOwned;
use tracing::Instrument;

use crate::convert::{self, Target};
use crate::error::{BoxError, ComponentError, ErrorKind, Provenance};
use crate::fetcher::{DynFetcher, IntoFetcher};
use crate::resilience::{self, Failure};
use crate::source::{FetchRequest, FieldSpec, RawValue, Source};
use crate::sources::{Entry, Sources};

/// What one concurrent job reports: slot index, result, time taken.
type JobResults = Vec<(usize, Result<Got, Failure>, Duration)>;
type Job = BoxFuture<'static, JobResults>;

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

struct Slot {
    spec: &'static FieldSpec,
    /// The source answering, for the location in error messages.
    source: Option<Arc<dyn Source>>,
    sensitive: bool,
    request: Option<FetchRequest>,
    primary: Option<Route>,
    fallback: Option<Route>,
    /// The request as the `fallback_to` source reads it (its own wire form).
    fallback_request: Option<FetchRequest>,
}

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

/// One struct's fetch, being planned. Built by generated code; see the crate docs.
pub struct Plan<'s> {
    sources: &'s Sources,
    slots: Vec<Slot>,
    /// The last source looked up by name: fields of one struct mostly share a few sources.
    last: Option<(&'static str, Arc<dyn Source>)>,
}

/// Where a field's value was supposed to come from; built only for error messages.
fn provenance_of(
    spec: &'static FieldSpec,
    request: Option<&FetchRequest>,
    source: Option<&dyn Source>,
) -> Provenance {
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
        owner: Some(spec.owner.into()),
        field: Some(spec.field.into()),
        source: Some(spec.source.into()),
        key_label: label.into(),
        bound_key: (label == "query")
            .then(|| request.bound_key().map(str::to_owned))
            .flatten(),
        key,
        location: source.and_then(Source::location),
    }
}

/// The key shown in a field's span, formatted only if a subscriber records it; URLs
/// lose their password.
struct SpanKey(&'static FieldSpec);

impl std::fmt::Display for SpanKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = self.0;
        match (s.key.or(s.secret_path).or(s.path).or(s.table), s.url) {
            (Some(k), _) => f.write_str(k),
            (None, Some(url)) => f.write_str(&crate::source::redact_url(url)),
            (None, None) => f.write_str(s.default_key.unwrap_or_default()),
        }
    }
}

impl Slot {
    fn provenance(&self) -> Provenance {
        provenance_of(self.spec, self.request.as_ref(), self.source.as_deref())
    }

    /// This run's span of the field: recorded with its outcome and time.
    fn span(&self) -> tracing::Span {
        let spec = self.spec;
        tracing::debug_span!(
            "component_fetch",
            owner = spec.owner,
            field = spec.field,
            source = spec.source,
            key = %SpanKey(spec),
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
        self.target_of(provenance, self.source.as_ref())
    }

    /// How a value that `source` answered converts.
    fn target_of<'a>(
        &'a self,
        provenance: &'a dyn Fn() -> Provenance,
        source: Option<&Arc<dyn Source>>,
    ) -> Target<'a> {
        let mut target = Target::new(self.spec, provenance, self.sensitive);
        if let Some(source) = source {
            if source.selects_field() {
                target.select = None;
            }
            target.unwrap_single = source.unwraps_single_member();
        }
        target
    }
}

/// The results of one run of a [`Plan`], taken field by field.
pub struct Outcomes<'p> {
    slots: &'p [Slot],
    spans: Vec<tracing::Span>,
    results: Vec<Option<(Result<Got, ComponentError>, Duration)>>,
    /// Which fields the `fallback_to` source answered (converted as that source says).
    via_fallback: Vec<bool>,
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
            slots: Vec::with_capacity(fields),
            last: None,
        }
    }

    fn slot(&self, spec: &'static FieldSpec, sensitive: bool) -> Slot {
        let lookup = |name: &str| self.sources.env().get(name);
        let (request, failure) = match FetchRequest::resolved(spec, &lookup) {
            Ok(r) => (Some(r), None),
            Err(e) => (None, Some(Route::Fail(e.to_string().into()))),
        };
        Slot {
            spec,
            source: None,
            sensitive,
            request,
            primary: failure,
            fallback: None,
            fallback_request: None,
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
        let sensitive = spec.sensitive || secret_type;
        let mut slot = self.slot(spec, sensitive);
        if slot.primary.is_none() {
            let primary = self.route::<T>(spec.source, spec);
            if let Route::Raw(s) = &primary {
                // Secrecy and value handling follow the source, not its name.
                slot.sensitive |= s.is_sensitive();
                slot.request = slot.request.take().map(|r| for_source(r, s.as_ref()));
                slot.source = Some(s.clone());
            }
            slot.primary = Some(primary);
            slot.fallback = spec.fallback_to.map(|name| self.route::<T>(name, spec));
            // A value that may come from a secret source is secret; the fallback source
            // gets the request in its own wire form.
            if let Some(Route::Raw(fb)) = &slot.fallback {
                slot.sensitive |= fb.is_sensitive();
                let lookup = |name: &str| self.sources.env().get(name);
                slot.fallback_request = FetchRequest::resolved(spec, &lookup)
                    .ok()
                    .map(|r| for_source(r, fb.as_ref()));
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
        let sensitive = spec.sensitive || secret_type;
        let mut slot = self.slot(spec, sensitive);
        if slot.primary.is_none() {
            let erased: Arc<dyn DynFetcher<T>> = Arc::new(fetcher.into_fetcher());
            slot.primary = Some(Route::Typed(typed_call(erased)));
            slot.fallback = spec.fallback_to.map(|name| self.route::<T>(name, spec));
        }
        self.push(slot)
    }

    fn push<T>(&mut self, slot: Slot) -> Handle<T> {
        self.slots.push(slot);
        Handle {
            index: self.slots.len() - 1,
            _type: PhantomData,
        }
    }

    /// Fetches every slot concurrently. A plan can run again (a refresh): each run asks
    /// the same sources for the same requests and returns its own outcomes.
    pub async fn run(&self) -> Outcomes<'_> {
        let spans: Vec<tracing::Span> = self.slots.iter().map(Slot::span).collect();
        let mut results: Vec<Option<(Result<Got, ComponentError>, Duration)>> =
            (0..self.slots.len()).map(|_| None).collect();
        let jobs = self.primary_jobs(&spans, &mut results);
        for (i, r, elapsed) in futures::future::join_all(jobs).await.into_iter().flatten() {
            let r = r.map_err(|f| to_component_error(f, &self.slots[i]));
            results[i] = Some((r, elapsed));
        }
        let via_fallback = self.fallback_round(&spans, &mut results).await;
        Outcomes {
            slots: &self.slots,
            spans,
            results,
            via_fallback,
        }
    }

    /// Jobs of the first round: one per batch (a source and its fields' layer settings),
    /// one per typed fetcher; planning errors go straight into `results`.
    fn primary_jobs(
        &self,
        spans: &[tracing::Span],
        results: &mut [Option<(Result<Got, ComponentError>, Duration)>],
    ) -> Vec<Job> {
        // Fields with `timeout`/`retry_attempts` stay in a batch with the fields that have
        // the same settings; the layers wrap the whole batch.
        let mut batches: Vec<Batch<'_>> = Vec::new();
        let mut jobs: Vec<Job> = Vec::new();
        for (i, slot) in self.slots.iter().enumerate() {
            match &slot.primary {
                Some(Route::Fail(detail)) => {
                    results[i] = Some((Err(slot.config_error(detail)), Duration::ZERO))
                }
                Some(Route::Raw(src)) => join_batch(&mut batches, src, slot.spec, i),
                Some(Route::Typed(call)) => {
                    jobs.push(single_typed(i, call.clone(), slot.spec, spans[i].clone()))
                }
                None => {}
            }
        }
        for (src, _, members) in batches {
            let src = resilience::for_field(src.clone(), self.slots[members[0]].spec);
            jobs.push(self.batch_job(src, members, false));
        }
        jobs
    }

    /// One `fetch_many` of a batch; each member gets its answer.
    fn batch_job(&self, src: Arc<dyn Source>, members: Vec<usize>, fallback: bool) -> Job {
        let requests: Vec<FetchRequest> = members
            .iter()
            .filter_map(|&i| {
                let slot = &self.slots[i];
                match fallback {
                    true => slot.fallback_request.clone(),
                    false => slot.request.clone(),
                }
            })
            .collect();
        let span = tracing::debug_span!(
            "component_batch",
            source = members.first().map_or("", |&i| self.slots[i].spec.source),
            size = members.len()
        );
        Box::pin(
            async move {
                let started = Instant::now();
                let refs: Vec<&FetchRequest> = requests.iter().collect();
                let answers = src.fetch_many(&refs).await;
                let elapsed = started.elapsed();
                let mut answers = answers.into_iter();
                members
                    .into_iter()
                    .map(|i| {
                        let r = answers.next().unwrap_or_else(|| {
                            Err(crate::SourceError::new(ErrorKind::Unavailable)
                                .with_message("the source returned fewer answers than requests"))
                        });
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
                Some(Route::Raw(src)) if slot.fallback_request.is_some() => {
                    join_batch(&mut batches, src, slot.spec, i)
                }
                Some(Route::Typed(call)) => {
                    jobs.push(single_typed(i, call.clone(), slot.spec, spans[i].clone()))
                }
                Some(Route::Fail(detail)) => {
                    append(&mut results[i], slot.spec, &slot.config_error(detail))
                }
                _ => {}
            }
        }
        for (src, _, members) in batches {
            let src = resilience::for_field(src.clone(), self.slots[members[0]].spec);
            jobs.push(self.batch_job(src, members, true));
        }
        if jobs.is_empty() {
            return answered;
        }
        for (i, r, elapsed) in futures::future::join_all(jobs).await.into_iter().flatten() {
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
                format!("did you mean `{c}`? ({register})")
            }
            (_, Some(b)) => format!("{register} ({})", b.hint),
            (_, None) => register,
        }
    }
}

/// A source, its fields' layer settings, and the slots fetched from it together.
type Batch<'a> = (&'a Arc<dyn Source>, (Option<Duration>, u32), Vec<usize>);

/// Puts slot `i` into the batch of `src` with the same layer settings, or a new one.
fn join_batch<'a>(
    batches: &mut Vec<Batch<'a>>,
    src: &'a Arc<dyn Source>,
    spec: &FieldSpec,
    i: usize,
) {
    let settings = resilience::settings_of(spec);
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

fn single_typed(i: usize, call: TypedCall, spec: &'static FieldSpec, span: tracing::Span) -> Job {
    Box::pin(
        async move {
            let started = Instant::now();
            let r = resilience::call(spec, || {
                let fut = call();
                async move { fut.await.map_err(Failure::Fetcher) }
            })
            .await;
            vec![(i, r.map(Got::Typed), started.elapsed())]
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
    fn finish<T>(
        &mut self,
        index: usize,
        convert_raw: impl FnOnce(RawValue, &Target<'_>) -> Result<T, ComponentError>,
        absent: impl FnOnce() -> Option<T>,
        fallback: impl FnOnce(&'static str, &Target<'_>) -> Option<Result<T, ComponentError>>,
    ) -> Result<T, ComponentError>
    where
        T: 'static,
    {
        let slot = &self.slots[index];
        let provenance = || slot.provenance();
        let fallback_source = match (&slot.fallback, self.via_fallback[index]) {
            (Some(Route::Raw(fb)), true) => Some(fb),
            _ => None,
        };
        let target = match fallback_source {
            Some(fb) => slot.target_of(&provenance, Some(fb)),
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
        let converted = match result {
            Ok(Got::Raw(raw)) => match too_large(&raw, &target) {
                Some(e) => Err(e),
                None => convert_raw(raw, &target),
            },
            Ok(Got::Typed(any)) => match any.downcast::<T>() {
                Ok(v) => Ok(*v),
                Err(_) => Err(convert::error(
                    ErrorKind::Config,
                    &target,
                    format!(
                        "the fetcher produced another type than `{}`",
                        slot.spec.type_name
                    ),
                )),
            },
            Err(e) => Err(e),
        };
        let result = match converted {
            Ok(v) => Ok(v),
            Err(e) if e.kind() == ErrorKind::NotFound => match absent() {
                Some(v) => {
                    outcome = "absent";
                    Ok(v)
                }
                None => use_fallback(e, &target, fallback, &mut outcome),
            },
            Err(e) if fallbackable(e.kind()) => use_fallback(e, &target, fallback, &mut outcome),
            Err(e) => Err(e),
        };
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

    /// The converted value of a `fetch_from` field (absent `Option` = `None`, `fallback`
    /// applied when the value is absent or the source failed).
    pub fn take<T: DeserializeOwned + 'static>(
        &mut self,
        handle: Handle<T>,
    ) -> Result<T, ComponentError> {
        self.finish(
            handle.index,
            |raw, t| convert::decode::<T>(raw, t),
            convert::absent::<T>,
            |text, t| Some(convert::decode_text::<T>(text.to_owned(), t)),
        )
    }

    /// The value of a `fetcher` field whose type need not implement `Deserialize`.
    pub fn take_typed<T: 'static>(&mut self, handle: Handle<T>) -> Result<T, ComponentError> {
        self.finish(
            handle.index,
            |_raw, t| {
                Err(convert::error(
                    ErrorKind::Config,
                    t,
                    format!("`{}` does not implement `serde::Deserialize`; only a fetcher of that type can serve it", t.spec.type_name),
                ))
            },
            || None,
            |_, _| None,
        )
    }

    /// The field's `fallback` literal converted, for degraded fetches.
    pub fn fallback_value<T: DeserializeOwned + 'static>(&self, handle: &Handle<T>) -> Option<T> {
        let slot = &self.slots[handle.index];
        let text = slot.spec.fallback?;
        let provenance = || slot.provenance();
        let target = slot.target(&provenance);
        convert::decode_text::<T>(text.to_owned(), &target).ok()
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
