//! [`FetchContext`]: what one fetch carries through the engine's stages and the layers
//! around each source — the report being collected, whether the read must pass the
//! caches, the deadline — as one value handed down explicitly
//! ([`Source::fetch_many_in`](crate::Source::fetch_many_in)), not as task-locals.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use super::change::Revision;
use super::request::FetchRequest;

/// The context of one fetch, handed to every layer and source that asks for it through
/// [`Source::fetch_many_in`](crate::Source::fetch_many_in).
///
/// A layer written outside this crate passes it on unchanged to the source it wraps
/// (`self.inner.fetch_many_in(cx, requests)`); a source may read the deadline.
///
/// ```
/// use std::time::{Duration, Instant};
/// use component_model_async::FetchContext;
///
/// let cx = FetchContext::new().fresh_read(true).with_deadline(Instant::now() + Duration::from_secs(5));
/// assert!(cx.is_fresh_read());
/// assert!(cx.remaining().unwrap() <= Duration::from_secs(5));
/// assert!(!FetchContext::new().is_fresh_read());
/// ```
#[derive(Clone, Default)]
pub struct FetchContext {
    /// What layers note per request, when a report is collected.
    notes: Option<Arc<Notes>>,
    /// Read past the caches (a watched change must not be answered from a cache).
    fresh: bool,
    deadline: Option<Instant>,
    /// The source name the call is for (metrics labels).
    source: &'static str,
}

impl std::fmt::Debug for FetchContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FetchContext")
            .field("report", &self.notes.is_some())
            .field("fresh_read", &self.fresh)
            .field("deadline", &self.deadline)
            .field("source", &self.source)
            .finish()
    }
}

impl FetchContext {
    /// A context with nothing collected, caches allowed and no deadline.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether the read must pass every cache (and store what it read in them).
    #[must_use]
    pub fn fresh_read(mut self, yes: bool) -> Self {
        self.fresh = yes;
        self
    }

    /// Whether the read must pass every cache.
    pub fn is_fresh_read(&self) -> bool {
        self.fresh
    }

    /// Sets the time by which the whole fetch must be done.
    #[must_use]
    pub fn with_deadline(mut self, at: Instant) -> Self {
        self.deadline = Some(match self.deadline {
            Some(earlier) => earlier.min(at),
            None => at,
        });
        self
    }

    /// The time by which the whole fetch must be done, if any.
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// How long is left before the deadline (zero once past it), if there is one.
    pub fn remaining(&self) -> Option<Duration> {
        self.deadline
            .map(|d| d.saturating_duration_since(Instant::now()))
    }

    /// The source name of the call this context was handed to (empty outside one).
    pub fn source_name(&self) -> &'static str {
        self.source
    }

    /// This context without its deadline: for work shared with callers that have none
    /// (a cache's flight answers every caller waiting for it).
    pub(crate) fn without_deadline(&self) -> Self {
        let mut cx = self.clone();
        cx.deadline = None;
        cx
    }

    /// This context for a call of the source registered as `name`.
    pub(crate) fn for_source(&self, name: &'static str) -> Self {
        let mut cx = self.clone();
        cx.source = name;
        cx
    }

    /// This context, collecting what layers note into `notes` (for a report).
    pub(crate) fn collecting(mut self, notes: Arc<Notes>) -> Self {
        self.notes = Some(notes);
        self
    }

    /// The notes being collected, if a report is.
    pub(crate) fn notes(&self) -> Option<&Arc<Notes>> {
        self.notes.as_ref()
    }

    /// Says that the value a source answered for `request` stands at `revision` in its
    /// backend (an etcd `mod_revision`, a NATS KV sequence, a Consul `ModifyIndex`), for
    /// the fetch report's [`FieldReport::revision`](crate::FieldReport::revision). Nothing
    /// is kept when no report is being collected. A source calls it from its
    /// [`Source::fetch_many_in`](crate::Source::fetch_many_in).
    ///
    /// ```
    /// use component_model_async::{FetchContext, FetchRequest, Revision};
    ///
    /// let cx = FetchContext::new();
    /// // Outside a report, a revision is simply not kept.
    /// cx.note_revision(&FetchRequest::for_key("etcd", "/app/port"), Revision::Index(7));
    /// ```
    pub fn note_revision(&self, request: &FetchRequest, revision: Revision) {
        self.note(request, |n| n.revision = Some(revision));
    }

    /// Says what was done for `request`, when a report is being collected (else nothing).
    pub(crate) fn note(&self, request: &FetchRequest, update: impl FnOnce(&mut Note)) {
        if let Some(notes) = &self.notes {
            let mut map = notes.0.lock().unwrap_or_else(PoisonError::into_inner);
            update(map.entry(request.clone()).or_default());
        }
    }
}

/// What a layer or source did for one request, merged per request.
#[derive(Debug, Clone, Default)]
pub(crate) struct Note {
    pub(crate) cache_hit: bool,
    pub(crate) stale: Option<Duration>,
    pub(crate) retries: u32,
    pub(crate) stored: Option<Duration>,
    /// The answered value's revision in its backend.
    pub(crate) revision: Option<Revision>,
}

/// What layers said during one fetch, per request.
#[derive(Default)]
pub(crate) struct Notes(Mutex<HashMap<FetchRequest, Note>>);

impl Notes {
    pub(crate) fn get(&self, request: &FetchRequest) -> Note {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(request)
            .cloned()
            .unwrap_or_default()
    }
}
