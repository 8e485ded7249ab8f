//! The fetch stage: the round's questions, asked concurrently — requests to one source
//! with the same layer settings in one batch (`fetch_many_in` through the layers the
//! fields' attributes build, which is where backends coalesce round trips), each typed
//! fetcher on its own.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use tracing::Instrument;

use super::choose::Ask;
use super::slot::{Got, Slot};
use crate::error::ErrorKind;
use std::any::Any;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use crate::error::BoxError;
use crate::fetcher::DynFetcher;
use crate::resilience::{self, Failure};
use crate::source::{FetchContext, FetchRequest, FieldSpec, Source};
use crate::sources::Sources;

/// Who asked: a field, and which of its precedence sources ([`Who::OWN`]: the field's own
/// route of the round).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) struct Who {
    /// The field's index (a `u32`: an answer stays as small as a bare index was).
    pub(super) field: u32,
    pub(super) candidate: u16,
}

impl Who {
    /// Not a precedence source: the field's own route in this round.
    pub(super) const OWN: u16 = u16::MAX;

    pub(super) fn field(field: usize) -> Self {
        Who {
            field: field as u32,
            candidate: Self::OWN,
        }
    }

    /// The field's index.
    pub(super) fn index(self) -> usize {
        self.field as usize
    }
}

/// What a round's jobs answer: who asked, answer, time taken.
pub(super) type Answers = Vec<(Who, Result<Got, Failure>, Duration)>;

/// What one job answers: a typed fetcher's one answer (no vector for it), or a batch's.
pub(super) enum Answered {
    One(Who, Result<Got, Failure>, Duration),
    Many(Answers),
}

/// A job borrows the plan it runs for: its requests and fetchers are read in place, not
/// cloned per run.
pub(super) enum Job<'p> {
    Boxed(BoxFuture<'p, Answered>),
    /// A typed fetcher's plain call (no timeout, retry, clock, metrics or span): the
    /// fetcher's own future, its answer made the field's here (no box of ours around it).
    Plain(Who, BoxFuture<'p, Result<Box<dyn Any + Send>, BoxError>>),
}

impl Future for Job<'_> {
    type Output = Answered;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Answered> {
        match self.get_mut() {
            Job::Boxed(job) => job.as_mut().poll(cx),
            Job::Plain(i, call) => call.as_mut().poll(cx).map(|r| {
                let r = r.map(Got::Typed).map_err(Failure::Fetcher);
                Answered::One(*i, r, Duration::ZERO)
            }),
        }
    }
}

/// A typed fetcher with its type erased: it makes the job of one call, one boxed future
/// that calls the fetcher and boxes its value (taken by type at assembly).
pub(super) trait TypedFetch: Send + Sync {
    fn job(&self, i: Who, spec: &'static FieldSpec, span: tracing::Span, timed: bool) -> Job<'_>;
}

/// The [`TypedFetch`] of a fetcher of `T`.
pub(super) struct Typed<T>(pub(super) Arc<dyn DynFetcher<T>>);

impl<T: Send + 'static> TypedFetch for Typed<T> {
    /// One call (with `timeout`/`retry_attempts` when the field has them).
    fn job(&self, i: Who, spec: &'static FieldSpec, span: tracing::Span, timed: bool) -> Job<'_> {
        // `timed` is set whenever metrics are on: a plain call records none.
        let plain = spec.timeout.is_none() && spec.retry_attempts.unwrap_or(0) == 0;
        if plain && !timed && span.is_disabled() {
            return Job::Plain(i, self.0.fetch_any());
        }
        let job = async move {
            let started = timed.then(Instant::now);
            let r = resilience::call(spec, || {
                let fut = self.0.fetch_dyn();
                async move {
                    fut.await
                        .map(|v| Got::Typed(Box::new(v)))
                        .map_err(Failure::Fetcher)
                }
            })
            .await;
            let elapsed = started.map_or(Duration::ZERO, |t| t.elapsed());
            crate::metrics::call(spec.source, 1, elapsed);
            if let Err(e) = &r {
                crate::metrics::error(spec.source, e.kind());
            }
            Answered::One(i, r, elapsed)
        };
        // A disabled span is not entered on every poll.
        match span.is_disabled() {
            true => Job::Boxed(Box::pin(job)),
            false => Job::Boxed(Box::pin(job.instrument(span))),
        }
    }
}

/// A source, its fields' layer settings and name, and the fields asking it together.
struct Batch<'p> {
    source: &'p Arc<dyn Source>,
    settings: resilience::Settings,
    name: &'static str,
    members: Vec<Who>,
    requests: Vec<&'p FetchRequest>,
}

/// Asks every question of `asks` concurrently; answers in no particular order.
pub(super) async fn fetch<'p>(
    sources: &Sources,
    slots: &'p [Slot],
    asks: Vec<(Who, Ask<'p>)>,
    cx: &FetchContext,
    timed: bool,
) -> Answers {
    if asks.is_empty() {
        return Vec::new();
    }
    let asked = asks.len();
    let mut batches: Vec<Batch<'p>> = Vec::new();
    let mut jobs: Vec<Job<'p>> = Vec::new();
    for (at, (i, ask)) in asks.into_iter().enumerate() {
        match ask {
            Ask::Source {
                source,
                request,
                name,
            } => {
                // Fields with `timeout`/`retry_attempts` stay in a batch with the fields
                // that have the same settings; the layers wrap the whole batch. A field's
                // settings wrap its own source, not its other precedence sources.
                let settings = resilience::Settings::of(spec_of(slots, i));
                // One source under two names (`api`, `http`) is one batch; named as its
                // first member names it.
                match batches
                    .iter_mut()
                    .find(|b| Arc::ptr_eq(b.source, source) && b.settings == settings)
                {
                    Some(b) => {
                        b.members.push(i);
                        b.requests.push(request);
                    }
                    None => {
                        // Room for every request left: most runs make one batch.
                        let room = asked - at;
                        let mut members = Vec::with_capacity(room);
                        let mut requests = Vec::with_capacity(room);
                        members.push(i);
                        requests.push(request);
                        batches.push(Batch {
                            source,
                            settings,
                            name,
                            members,
                            requests,
                        })
                    }
                }
            }
            Ask::Typed(call, span) => jobs.push(call.job(i, slots[i.index()].spec, span, timed)),
        }
    }
    for b in batches {
        let layered = sources
            .layers()
            .layered(b.source, spec_of(slots, b.members[0]));
        let cx = cx.for_source(b.name);
        jobs.push(batch_job(layered, b, cx, timed));
    }
    let mut answers = Vec::new();
    let mut add = |answered| match answered {
        Answered::One(i, r, elapsed) => {
            answers.reserve(asked);
            answers.push((i, r, elapsed))
        }
        Answered::Many(many) if answers.is_empty() => answers = many,
        Answered::Many(many) => answers.extend(many),
    };
    match jobs.len() {
        1 => add(jobs.pop().expect("one job").await),
        _ => futures::future::join_all(jobs)
            .await
            .into_iter()
            .for_each(add),
    }
    answers
}

/// A spec without layer settings: what a precedence source other than the field's own
/// is asked with.
static PLAIN: FieldSpec = FieldSpec::new("", "", "", "");

/// The spec whose layer settings wrap `who`'s request: the field's, for its own source.
fn spec_of(slots: &[Slot], who: Who) -> &'static FieldSpec {
    let slot = &slots[who.index()];
    match &slot.precedence {
        Some(p) if who.candidate != Who::OWN && p.own != Some(usize::from(who.candidate)) => &PLAIN,
        _ => slot.spec,
    }
}

/// One `fetch_many_in` of a batch; each member gets its answer.
fn batch_job<'p>(
    source: Arc<dyn Source>,
    batch: Batch<'p>,
    cx: FetchContext,
    timed: bool,
) -> Job<'p> {
    let name = batch.name;
    let span = tracing::debug_span!(target: "component_model_async::engine", "component_batch", source = name, size = batch.members.len());
    let job = async move {
        let started = timed.then(Instant::now);
        let answers = crate::metrics::scope(name, source.fetch_many_in(&cx, &batch.requests)).await;
        let elapsed = started.map_or(Duration::ZERO, |t| t.elapsed());
        crate::metrics::call(name, batch.members.len(), elapsed);
        let mut answers = answers.into_iter();
        let answers = batch
            .members
            .into_iter()
            .map(|i| {
                let r = answers.next().unwrap_or_else(|| {
                    Err(crate::SourceError::new(ErrorKind::Unavailable)
                        .with_message("the source returned fewer answers than requests"))
                });
                // A precedence source without the value is no error: the next one is asked.
                if let Err(e) = &r
                    && (i.candidate == Who::OWN || e.kind() != ErrorKind::NotFound)
                {
                    crate::metrics::error(name, e.kind());
                }
                (i, r.map(Got::Raw).map_err(Failure::Source), elapsed)
            })
            .collect();
        Answered::Many(answers)
    };
    // A disabled span is not entered on every poll.
    match span.is_disabled() {
        true => Job::Boxed(Box::pin(job)),
        false => Job::Boxed(Box::pin(job.instrument(span))),
    }
}
