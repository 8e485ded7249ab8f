//! The convert stage: a field's result becomes its type — a raw value decoded (within
//! `max_size`), a typed fetcher's value taken as is, "not found" made `None` for an
//! `Option`, a failure mended by the `fallback` literal — and the outcome is recorded in
//! the field's span. It runs when a value is needed: ahead of assembly for a field the
//! validate stage checks, else as the generated code takes the field (decoding straight
//! into the field's `Option<T>`: no box per field).

use std::any::Any;
use std::time::Duration;

use super::slot::{Got, Out, Route, fallbackable};
use super::state::Outcomes;
use crate::convert::{self, Target};
use crate::error::{ComponentError, ErrorKind};
use crate::report::Outcome;
use crate::source::{FetchRequest, RawValue};

/// A typed fetcher's answer, boxed by its call, or nothing when the value was written to
/// the [`Out`].
pub(super) type Value = Option<Box<dyn Any + Send>>;

impl<'p> Outcomes<'p> {
    /// The field's value: converted, or absent, or its `fallback`; recorded in its span.
    pub(super) fn finish(&mut self, index: usize, out: Out<'_>) -> Result<Value, ComponentError> {
        if self.fields[index].finished {
            // Converted ahead of assembly: the value in its type, or why not.
            return match self.fields[index].result.take() {
                Some(Ok(Got::Typed(value))) => Ok(Some(value)),
                Some(Err(e)) => Err(e),
                _ => Err(ComponentError::field(ErrorKind::Config)
                    .provenance(self.slot(index).provenance())
                    .detail("this field's result was already taken")
                    .build()),
            };
        }
        let slot = &self.slots[index];
        let elapsed = self.elapsed(index);
        // A precedence source that won (not the field's own): its value converts as that
        // source says, without the field's own `field`/`pointer`.
        let winner = self.winner(index);
        let field = &mut self.fields[index];
        let provenance = || slot.provenance();
        let winner_provenance = || match winner {
            Some(cand) => super::precedence::provenance(slot, cand),
            None => slot.provenance(),
        };
        let fallback_source = match (&slot.fallback, field.via_fallback) {
            (Some(Route::Raw(fb)), true) => Some(fb),
            _ => None,
        };
        let target = match (fallback_source, winner) {
            (Some(fb), _) => slot.target_of(&provenance, Some(fb), slot.fallback_request.as_ref()),
            (None, Some(cand)) => {
                let source = match &cand.route {
                    Route::Raw(s) => Some(s),
                    _ => None,
                };
                let mut t = slot.target_of(&winner_provenance, source, cand.request.as_ref());
                t.select = None;
                t.pointer = None;
                t
            }
            (None, None) => slot.target(&provenance),
        };
        let result = field.result.take().unwrap_or_else(|| {
            Err(ComponentError::field(ErrorKind::Config)
                .provenance(slot.provenance())
                .detail("this field's result was already taken")
                .build())
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
            // A source below the one that failed had a value: the `fallback` literal
            // does not stand in for it.
            Err(e)
                if fallbackable(e.kind()) && self.tried(index).is_some_and(|t| t.no_fallback) =>
            {
                Err(e.with_note(
                    "a source below it had a value, so the `fallback` literal is not used"
                        .to_owned(),
                ))
            }
            Err(e) if fallbackable(e.kind()) => {
                let why = e.to_string();
                let r = use_fallback(e, &target, |t, tg| fallback(t, tg, out), &mut outcome);
                if outcome == "fallback" {
                    self.degraded.push((index, why.into()));
                }
                r
            }
            Err(e) => Err(e),
        };
        if self.keeps_outcomes() {
            let how = match (&result, outcome) {
                (Err(e), _) => Outcome::Failed(e.kind()),
                (Ok(_), "absent") => Outcome::Absent,
                (Ok(_), "fallback") => Outcome::Fallback,
                (Ok(_), _) if fetched => self.fetched_outcome(index),
                (Ok(_), _) => Outcome::Fetched,
            };
            self.set_outcome(index, how);
        }
        record(self.span(index), &result, outcome, elapsed);
        result
    }

    /// Converts field `index` now, ahead of assembly (a field others reference, or one
    /// filled in with the values it references): its value in its type, or why not,
    /// stays in its result for assembly; its outcome is recorded now.
    pub(super) fn finish_early(&mut self, index: usize) {
        if self.fields[index].finished || self.fields[index].result.is_none() {
            return;
        }
        let absent = matches!(
            &self.fields[index].result,
            Some(Err(e)) if e.kind() == ErrorKind::NotFound
        );
        // The raw value stays readable (a live update's diff, the next run's given).
        if let Some(Ok(Got::Raw(raw))) = &self.fields[index].result {
            let kept = (index, raw.clone(), self.fields[index].via_fallback);
            self.checked_raw.push(kept);
        }
        let slot = &self.slots[index];
        let result = match slot.decoders {
            Some(d) => {
                let mut out = (d.boxed)();
                match self.finish(index, out.as_mut()) {
                    Ok(None) => (d.unbox)(out).ok_or_else(|| self.slots[index].wrong_type()),
                    Ok(Some(value)) => Ok(value),
                    Err(e) => Err(e),
                }
            }
            None => match self.finish(index, &mut ()) {
                Ok(Some(value)) => Ok(value),
                Ok(None) => Err(self.slots[index].wrong_type()),
                Err(e) => Err(e),
            },
        };
        let field = &mut self.fields[index];
        field.result = Some(result.map(Got::Typed));
        field.finished = true;
        field.absent = absent;
    }

    /// The precedence source whose value field `index` took (its value is already where
    /// its pointer, or the field's own `field`/`pointer`, points).
    pub(super) fn winner(&self, index: usize) -> Option<&'p super::precedence::Candidate> {
        let slot: &'p super::slot::Slot = &self.slots[index];
        let p = slot.precedence.as_deref()?;
        let c = self.tried(index)?.winner?;
        p.candidates.get(c)
    }

    /// [`Outcomes::winner`] of the field as this run asked it (filled in, when it
    /// references others).
    pub(super) fn won(&self, index: usize) -> Option<&super::precedence::Candidate> {
        let p = self.slot(index).precedence.as_deref()?;
        let c = self.tried(index)?.winner?;
        p.candidates.get(c)
    }

    /// The revision the source noted for the request that answered field `index` (its
    /// winning precedence source's, or its own), when a report is collected.
    pub(super) fn revision(&self, index: usize) -> Option<crate::source::Revision> {
        let notes = self.cx.notes()?;
        if self.fields[index].via_fallback {
            return None;
        }
        let request = match self.won(index) {
            Some(cand) => cand.request.as_ref(),
            None => self.slot(index).request.as_ref(),
        }?;
        notes.get(request).revision
    }

    /// How a fetched value came: from the primary source (and how its layers answered)
    /// or from the `fallback_to` source.
    fn fetched_outcome(&self, index: usize) -> Outcome {
        let slot = &self.slots[index];
        let note = |r: Option<&FetchRequest>| match (self.cx.notes(), r) {
            (Some(notes), Some(r)) => notes.get(r),
            _ => crate::source::Note::default(),
        };
        if self.fields[index].via_fallback {
            return Outcome::FallbackTo {
                source: slot.spec.fallback_to.unwrap_or_default(),
                age: note(slot.fallback_request.as_ref()).stored,
            };
        }
        let n = match self.winner(index) {
            Some(cand) => note(cand.request.as_ref()),
            None => note(slot.request.as_ref()),
        };
        match n {
            _ if n.stale.is_some() => Outcome::Stale {
                age: n.stale.unwrap_or_default(),
            },
            _ if n.cache_hit => Outcome::CacheHit,
            _ if n.retries > 0 => Outcome::Retried { retries: n.retries },
            _ => Outcome::Fetched,
        }
    }
}

/// The field's outcome and time in its span, and a line at DEBUG (or WARN for a failure).
fn record<T>(
    span: &tracing::Span,
    result: &Result<T, ComponentError>,
    outcome: &str,
    elapsed: Duration,
) {
    let elapsed_ms = elapsed.as_secs_f64() * 1000.0;
    match result {
        Ok(_) => {
            if !span.is_disabled() {
                span.record("outcome", outcome);
                span.record("elapsed_ms", elapsed_ms);
            }
            tracing::debug!(target: "component_model_async::engine", parent: span, outcome, elapsed_ms, "component fetched");
        }
        Err(e) => {
            span.record("outcome", e.kind().as_str());
            span.record("elapsed_ms", elapsed_ms);
            tracing::warn!(target: "component_model_async::engine", parent: span, error = %e, elapsed_ms, "component fetch failed");
        }
    }
}

/// The error of a value over the field's `max_size`, checked per value (a batch is never
/// split for it).
pub(super) fn too_large(raw: &RawValue, target: &Target<'_>) -> Option<ComponentError> {
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
            tracing::info!(target: "component_model_async::engine", reason = %e, "using the fallback value");
            Ok(v)
        }
        Some(Err(bad)) => Err(bad.with_note("while converting the `fallback` literal".to_owned())),
        None => Err(e),
    }
}
