//! Precedence: a field read from several sources, highest first — the `overrides` of its
//! struct (or its own), its own `fetch_from`, the `defaults` — every one asked in the
//! first round of its wave, concurrently (requests to one source in one batch, as any).
//! The highest source that has the value wins; an absent one falls through; an error
//! above the winner fails the field, naming that source — unless it is the field's own
//! source and its `fallback_to` answers (asked in the `fallback_to` round, as without
//! precedence). A field every source was absent from takes its `fallback`, else its
//! `Default`.
//!
//! The plan stage builds a [`Precedence`] per field that has one; the choose stage asks
//! and settles ([`Tried`], one per field and run); the convert stage converts the
//! winner's value as its source describes it; the report shows what won and what lost.

use std::time::Duration;

use super::slot::{Got, Route, Slot};
use crate::error::{ComponentError, ErrorKind, Provenance};
use crate::source::{FetchRequest, RawValue, Source};

/// One precedence source of a field, as planned.
#[derive(Clone)]
pub(super) struct Candidate {
    /// As written, `{@profile}` replaced: `file@config/prod.toml`, `env`.
    pub(super) label: Box<str>,
    /// The name it is registered under (`file`), for batches and metrics.
    pub(super) name: &'static str,
    /// How it is asked (a source, the field's typed fetcher, or a planning error).
    pub(super) route: Route,
    /// The request in the source's form (its convention key, or the field's own key).
    pub(super) request: Option<FetchRequest>,
}

impl Candidate {
    /// The source asked, when it is one.
    pub(super) fn source(&self) -> Option<&dyn Source> {
        match &self.route {
            Route::Raw(s) => Some(s.as_ref()),
            _ => None,
        }
    }
}

/// A field's precedence sources, highest first.
#[derive(Clone)]
pub(super) struct Precedence {
    pub(super) candidates: Vec<Candidate>,
    /// Which one is the field's own `fetch_from` (`None`: read from precedence sources
    /// alone).
    pub(super) own: Option<usize>,
    /// Whether the field itself is secret (`secret`, a secret type); whether a source is
    /// secret is asked of the source.
    pub(super) field_secret: bool,
}

/// One run's answers of a field's precedence sources.
pub(super) struct Tried {
    /// Each candidate's answer until the winner's is taken (a failure is kept: its
    /// kind is in `kinds`, and the error moves into the field's result when it fails it).
    pub(super) answers: Vec<Option<Result<Got, ComponentError>>>,
    /// The kind of each failure (`NotFound`: absent).
    pub(super) kinds: Vec<Option<ErrorKind>>,
    pub(super) elapsed: Vec<Duration>,
    /// The candidate that answered.
    pub(super) winner: Option<usize>,
    /// The field's own source failed and its `fallback_to` is asked.
    pub(super) pending: bool,
    /// How the `fallback_to` answered when asked: `None` it had the value, else the kind
    /// of its failure; and its time.
    pub(super) fallback: Option<(Option<ErrorKind>, Duration)>,
    /// Every source was absent: the field takes its `fallback`, else `Default`.
    pub(super) all_absent: bool,
    /// The field failed at a source above one that had a value: its `fallback` literal
    /// must not stand in (a production fetch never silently takes a default).
    pub(super) no_fallback: bool,
}

impl Tried {
    pub(super) fn new(n: usize) -> Self {
        Tried {
            answers: (0..n).map(|_| None).collect(),
            kinds: vec![None; n],
            elapsed: vec![Duration::ZERO; n],
            winner: None,
            pending: false,
            fallback: None,
            all_absent: false,
            no_fallback: false,
        }
    }

    /// The field failed at candidate `c`: whether a source below it had a value.
    pub(super) fn mark_failed_above(&mut self, c: usize) {
        self.no_fallback = self
            .answers
            .iter()
            .skip(c + 1)
            .any(|a| matches!(a, Some(Ok(_))));
    }

    /// Records candidate `c`'s answer.
    pub(super) fn record(
        &mut self,
        c: usize,
        answer: Result<Got, ComponentError>,
        elapsed: Duration,
    ) {
        if let Err(e) = &answer {
            self.kinds[c] = Some(e.kind());
        }
        self.answers[c] = Some(answer);
        self.elapsed[c] = elapsed;
    }

    /// The longest a candidate took: what the field waited for (they run concurrently).
    pub(super) fn waited(&self) -> Duration {
        self.elapsed.iter().copied().max().unwrap_or_default()
    }
}

/// What the answers decide, walking the candidates from the highest.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Decision {
    /// This candidate has the value.
    Won(usize),
    /// This candidate failed above any value: the field fails with its error.
    Failed(usize),
    /// The field's own source failed (or had nothing) and has a `fallback_to`.
    AskFallback(usize),
    /// No source had the value.
    AllAbsent,
}

impl Precedence {
    /// Walks the candidates from `from`: the first value wins, an absent one falls
    /// through, a failure fails the field — the field's own source, when it has a
    /// `fallback_to` (`fallback` here), asks that first.
    pub(super) fn decide(&self, tried: &Tried, from: usize, fallback: bool) -> Decision {
        for c in from..self.candidates.len() {
            match (&tried.answers[c], tried.kinds[c]) {
                (Some(Ok(_)), _) => return Decision::Won(c),
                (_, Some(kind))
                    if Some(c) == self.own
                        && fallback
                        && super::slot::fallbackable(kind)
                        && !tried.pending =>
                {
                    return Decision::AskFallback(c);
                }
                (_, Some(ErrorKind::NotFound)) => continue,
                (_, Some(_)) => return Decision::Failed(c),
                // Not asked (no request could be made): that was said as a failure.
                (_, None) => continue,
            }
        }
        Decision::AllAbsent
    }
}

/// Where candidate `c`'s value was to come from, for its errors.
pub(super) fn provenance(slot: &Slot, cand: &Candidate) -> Provenance {
    let source = cand.source();
    let native = match (source, &cand.request) {
        (Some(s), Some(r)) => s.native_key(r),
        (None, Some(r)) => r.native_key(),
        _ => None,
    };
    let (label, key) = match native {
        Some((label, key)) => (label, Some(key)),
        None => ("key", None),
    };
    Provenance {
        owner: Some(slot.owner.into()),
        field: Some(slot.field.clone()),
        source: Some(cand.label.to_string().into()),
        key_label: label.into(),
        bound_key: None,
        key,
        location: source.and_then(Source::location),
    }
}

/// The value `field = select` then a JSON pointer find in `raw` (a document), `None`
/// when they find nothing (or `null`); `Err` when `raw` is no document.
pub(super) fn narrow(
    raw: RawValue,
    select: Option<&str>,
    pointer: Option<&str>,
) -> Result<Option<RawValue>, String> {
    let what = || match (select, pointer) {
        (Some(f), _) => format!("field `{f}`"),
        (None, p) => format!("`{}`", p.unwrap_or_default()),
    };
    let doc = match raw {
        RawValue::Json(v) => v,
        RawValue::Text(s) => serde_json::from_str(&s)
            .map_err(|e| format!("expected a document to look up {} in: {e}", what()))?,
        RawValue::Bytes(b) => serde_json::from_slice(&b)
            .map_err(|e| format!("expected a document to look up {} in: {e}", what()))?,
    };
    let mut doc = doc;
    if let Some(name) = select {
        doc = match doc.get_mut(name).map(serde_json::Value::take) {
            Some(v) => v,
            None => return Ok(None),
        };
    }
    let found = match pointer {
        Some(p) => doc.pointer_mut(p).map(serde_json::Value::take),
        None => Some(doc),
    };
    Ok(match found {
        None | Some(serde_json::Value::Null) => None,
        Some(v) => Some(RawValue::Json(v)),
    })
}

/// Splits a precedence source as written (`"file@config/app.toml"`) into the name it is
/// registered under and its argument.
pub(super) fn split(entry: &'static str) -> (&'static str, Option<&'static str>) {
    match entry.split_once('@') {
        Some((name, argument)) => (name.trim(), Some(argument)),
        None => (entry.trim(), None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_keeps_the_profile_placeholder_in_the_argument() {
        assert_eq!(split("env"), ("env", None));
        assert_eq!(
            split("file@config/{@profile}.toml"),
            ("file", Some("config/{@profile}.toml"))
        );
        assert_eq!(
            split("database:analytics@settings"),
            ("database:analytics", Some("settings"))
        );
    }

    #[test]
    fn narrow_finds_a_member_and_calls_null_or_nothing_absent() {
        let doc = RawValue::Json(serde_json::json!({"db": {"port": 5432, "host": null}}));
        assert_eq!(
            narrow(doc.clone(), None, Some("/db/port")).unwrap(),
            Some(RawValue::Json(5432.into()))
        );
        assert_eq!(narrow(doc.clone(), None, Some("/db/host")).unwrap(), None);
        assert_eq!(narrow(doc, None, Some("/db/user")).unwrap(), None);
        assert!(narrow(RawValue::from("not json"), None, Some("/a")).is_err());
    }
}
