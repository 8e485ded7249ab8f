//! A run's state: one small [`FieldState`] per field, in one vector, handed from stage to
//! stage and finally to the generated code as [`Outcomes`]. What only some runs need (spans,
//! times, a report's outcomes, values converted for checks) is kept beside it, allocated
//! only by the runs that need it.

use std::any::Any;
use std::time::Duration;

use super::plan::Group;
use super::slot::{Got, Slot};
use crate::error::ComponentError;
use crate::report::Outcome;
use crate::source::FetchContext;

/// One field during a run.
pub(super) struct FieldState {
    /// What the fetch stage got (after `choose` settled the rounds), until taken.
    pub(super) result: Option<Result<Got, ComponentError>>,
    /// The `fallback_to` source answered (its value converts as that source says).
    pub(super) via_fallback: bool,
    /// Converted ahead of assembly (a field others reference, or one that references
    /// others): `result` holds the value in its type (`Got::Typed`) or the error, and its
    /// outcome is recorded.
    pub(super) finished: bool,
    /// Its source had no value before it was converted ahead of assembly (an `Option`
    /// group whose fields all had none is absent as a whole).
    pub(super) absent: bool,
}

/// What a run of some fields hands the plan's run of one field (see
/// [`Outcomes::take_field`]).
pub(super) struct Taken {
    state: FieldState,
    elapsed: Duration,
    outcome: Option<Outcome>,
    tried: Option<Box<super::precedence::Tried>>,
    degraded: Option<Box<str>>,
    /// The raw value it converted ahead of assembly, and whether `fallback_to` answered.
    raw: Option<(crate::source::RawValue, bool)>,
}

/// A field converted ahead of assembly (an `Option<T>`, boxed) for the validate stage, or
/// why it could not be.
pub(super) type Converted = Result<Box<dyn Any + Send + Sync>, ComponentError>;

/// A span that records nothing, for fields whose span no subscriber wants.
static NO_SPAN: tracing::Span = tracing::Span::none();

/// The results of one run of a [`Plan`](super::Plan), taken field by field by the
/// generated code (the assemble stage).
pub struct Outcomes<'p> {
    pub(super) slots: &'p [Slot],
    pub(super) groups: &'p [Group],
    pub(super) fields: Vec<FieldState>,
    /// Each field's span, when a subscriber wants any (else empty).
    spans: Vec<tracing::Span>,
    /// Time spent fetching each field (both rounds), when anything can show it (a
    /// report, metrics, a span, a warning; else empty: a clock read costs more than a
    /// fetcher answering from memory).
    elapsed: Vec<Duration>,
    /// How each field got its value, when a report is collected (else empty).
    outcomes: Vec<Option<Outcome>>,
    /// Fields converted ahead of assembly, when the plan has checks (else empty).
    pub(super) converted: Vec<Option<Box<Converted>>>,
    /// The raw values of fields the validate stage converted (their result is taken), for
    /// `Live`'s diff and next run: field, value, whether `fallback_to` answered.
    pub(super) checked_raw: Vec<(usize, crate::source::RawValue, bool)>,
    /// Each precedence field's answers from its sources, when the plan has one (else
    /// empty).
    pub(super) tried: Vec<Option<Box<super::precedence::Tried>>>,
    /// Fields that took their `fallback` literal after their source failed (not merely
    /// had nothing), with why: a live refresh keeps the current value instead.
    pub(super) degraded: Vec<(usize, Box<str>)>,
    /// The slots of the fields that reference others, as this run filled them in (their
    /// keys with the values referenced, the client `connect` opened), when the plan has
    /// references (else empty).
    pub(super) resolved: Vec<Option<Box<Slot>>>,
    /// The context the run was made in (its report notes).
    pub(super) cx: FetchContext,
    /// The next slot and `Option` group to take, when taken in planning order.
    pub(super) next: usize,
    pub(super) next_group: usize,
    /// The errors of the fields taken in planning order.
    pub(super) errors: Vec<ComponentError>,
    /// How many async rules run at once (the plan's `validate_concurrency`).
    pub(super) validate_concurrency: usize,
}

impl<'p> Outcomes<'p> {
    /// The state of a run of `slots` that has fetched nothing yet; `checks`: whether the
    /// validate stage converts some fields ahead of assembly.
    pub(super) fn start(
        slots: &'p [Slot],
        groups: &'p [Group],
        cx: FetchContext,
        checks: bool,
    ) -> Self {
        let spans: Vec<tracing::Span> = match slots.first().map(Slot::span) {
            Some(first) if !first.is_disabled() => std::iter::once(first)
                .chain(slots[1..].iter().map(Slot::span))
                .collect(),
            // Spans are enabled or not by their callsite, the same for every field.
            _ => Vec::new(),
        };
        Self::start_with(slots, groups, cx, checks, spans)
    }

    /// A run of `slots` (some fields of a plan's run, filled in) recording into `spans`,
    /// the spans of those fields in the plan's run.
    pub(super) fn start_part(
        slots: &'p [Slot],
        cx: FetchContext,
        spans: Vec<tracing::Span>,
    ) -> Self {
        Self::start_with(slots, &[], cx, false, spans)
    }

    fn start_with(
        slots: &'p [Slot],
        groups: &'p [Group],
        cx: FetchContext,
        checks: bool,
        spans: Vec<tracing::Span>,
    ) -> Self {
        let n = slots.len();
        let report = cx.notes().is_some();
        let timed = report
            || crate::metrics::ENABLED
            || !spans.is_empty()
            || tracing::enabled!(target: "component_model_async::engine", tracing::Level::WARN);
        Outcomes {
            slots,
            groups,
            fields: (0..n)
                .map(|_| FieldState {
                    result: None,
                    via_fallback: false,
                    finished: false,
                    absent: false,
                })
                .collect(),
            spans,
            elapsed: match timed {
                true => vec![Duration::ZERO; n],
                false => Vec::new(),
            },
            outcomes: match report {
                true => vec![None; n],
                false => Vec::new(),
            },
            converted: match checks {
                true => (0..n).map(|_| None).collect(),
                false => Vec::new(),
            },
            degraded: Vec::new(),
            tried: match slots.iter().any(|s| s.precedence.is_some()) {
                true => (0..n).map(|_| None).collect(),
                false => Vec::new(),
            },
            checked_raw: Vec::new(),
            resolved: Vec::new(),
            cx,
            next: 0,
            next_group: 0,
            errors: Vec::new(),
            validate_concurrency: super::validate::DEFAULT_CONCURRENCY,
        }
    }

    /// Field `i` as this run asked it: filled in when it references other fields.
    pub(super) fn slot(&self, i: usize) -> &Slot {
        match self.resolved.get(i) {
            Some(Some(slot)) => slot,
            _ => &self.slots[i],
        }
    }

    /// The spans of fields `indices` (empty when no subscriber wants spans).
    pub(super) fn spans_of(&self, indices: &[usize]) -> Vec<tracing::Span> {
        match self.spans.is_empty() {
            true => Vec::new(),
            false => indices.iter().map(|&i| self.spans[i].clone()).collect(),
        }
    }

    /// Field `i`'s state, elapsed time, outcome and precedence answers, taken out of
    /// this run (a run of some fields of a plan's run) to go into the plan's run.
    pub(super) fn take_field(&mut self, i: usize) -> Taken {
        Taken {
            state: std::mem::replace(
                &mut self.fields[i],
                FieldState {
                    result: None,
                    via_fallback: false,
                    finished: false,
                    absent: false,
                },
            ),
            elapsed: self.elapsed(i),
            outcome: self.outcomes.get_mut(i).and_then(Option::take),
            tried: self.tried.get_mut(i).and_then(Option::take),
            degraded: self
                .degraded
                .iter()
                .position(|(d, _)| *d == i)
                .map(|at| self.degraded.swap_remove(at).1),
            raw: self
                .checked_raw
                .iter()
                .position(|(d, _, _)| *d == i)
                .map(|at| {
                    let (_, raw, via) = self.checked_raw.swap_remove(at);
                    (raw, via)
                }),
        }
    }

    /// Puts what [`Outcomes::take_field`] took from another run into field `i`.
    pub(super) fn put_field(&mut self, i: usize, taken: Taken) {
        self.fields[i] = taken.state;
        if let Some(e) = self.elapsed.get_mut(i) {
            *e = taken.elapsed;
        }
        if let Some(o) = self.outcomes.get_mut(i) {
            *o = taken.outcome;
        }
        if let Some(t) = self.tried.get_mut(i) {
            *t = taken.tried;
        }
        if let Some(why) = taken.degraded {
            self.degraded.push((i, why));
        }
        if let Some((raw, via)) = taken.raw {
            self.checked_raw.push((i, raw, via));
        }
    }

    /// Field `i`'s span (one that records nothing when no subscriber wants spans).
    pub(super) fn span(&self, i: usize) -> &tracing::Span {
        self.spans.get(i).unwrap_or(&NO_SPAN)
    }

    /// Whether the run times its fields.
    pub(super) fn timed(&self) -> bool {
        !self.elapsed.is_empty()
    }

    /// Time spent fetching field `i` (zero when the run is not timed).
    pub(super) fn elapsed(&self, i: usize) -> Duration {
        self.elapsed.get(i).copied().unwrap_or_default()
    }

    /// Adds `d` to the time spent fetching field `i`.
    pub(super) fn add_elapsed(&mut self, i: usize, d: Duration) {
        if let Some(e) = self.elapsed.get_mut(i) {
            *e += d;
        }
    }

    /// The time spent fetching field `i`, to set (when the run is timed).
    pub(super) fn elapsed_mut(&mut self, i: usize) -> Option<&mut Duration> {
        self.elapsed.get_mut(i)
    }

    /// Records how field `i` got its value (kept when a report is collected).
    pub(super) fn set_outcome(&mut self, i: usize, outcome: Outcome) {
        if let Some(o) = self.outcomes.get_mut(i) {
            *o = Some(outcome);
        }
    }

    /// Whether the run keeps how each field got its value (a report is collected).
    pub(super) fn keeps_outcomes(&self) -> bool {
        !self.outcomes.is_empty()
    }

    /// How field `i` got its value, if taken and a report is collected.
    pub(super) fn outcome(&self, i: usize) -> Option<Outcome> {
        self.outcomes.get(i).cloned().flatten()
    }

    /// Field `i`'s answers from its precedence sources, in this run.
    pub(super) fn tried(&self, i: usize) -> Option<&super::precedence::Tried> {
        self.tried.get(i).and_then(Option::as_deref)
    }

    /// Takes field `i`'s value converted ahead of assembly, if any.
    pub(super) fn take_converted(&mut self, i: usize) -> Option<Box<Converted>> {
        self.converted.get_mut(i).and_then(Option::take)
    }
}
