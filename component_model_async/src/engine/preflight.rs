//! The preflight stage: every field's sources asked whether they could answer — one
//! [`Source::preflight`] per source with all of its requests, every source concurrently,
//! bounded by the deadline — and nothing fetched. Fields are read from the plan as it
//! stands: a field whose key references other fields is not checked (its key is known
//! only once they are fetched), nor is a typed fetcher (it can only be called).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::describe;
use super::plan::Plan;
use super::slot::{Route, Slot};
use crate::config_doc::SourceRole;
use crate::preflight::PreflightRow;
use crate::source::{Access, FetchRequest, Probe, Source};

/// A row waiting for its source's answer: the source and the request it checks.
struct Pending {
    row: PreflightRow,
    ask: Option<(Arc<dyn Source>, FetchRequest)>,
}

/// What the rows of one slot are: each source it reads, with its part and request.
fn reads(slot: &Slot) -> Vec<(String, SourceRole, Option<&Route>, Option<&FetchRequest>)> {
    let mut out = Vec::new();
    match &slot.precedence {
        Some(p) => {
            let docs = describe::roles(slot, p);
            for (c, role) in p.candidates.iter().zip(docs) {
                out.push((
                    c.label.to_string(),
                    role,
                    Some(&c.route),
                    c.request.as_ref(),
                ));
            }
        }
        None => out.push((
            slot.spec.source.to_owned(),
            SourceRole::Own,
            slot.primary.as_ref(),
            slot.request.as_ref(),
        )),
    }
    if let Some(to) = slot.spec.fallback_to {
        out.push((
            to.to_owned(),
            SourceRole::FallbackTo,
            slot.fallback.as_ref(),
            slot.fallback_request.as_ref(),
        ));
    }
    out
}

impl Plan<'_> {
    /// Checks every field's sources by `deadline`; one row per field and source.
    pub(crate) async fn preflight(&self, deadline: Instant) -> Vec<PreflightRow> {
        let mut pending = Vec::new();
        for (index, slot) in self.slots.iter().enumerate() {
            // A field of an `Option<Nested>` struct: when it is absent, the struct is `None`.
            let has_default = slot.spec.fallback.is_some()
                || self.optional_at(index)
                || slot.precedence.is_some();
            let linked = !slot.spec.refs.is_empty() || slot.spec.connect.is_some();
            for (label, role, route, request) in reads(slot) {
                // What references other fields: the field's own key (and its
                // `fallback_to`'s, which is the same request); a precedence source reads
                // by convention unless its label names a field.
                let linked = linked
                    && (matches!(role, SourceRole::Own | SourceRole::FallbackTo)
                        || label.contains('{'));
                let source = match route {
                    Some(Route::Raw(s)) => Some(s),
                    _ => None,
                };
                let native = match (source, request) {
                    (Some(s), Some(r)) => s.native_key(r),
                    (None, Some(r)) => r.native_key(),
                    _ => None,
                };
                let (key_label, key) = match native {
                    Some((l, k)) => (l.to_owned(), Some(k)),
                    None => ("key".to_owned(), None),
                };
                let mut row = PreflightRow::new(
                    slot.owner,
                    slot.field.to_string(),
                    label,
                    role,
                    key_label,
                    key,
                    source.and_then(|s| s.location()),
                    has_default,
                );
                let mut ask = None;
                match (route, request) {
                    _ if linked => {
                        let why = match slot.spec.connect {
                            Some(_) => {
                                "read through a client its `connect` opens from other fields: known only when they are fetched"
                            }
                            None => {
                                "its key references other fields: known only when they are fetched"
                            }
                        };
                        set(&mut row, Probe::unchecked(why));
                    }
                    (Some(Route::Raw(s)), Some(r)) => ask = Some((s.clone(), r.clone())),
                    (Some(Route::Typed(_)), _) => set(
                        &mut row,
                        Probe::unchecked(
                            "a typed fetcher: it cannot be checked without calling it",
                        ),
                    ),
                    (Some(Route::Fail(why)), _) => {
                        set(
                            &mut row,
                            Probe::new(Access::Invalid).with_detail(why.to_string()),
                        );
                    }
                    _ => set(
                        &mut row,
                        Probe::new(Access::Invalid)
                            .with_detail("the field has no request for this source"),
                    ),
                }
                pending.push(Pending { row, ask });
            }
        }
        // One batch per source (by identity), every batch at once.
        let mut batches: HashMap<usize, (Arc<dyn Source>, Vec<usize>)> = HashMap::new();
        for (i, p) in pending.iter().enumerate() {
            if let Some((source, _)) = &p.ask {
                let id = Arc::as_ptr(source) as *const () as usize;
                batches
                    .entry(id)
                    .or_insert_with(|| (source.clone(), Vec::new()))
                    .1
                    .push(i);
            }
        }
        let asks = batches.into_values().map(|(source, rows)| {
            let requests: Vec<FetchRequest> = rows
                .iter()
                .filter_map(|&i| pending[i].ask.as_ref().map(|(_, r)| r.clone()))
                .collect();
            async move {
                let started = Instant::now();
                let left = deadline.saturating_duration_since(started);
                let answer = tokio::time::timeout(left, source.preflight(requests)).await;
                (rows, answer, started.elapsed(), left)
            }
        });
        for (rows, answer, elapsed, left) in futures::future::join_all(asks).await {
            let n = rows.len();
            let mut probes = match answer {
                Ok(probes) => probes.into_iter().map(Some).collect::<Vec<_>>(),
                Err(_) => vec![None; n],
            };
            probes.resize(n, None);
            for (i, probe) in rows.into_iter().zip(probes) {
                let row = &mut pending[i].row;
                row.elapsed = elapsed;
                match probe {
                    Some(p) => set(row, p),
                    None if elapsed >= left => set(
                        row,
                        Probe::new(Access::Unreachable)
                            .with_detail(format!("no answer within {}", secs(left))),
                    ),
                    None => set(
                        row,
                        Probe::new(Access::Invalid)
                            .with_detail("the source gave no answer for this key"),
                    ),
                }
            }
        }
        pending.into_iter().map(|p| p.row).collect()
    }
}

fn set(row: &mut PreflightRow, probe: Probe) {
    row.access = probe.access;
    row.detail = probe.detail;
}

/// `2s`, `1.5s`, `250ms`.
fn secs(d: Duration) -> String {
    match d.as_millis() {
        ms if ms < 1000 => format!("{ms}ms"),
        ms if ms % 1000 == 0 => format!("{}s", ms / 1000),
        ms => format!("{:.1}s", ms as f64 / 1000.0),
    }
}
