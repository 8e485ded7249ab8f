//! What the engine shows outside its stages, read-only: which requests a
//! [`Live`](crate::Live) watches ([`Watched`]), each field's raw value for a live update's
//! diff ([`FieldView`]), the values a run fetched to hand back to the next one
//! ([`Given`]), and [`ComponentSource`] for `component_sources()`.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use super::plan::Plan;
use super::slot::{Got, Route, Slot, fallbackable};
use super::state::Outcomes;
use crate::error::ErrorKind;
use crate::source::{FetchRequest, FieldSpec, RawValue, Source};

/// One fetched field of a tree as a set of [`Sources`](crate::Sources) resolves it: its full path, the
/// source, the key as sent (prefixes applied, `${VAR}` resolved) and where the source
/// lives. Returned by the generated `component_sources_with(&Sources)`.
///
/// ```
/// use component_model_async::{async_trait, AsyncAssign, EnvSource, FetchRequest, RawValue, Source, SourceError, Sources};
///
/// #[derive(AsyncAssign, Debug)]
/// struct Db {
///     #[component(fetch_from = "env")]
///     host: String,
///     #[component(fetch_from = "kv", key = "db/port")]
///     port: u16,
/// }
///
/// #[derive(AsyncAssign, Debug)]
/// #[component(env_prefix = "APP_")]
/// struct App {
///     #[component(nested)]
///     database: Db,
///     #[component(nested, env_prefix = "RO_", key_prefix = "replica/")]
///     replica: Db,
/// }
///
/// /// A key-value store that answers every key with "5432".
/// struct Kv;
/// #[async_trait]
/// impl Source for Kv {
///     async fn fetch(&self, _: &FetchRequest) -> Result<RawValue, SourceError> {
///         Ok(RawValue::Text("5432".into()))
///     }
/// }
///
/// let sources = Sources::new().with_env(EnvSource::from_map([("X", "1")])).register("kv", Kv);
/// let listed: Vec<String> = App::component_sources_with(&sources)
///     .iter()
///     .map(|s| format!("{} {} {}", s.path, s.key_label, s.key.as_deref().unwrap_or("-")))
///     .collect();
/// assert_eq!(listed, [
///     "App.database.host variable APP_DATABASE_HOST",
///     "App.database.port key db/port",
///     "App.replica.host variable APP_RO_HOST",
///     "App.replica.port key replica/db/port",
/// ]);
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ComponentSource {
    /// `Root.field.subfield`.
    pub path: String,
    /// What the field's attributes say.
    pub spec: &'static FieldSpec,
    /// What the key is called by the source (`key`, `variable`, `secret`, `query`, ...).
    pub key_label: String,
    /// The key as the source will be asked for it, if the field has one.
    pub key: Option<String>,
    /// Where the source lives (`http://127.0.0.1:8500`), if it says.
    pub location: Option<String>,
    /// Why the field cannot be fetched with these sources (an unknown source name, an
    /// unset `${VAR}`), if it cannot.
    pub problem: Option<String>,
}

impl fmt::Display for ComponentSource {
    /// `App.replica.port: consul key `replica/db/port` at http://127.0.0.1:8500`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.spec.source)?;
        if let Some(key) = &self.key {
            write!(f, " {} `{key}`", self.key_label)?;
        }
        if let Some(loc) = &self.location {
            write!(f, " at {loc}")?;
        }
        if let Some(problem) = &self.problem {
            write!(f, " (cannot be fetched: {problem})")?;
        }
        Ok(())
    }
}

/// What a [`Live`](crate::Live) watches: a source and the requests of its watched fields
/// (`None`: typed fetchers, polled), the fields reading each request, and the shortest
/// `watch_interval` among them.
/// A source a field reads (`None`: a typed fetcher) and its request.
type Read = (Option<Arc<dyn Source>>, Option<FetchRequest>);

pub(crate) struct Watched {
    pub(crate) source: Option<Arc<dyn Source>>,
    pub(crate) requests: Vec<FetchRequest>,
    pub(crate) interval: Option<Duration>,
    /// `slots[i]`: the plan's field indices that read `requests[i]`.
    pub(crate) slots: Vec<Vec<usize>>,
}

impl Plan<'_> {
    /// The watched fields (those marked `watch`, else all; `stream_from` fields always)
    /// grouped by source, and apart by kind: a source's streams (`topic`) and its keys
    /// are watched separately, so one cannot stop the other (a Redis source watches
    /// both, and its keys may fall back to polling).
    /// A field that references others is watched at the keys `first` (a run's
    /// [`Given`]) filled in.
    pub(crate) fn watched(&self, first: &Given) -> Vec<Watched> {
        let marked = self.slots.iter().any(|s| s.spec.watch);
        let mut groups: Vec<(Watched, bool)> = Vec::new();
        for (index, slot) in self.slots.iter().enumerate() {
            let slot = match first.1.get(index) {
                Some(Some(filled)) => filled,
                // A template nothing filled in (its inputs failed): nothing to watch.
                _ if !slot.spec.refs.is_empty() || slot.spec.connect.is_some() => continue,
                _ => slot,
            };
            if marked && !slot.spec.watch && !slot.spec.streamed {
                continue;
            }
            // What the field reads: its own source, or every one of its precedence
            // sources (a change in any of them may change which one wins).
            let reads: Vec<Read> = match &slot.precedence {
                Some(p) => p
                    .candidates
                    .iter()
                    .filter_map(|c| match (&c.route, &c.request) {
                        (Route::Raw(src), Some(r)) => Some((Some(src.clone()), Some(r.clone()))),
                        (Route::Typed(_), _) => Some((None, None)),
                        _ => None,
                    })
                    .collect(),
                None => match (&slot.primary, &slot.request) {
                    (Some(Route::Raw(src)), Some(r)) => {
                        vec![(Some(src.clone()), Some(r.clone()))]
                    }
                    (Some(Route::Typed(_)), _) => vec![(None, None)],
                    _ => continue,
                },
            };
            for (source, request) in reads {
                let stream = request.as_ref().is_some_and(|r| r.topic().is_some());
                let at = groups.iter().position(|(g, s)| {
                    *s == stream
                        && match (&g.source, &source) {
                            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
                            (None, None) => true,
                            _ => false,
                        }
                });
                let group = match at {
                    Some(at) => &mut groups[at].0,
                    None => {
                        groups.push((
                            Watched {
                                source,
                                requests: Vec::new(),
                                interval: None,
                                slots: Vec::new(),
                            },
                            stream,
                        ));
                        &mut groups.last_mut().expect("just pushed").0
                    }
                };
                if let Some(r) = request {
                    match group.requests.iter().position(|known| *known == r) {
                        Some(at) => group.slots[at].push(index),
                        None => {
                            group.requests.push(r);
                            group.slots.push(vec![index]);
                        }
                    }
                }
                group.interval = match (group.interval, slot.spec.watch_interval) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
            }
        }
        // A field not watched itself that reads a watched request takes its new value too.
        if marked {
            for (index, slot) in self.slots.iter().enumerate() {
                let slot: &Slot = first
                    .1
                    .get(index)
                    .and_then(Option::as_deref)
                    .unwrap_or(slot);
                let (Some(Route::Raw(src)), Some(r)) = (&slot.primary, &slot.request) else {
                    continue;
                };
                let stream = r.topic().is_some();
                for (group, s) in &mut groups {
                    let same =
                        *s == stream && group.source.as_ref().is_some_and(|g| Arc::ptr_eq(g, src));
                    if let Some(at) = group.requests.iter().position(|known| known == r)
                        && same
                        && !group.slots[at].contains(&index)
                    {
                        group.slots[at].push(index);
                    }
                }
            }
        }
        groups.into_iter().map(|(g, _)| g).collect()
    }
}

/// One field of a fetched version as `Live` sees it (its diff of two versions): the
/// engine hands `live` this view, not its slots.
#[derive(Clone)]
pub(crate) struct FieldView {
    pub(crate) path: String,
    pub(crate) source: &'static str,
    pub(crate) key: Option<String>,
    pub(crate) secret: bool,
    pub(crate) raw: Option<RawValue>,
}

/// The raw values a run fetched, one entry per field, to hand to the next run
/// ([`Plan::run_given`]): a field with a value is not fetched again. A field whose
/// result was not its own source's raw value (a typed fetcher's, a failure, an answer of
/// its `fallback_to`, a stale value a cache served because the source failed) has none:
/// it is asked again on every run. Neither is a value reused for a field that reads other
/// fields, a `cache_for` field (its cache must see the new value: it is read fresh), or a
/// field whose request changed (a `${VAR}` in its key). `Live` keeps the
/// last run's `Given`, sets the values a watch carried (`Change::Value`), forgets the
/// fields a watch named without a value (`Change::Changed`), and runs the plan with it.
#[derive(Clone, Default)]
pub(crate) struct Given(
    pub(super) Vec<Option<Carried>>,
    /// The slots of the fields that reference others, as the run filled them in (what
    /// a `Live` watches for them: the keys they read, not their templates).
    pub(super) Vec<Option<Box<Slot>>>,
);

/// A value handed to the next run, and the request it answers (`None`: whatever the
/// field asks, a value a watch carried).
#[derive(Clone)]
pub(crate) struct Carried {
    pub(super) raw: RawValue,
    pub(super) request: Option<FetchRequest>,
}

impl Given {
    /// `value` is field `slot`'s new raw value (from its own source).
    pub(crate) fn set(&mut self, slot: usize, value: RawValue) {
        if let Some(entry) = self.0.get_mut(slot) {
            let request = entry.take().and_then(|c| c.request);
            *entry = Some(Carried {
                raw: value,
                request,
            });
        }
    }

    /// Field `slot` is fetched again next run.
    pub(crate) fn forget(&mut self, slot: usize) {
        if let Some(entry) = self.0.get_mut(slot) {
            *entry = None;
        }
    }

    /// The requests of the fields that reference others, as the run filled them in.
    pub(crate) fn filled(&self) -> Vec<Option<FetchRequest>> {
        self.1
            .iter()
            .map(|s| s.as_ref().and_then(|s| s.request.clone()))
            .collect()
    }

    /// Whether field `slot` has a value to reuse.
    #[cfg(test)]
    pub(crate) fn has(&self, slot: usize) -> bool {
        self.0.get(slot).is_some_and(Option::is_some)
    }
}

impl Outcomes<'_> {
    /// Every field's raw value as fetched (call before taking), to reuse in the next run.
    pub(crate) fn given(&self) -> Given {
        Given(
            (0..self.fields.len())
                .map(|i| {
                    // A precedence field is asked again whole: which source wins may change.
                    if self.slots[i].precedence.is_some() {
                        return None;
                    }
                    let (raw, via_fallback) = self.raw(i)?;
                    let request = self.slots[i].request.as_ref();
                    let stale = match (self.cx.notes(), request) {
                        (Some(notes), Some(r)) => notes.get(r).stale.is_some(),
                        _ => false,
                    };
                    (!via_fallback && !stale).then(|| Carried {
                        raw: raw.clone(),
                        request: request.cloned(),
                    })
                })
                .collect(),
            self.resolved.clone(),
        )
    }

    /// Field `i`'s raw value as fetched and whether `fallback_to` answered it, also
    /// after the validate stage converted it.
    fn raw(&self, i: usize) -> Option<(&RawValue, bool)> {
        match &self.fields[i].result {
            Some(Ok(Got::Raw(raw))) => Some((raw, self.fields[i].via_fallback)),
            Some(Ok(_)) if self.fields[i].finished => self
                .checked_raw
                .iter()
                .find(|(at, _, _)| *at == i)
                .map(|(_, raw, via)| (raw, *via)),
            Some(_) => None,
            None => self
                .checked_raw
                .iter()
                .find(|(at, _, _)| *at == i)
                .map(|(_, raw, via)| (raw, *via)),
        }
    }

    /// Every field with its raw value (before conversion), for a live update's diff.
    pub(crate) fn watch_slots(&self) -> Vec<FieldView> {
        (0..self.slots.len())
            .map(|i| {
                let (slot, field) = (self.slot(i), &self.fields[i]);
                // A precedence source that won: its name and key.
                let (p, source) = match self.won(i) {
                    Some(cand) => (super::precedence::provenance(slot, cand), cand.name),
                    None => (slot.provenance(), slot.spec.source),
                };
                FieldView {
                    path: slot.path(),
                    source,
                    key: p.key,
                    secret: slot.sensitive,
                    raw: match &field.result {
                        // A precedence source's value: already where its pointer points.
                        _ if field.finished && self.won(i).is_some() => {
                            self.raw(i).map(|(raw, _)| raw.clone())
                        }
                        _ if field.finished => self.raw(i).map(|(raw, _)| {
                            let provenance = || slot.provenance();
                            let target = slot.target(&provenance);
                            narrowed(raw, target.select, target.pointer)
                        }),
                        None => self.raw(i).map(|(raw, _)| {
                            let provenance = || slot.provenance();
                            let target = slot.target(&provenance);
                            narrowed(raw, target.select, target.pointer)
                        }),
                        // A precedence source's value: already where its pointer points.
                        Some(Ok(Got::Raw(raw))) if self.won(i).is_some() => Some(raw.clone()),
                        Some(Ok(Got::Raw(raw))) => {
                            let provenance = || slot.provenance();
                            let target = slot.target(&provenance);
                            Some(narrowed(raw, target.select, target.pointer))
                        }
                        // The `fallback` literal stands in: an update from it shows it as
                        // the old value (not "none").
                        Some(Err(e))
                            if fallbackable(e.kind())
                                && !(e.kind() == ErrorKind::NotFound
                                    && slot.decoders.is_some_and(|d| (d.absent)(&mut ()))) =>
                        {
                            slot.spec.fallback.map(|f| RawValue::Text(f.to_owned()))
                        }
                        _ => None,
                    },
                }
            })
            .collect()
    }
}

/// The part of `raw` a field reads (`field`, then `pointer`), for a live update's diff:
/// two fields of one document change apart. `raw` itself when nothing is selected or the
/// selection fails (the conversion reports that).
fn narrowed(raw: &RawValue, select: Option<&str>, pointer: Option<&str>) -> RawValue {
    if select.is_none() && pointer.is_none() {
        return raw.clone();
    }
    let doc = match raw {
        RawValue::Json(v) => Some(v.clone()),
        RawValue::Text(s) => serde_json::from_str(s).ok(),
        RawValue::Bytes(b) => serde_json::from_slice(b).ok(),
    };
    let picked = doc.and_then(|mut v| {
        if let Some(f) = select {
            v = v.get_mut(f).map(serde_json::Value::take)?;
        }
        if let Some(p) = pointer {
            v = v.pointer_mut(p).map(serde_json::Value::take)?;
        }
        Some(v)
    });
    match picked {
        Some(serde_json::Value::String(s)) => RawValue::Text(s),
        Some(v) => RawValue::Json(v),
        None => raw.clone(),
    }
}
