//! The assemble stage: the generated code takes each field's value in planning order
//! ([`Outcomes::field`], [`Outcomes::nested`], [`Outcomes::optional`]) and builds the
//! struct; every failed field's error is kept, so the fetch reports all of them at once.

use std::marker::PhantomData;

use super::contract::Nested;
use super::plan::{Handle, TakeFn};
use super::state::Outcomes;
use crate::error::{ComponentError, ErrorKind};
use crate::partial::Partial;
use crate::report::{FieldReport, Outcome, PrecedenceOutcome, PrecedenceReport};
use crate::source::RawValue;

use super::slot::Got;

/// A value that lost, as text for the report (at most 200 characters).
fn shown(raw: &RawValue) -> Option<String> {
    let text = match raw {
        RawValue::Text(t) => t.clone(),
        RawValue::Json(serde_json::Value::String(t)) => t.clone(),
        RawValue::Json(v) => v.to_string(),
        RawValue::Bytes(b) => String::from_utf8(b.clone()).ok()?,
    };
    Some(match text.char_indices().nth(200) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text,
    })
}

impl Outcomes<'_> {
    /// The field's value in its type (absent `Option` = `None`, `fallback` applied when
    /// the value is absent or the source failed).
    pub fn take<T: 'static>(&mut self, handle: Handle<T>) -> Result<T, ComponentError> {
        let i = handle.index;
        let value = match self.take_converted(i) {
            // Converted (and checked) ahead of assembly.
            Some(converted) => (*converted)?.downcast::<Option<T>>().ok().and_then(|v| *v),
            None => {
                let mut out: Option<T> = None;
                match self.finish(i, &mut out)? {
                    Some(any) => any.downcast::<T>().ok().map(|v| *v),
                    None => out,
                }
            }
        };
        value.ok_or_else(|| self.slots[i].wrong_type())
    }

    /// [`Outcomes::take`], with `default()` for a field that no precedence source had a
    /// value for (and no `fallback`): what `fetch_<field>` returns.
    pub fn take_or_default<T: 'static>(
        &mut self,
        handle: Handle<T>,
        default: Option<fn() -> T>,
    ) -> Result<T, ComponentError> {
        match (self.take(handle), default) {
            (Err(e), Some(d)) => match self.takes_default(handle.index) {
                true => Ok(d()),
                false => Err(e),
            },
            (r, _) => r,
        }
    }

    /// Whether field `i` takes its `Default` (no precedence source had a value, and it
    /// has no `fallback`); if so, recorded as such. Not generic: one copy for every type.
    fn takes_default(&mut self, i: usize) -> bool {
        if !self.tried(i).is_some_and(|t| t.all_absent) {
            return false;
        }
        self.set_outcome(i, Outcome::Default);
        self.span(i).record("outcome", "default");
        true
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
            // No precedence source had a value, and there is no `fallback`: `Default`.
            Err(_) if default.is_some() && self.takes_default(handle.index) => default.map(|d| d()),
            Err(e) => {
                // Every rule that refused the value is its own error.
                match e {
                    ComponentError::Multiple(all) => self.errors.extend(all),
                    e => self.errors.push(e),
                }
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
                self.fields[i].result = None;
                self.take_converted(i);
                self.set_outcome(i, Outcome::Absent);
                self.span(i).record("outcome", "absent");
            }
            self.next = g.end;
            self.next_group += g.inner;
            return Some(None);
        }
        S::take(self, available).map(Some)
    }

    /// Whether field `i` had no value: not found, not found before it was converted ahead
    /// of assembly, or not fetched because a field it references had none (or failed).
    fn not_found(&self, i: usize) -> bool {
        let field = &self.fields[i];
        field.absent
            || matches!(
                &field.result,
                Some(Err(e)) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::NotFetched)
            )
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

    /// One row per field taken so far (all of them after the struct is taken).
    pub(crate) fn report(&self) -> Vec<FieldReport> {
        (0..self.slots.len())
            .filter_map(|i| {
                let slot = self.slot(i);
                let outcome = self.outcome(i)?;
                // A precedence source that won: its name, key and place.
                let (p, source) = match self.won(i) {
                    Some(cand) => (super::precedence::provenance(slot, cand), cand.name),
                    None if slot.spec.source.is_empty() => (slot.provenance(), "precedence"),
                    None => (slot.provenance(), slot.spec.source),
                };
                Some(FieldReport {
                    precedence: self.precedence_report(i),
                    path: slot.path(),
                    source,
                    key_label: p.key_label.into_owned(),
                    key: p.key,
                    bound_key: p.bound_key,
                    location: p.location,
                    elapsed: self.elapsed(i),
                    outcome,
                    waited_for: slot.after.iter().map(|&a| self.slots[a].path()).collect(),
                    revision: self.revision(i),
                })
            })
            .collect()
    }

    /// What each precedence source of field `i` answered, highest first. A value that
    /// lost is shown only when neither the field nor its source is secret.
    fn precedence_report(&self, i: usize) -> Vec<PrecedenceReport> {
        let slot = self.slot(i);
        let (Some(p), Some(tried)) = (&slot.precedence, self.tried(i)) else {
            return Vec::new();
        };
        let mut rows: Vec<PrecedenceReport> = p
            .candidates
            .iter()
            .enumerate()
            .map(|(c, cand)| {
                let outcome = match (&tried.answers[c], tried.kinds[c]) {
                    _ if tried.winner == Some(c) => PrecedenceOutcome::Won,
                    (Some(Ok(got)), _) => {
                        let hidden = p.field_secret
                            || match (cand.source(), &cand.request) {
                                (Some(s), Some(r)) => s.is_sensitive() || s.conceals(r),
                                _ => true,
                            };
                        let value = match got {
                            Got::Raw(raw) if !hidden => shown(raw),
                            _ => None,
                        };
                        PrecedenceOutcome::Lost { value }
                    }
                    (_, Some(ErrorKind::NotFound)) | (None, None) => PrecedenceOutcome::Absent,
                    (_, Some(kind)) => PrecedenceOutcome::Failed(kind),
                    (Some(Err(e)), None) => PrecedenceOutcome::Failed(e.kind()),
                };
                PrecedenceReport {
                    source: cand.label.to_string(),
                    key: super::precedence::provenance(slot, cand).key,
                    outcome,
                    elapsed: tried.elapsed[c],
                }
            })
            .collect();
        // The field's own source failed and its `fallback_to` was asked: after it.
        if let (Some(own), Some((kind, elapsed))) = (p.own, tried.fallback) {
            let key = match (&slot.fallback, &slot.fallback_request) {
                (Some(super::slot::Route::Raw(s)), Some(r)) => s.native_key(r).map(|(_, k)| k),
                _ => None,
            };
            let outcome = match kind {
                None => PrecedenceOutcome::Won,
                Some(ErrorKind::NotFound) => PrecedenceOutcome::Absent,
                Some(kind) => PrecedenceOutcome::Failed(kind),
            };
            let row = PrecedenceReport {
                source: format!(
                    "{} (fallback_to)",
                    slot.spec.fallback_to.unwrap_or_default()
                ),
                key,
                outcome,
                elapsed,
            };
            rows.insert(own + 1, row);
        }
        rows
    }

    /// The fields taken so far that fell back to their `fallback` literal because their
    /// source failed, with the failure.
    pub(crate) fn degraded(&self) -> Vec<(String, String)> {
        self.degraded
            .iter()
            .map(|(i, why)| (self.slots[*i].path(), why.to_string()))
            .collect()
    }
}
