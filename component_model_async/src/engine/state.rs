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
    /// This run's span of the field (disabled unless a subscriber wants it).
    pub(super) span: tracing::Span,
    /// The value converted ahead of assembly (an `Option<T>`, boxed) for the validate
    /// stage, or why it could not be.
    pub(super) converted: Option<Result<Box<dyn Any + Send + Sync>, ComponentError>>,
    /// How the field got its value, once converted.
    pub(super) outcome: Option<Outcome>,
    /// Why the field took its `fallback` literal after its source failed (not merely had
    /// nothing): a live refresh keeps the current value instead.
    pub(super) degraded: Option<String>,
}

/// The results of one run of a [`Plan`](super::Plan), taken field by field by the
/// generated code (the assemble stage).
pub struct Outcomes<'p> {
    pub(super) slots: &'p [Slot],
    pub(super) groups: &'p [Group],
    pub(super) fields: Vec<FieldState>,
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
        Outcomes {
            slots,
            groups,
            fields: slots
                .iter()
                .map(|slot| FieldState {
                    result: None,
                    elapsed: Duration::ZERO,
                    via_fallback: false,
                    span: slot.span(),
                    converted: None,
                    outcome: None,
                    degraded: None,
                })
                .collect(),
            cx,
            next: 0,
            next_group: 0,
            errors: Vec::new(),
        }
    }
}
