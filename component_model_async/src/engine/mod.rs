//! The engine: one struct's fetch as a pipeline of stages, each a module with one job.
//!
//! | stage | module | job |
//! |---|---|---|
//! | plan | `plan` (fields: `slot`; "no source named" hints: `hints`) | what generated code builds: a slot per field with its request, routes and conversion; kept per `Sources` |
//! | resolve | `resolve` (filling a field in with the values it references: `reference`) | the order fields can be fetched in: each as soon as the fields its keys reference are converted |
//! | choose | `choose` | per round, which source each field asks, and how answers settle: its own source, then `fallback_to` for what failed |
//! | fetch | `fetch` | the round's questions, concurrently: one `fetch_many_in` per source and layer settings, each typed fetcher on its own |
//! | convert | `convert` | a result becomes the field's type (`max_size`, `Option` for absent, the `fallback` literal) |
//! | validate | `validate` | the field rules of converted values (async ones concurrently, bounded in number and time), one error per failed rule; the struct rules after assembly |
//! | assemble | `assemble` | the generated code takes each value in planning order; every error is kept |
//!
//! A run's state is one vector of per-field states (`state`); the stages hand it on. The
//! context of the fetch ([`FetchContext`]: the report being collected, a fresh read, the
//! deadline) is passed explicitly to the stages and, through
//! [`Source::fetch_many_in`](crate::Source::fetch_many_in), to the layers.
//!
//! Below the engine are the registry ([`Sources`](crate::Sources), which knows no engine),
//! the backends and layers, and the seam ([`Source`](crate::Source)); above it are the
//! generated methods' entry points (`api`) and [`Live`](crate::Live), which see the
//! engine's runs through read-only views (`view`). Adding a stage is one module and one
//! line in [`Plan::run_given`].

mod assemble;
mod choose;
mod contract;
mod convert;
mod describe;
mod fetch;
mod hints;
mod plan;
mod precedence;
mod preflight;
mod reference;
mod resolve;
mod slot;
mod state;
mod validate;
mod view;

pub use contract::{FieldInfo, Nest, Nested, NestedOps, RefCheck};
pub use plan::{Handle, Plan};
#[cfg(feature = "schema")]
pub use slot::SchemaFn;
pub use state::Outcomes;
pub(crate) use validate::DEFAULT_TIMEOUT as DEFAULT_RULE_TIMEOUT;
pub use validate::{AsyncRule, Check, StructRules, SyncRule};
pub use view::ComponentSource;
pub(crate) use view::{FieldView, Given, Watched};

use crate::source::FetchContext;

impl Plan<'_> {
    /// Fetches every field concurrently. A plan can run again (a refresh): each run asks
    /// the same sources for the same requests and returns its own outcomes.
    pub async fn run(&self) -> Outcomes<'_> {
        self.run_given(FetchContext::new(), None).await
    }

    /// [`Plan::run`] in an explicit context (a report collected, a fresh read, a deadline).
    pub(crate) async fn run_in(&self, cx: FetchContext) -> Outcomes<'_> {
        self.run_given(cx, None).await
    }

    /// The pipeline. Fields with a value in `given` are not fetched: they take it (a live
    /// update that carried the value).
    pub(crate) async fn run_given(&self, cx: FetchContext, given: Option<&Given>) -> Outcomes<'_> {
        // plan: the slots are built; a run starts from them.
        let mut out = Outcomes::start(&self.slots, &self.groups, cx, !self.checks.is_empty());
        out.validate_concurrency = self.validate_concurrency;
        if let Some(given) = given {
            for ((field, value), slot) in out.fields.iter_mut().zip(&given.0).zip(&*self.slots) {
                // Fetched again: a field that reads others (its inputs may have changed),
                // a cached one (the cache must see its new value), one whose request
                // changed (a `${VAR}` in its key).
                let Some(carried) = value else { continue };
                let same = carried.request.is_none() || carried.request == slot.request;
                // A precedence field is always asked again: which source wins may change.
                if slot.after.is_empty()
                    && slot.spec.cache_for.is_none()
                    && slot.precedence.is_none()
                    && same
                {
                    field.result = Some(Ok(slot::Got::Raw(carried.raw.clone())));
                }
            }
        }
        let timed = out.timed();
        // resolve + choose + fetch: every field at once, or each as soon as the fields
        // it references are converted.
        match self.linked {
            false => {
                let all = resolve::Wave(self.slots.len());
                resolve::ask(self.sources, &self.slots, &mut out, all, timed).await;
            }
            true => resolve::run(self.sources, &mut out, timed).await,
        }
        // convert + validate: fields with checks convert here; the rest as they are taken.
        validate::validate(&mut out, &self.checks, self.validate_concurrency).await;
        // assemble: the generated code takes the fields.
        out
    }
}

#[cfg(test)]
mod tests;
