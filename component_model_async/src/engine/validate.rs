//! The validate stage: checks of converted values, run after conversion and before
//! assembly. It may `await` (a check can ask a database or probe an address); every
//! check of every field runs concurrently, and each failed field gets one error (kind
//! `Invalid`) naming its field, source and key with every message of its checks.
//! Fields registered with [`Plan::check`](super::Plan::check) are converted here, ahead
//! of assembly, when they were fetched; a field that failed to fetch (whatever its
//! `fallback`, `Option` or `Option` group makes of that at assembly) or to convert is not
//! checked.

use std::any::Any;
use std::sync::Arc;

use futures::future::BoxFuture;

use super::slot::Got;
use super::state::Outcomes;
use crate::error::{ComponentError, ErrorKind};
use crate::report::Outcome;

/// A checked value, its type erased.
type Checked = dyn Any + Send + Sync;

/// What a check says of a value: nothing, or why it is rejected.
type Verdict<'v> = BoxFuture<'v, Result<(), String>>;

type Erased = dyn for<'v> Fn(&'v Checked) -> Verdict<'v> + Send + Sync;

/// One check of a field's converted value, its type erased.
#[derive(Clone)]
pub struct Check {
    /// An empty `Option<T>` to convert into.
    empty: fn() -> Box<Checked>,
    /// A typed fetcher's boxed `T` as the `Option<T>` the check reads.
    adopt: fn(Box<dyn Any + Send>) -> Option<Box<Checked>>,
    run: Arc<Erased>,
}

impl Check {
    pub(super) fn of<T: Send + Sync + 'static>(
        check: for<'v> fn(&'v T) -> BoxFuture<'v, Result<(), String>>,
    ) -> Self {
        Check {
            empty: || Box::new(None::<T>),
            adopt: |typed| {
                let v = typed.downcast::<T>().ok()?;
                Some(Box::new(Some(*v)))
            },
            run: Arc::new(move |any| match any.downcast_ref::<Option<T>>() {
                Some(Some(v)) => check(v),
                _ => Box::pin(std::future::ready(Ok(()))),
            }),
        }
    }
}

/// Converts every checked field and runs every check concurrently.
pub(super) async fn validate(out: &mut Outcomes<'_>, checks: &[(usize, Check)]) {
    if checks.is_empty() {
        return;
    }
    for (i, check) in checks {
        let i = *i;
        if out.converted[i].is_some() {
            continue;
        }
        // Only a fetched value: a failure is left to assembly (an `Option` group absent
        // as a whole, a `fallback` literal).
        let field = &out.fields[i];
        match &field.result {
            Some(Ok(Got::Raw(raw))) => {
                let kept = (i, raw.clone(), field.via_fallback);
                out.checked_raw.push(kept);
            }
            Some(Ok(Got::Typed(_))) => {}
            _ => continue,
        }
        let mut value = (check.empty)();
        let converted = match out.finish(i, value.as_mut()) {
            Ok(None) => Ok(value),
            Ok(Some(typed)) => (check.adopt)(typed).ok_or_else(|| out.slots[i].wrong_type()),
            Err(e) => Err(e),
        };
        out.converted[i] = Some(Box::new(converted));
    }
    let converted = &out.converted;
    let runs = checks
        .iter()
        .filter_map(|(i, check)| match converted[*i].as_deref() {
            Some(Ok(value)) => {
                let fut = (check.run)(value.as_ref());
                Some(async move { (*i, fut.await) })
            }
            _ => None,
        });
    let mut failed: Vec<(usize, Vec<String>)> = Vec::new();
    for (i, r) in futures::future::join_all(runs).await {
        if let Err(message) = r {
            match failed.iter_mut().find(|(f, _)| *f == i) {
                Some((_, messages)) => messages.push(message),
                None => failed.push((i, vec![message])),
            }
        }
    }
    for (i, messages) in failed {
        let slot = &out.slots[i];
        let e = ComponentError::field(ErrorKind::Invalid)
            .provenance(slot.provenance())
            .detail(messages.join("; "))
            .build();
        let span = out.span(i);
        span.record("outcome", ErrorKind::Invalid.as_str());
        tracing::warn!(target: "component_model_async::engine", parent: span, error = %e, "component rejected by validation");
        out.set_outcome(i, Outcome::Failed(ErrorKind::Invalid));
        out.converted[i] = Some(Box::new(Err(e)));
    }
}
