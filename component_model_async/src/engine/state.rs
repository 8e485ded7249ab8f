//! A run's state: one [`FieldState`] per field, in one vector, handed from stage to stage
//! and finally to the generated code as [`Outcomes`].

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
    /// Time spent fetching it (both rounds).
    pub(super) elapsed: Duration,
    /// The `fallback_to` source answered (its value converts as that source says).
    pub(super) via_fallback: bool,
    /// The value converted ahead of assembly (an `Option<T>`, boxed) for the validate
    /// stage, or why it could not be (boxed: rare, and the state stays small).
    pub(super) converted: Option<Box<Converted>>,
    /// How the field got its value, once converted.
    pub(super) outcome: Option<Outcome>,
    /// Why the field took its `fallback` literal after its source failed (not merely had
    /// nothing): a live refresh keeps the current value instead.
    pub(super) degraded: Option<Box<str>>,
}

/// A field converted ahead of assembly, or why it could not be.
pub(super) type Converted = Result<Box<dyn Any + Send + Sync>, ComponentError>;

/// A span that records nothing, for fields whose span no subscriber wants.
static NO_SPAN: tracing::Span = tracing::Span::none();

/// The results of one run of a [`Plan`](super::Plan), taken field by field by the
/// generated code (the assemble stage).
pub struct Outcomes<'p> {
    pub(super) slots: &'p [Slot],
    pub(super) groups: &'p [Group],
    pub(super) fields: Vec<FieldState>,
    /// Each field's span, when a subscriber wants any (else empty: nothing allocated).
    pub(super) spans: Vec<tracing::Span>,
    /// The context the run was made in (its report notes).
    pub(super) cx: FetchContext,
    /// The next slot and `Option` group to take, when taken in planning order.
    pub(super) next: usize,
    pub(super) next_group: usize,
    /// The errors of the fields taken in planning order.
    pub(super) errors: Vec<ComponentError>,
}

impl<'p> Outcomes<'p> {
    /// The state of a run of `slots` that has fetched nothing yet.
    pub(super) fn start(slots: &'p [Slot], groups: &'p [Group], cx: FetchContext) -> Self {
        let spans: Vec<tracing::Span> = match slots.first().map(Slot::span) {
            Some(first) if !first.is_disabled() => std::iter::once(first)
                .chain(slots[1..].iter().map(Slot::span))
                .collect(),
            // Spans are enabled or not by their callsite, the same for every field.
            _ => Vec::new(),
        };
        Outcomes {
            slots,
            groups,
            fields: slots
                .iter()
                .map(|_| FieldState {
                    result: None,
                    elapsed: Duration::ZERO,
                    via_fallback: false,
                    converted: None,
                    outcome: None,
                    degraded: None,
                })
                .collect(),
            spans,
            cx,
            next: 0,
            next_group: 0,
            errors: Vec::new(),
        }
    }

    /// Field `i`'s span (one that records nothing when no subscriber wants spans).
    pub(super) fn span(&self, i: usize) -> &tracing::Span {
        self.spans.get(i).unwrap_or(&NO_SPAN)
    }
}
