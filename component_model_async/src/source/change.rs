//! What a watch reports: [`Change`] and the [`Changes`] stream.

use crate::error::SourceError;

/// What a watched source reports (see [`Source::watch`](crate::Source::watch)).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Change {
    /// These watched requests (by their position in the watched list) may have new values.
    Changed(Vec<usize>),
    /// Any of them may have changed (after a reconnect or an index reset): read them all.
    All,
}

/// The stream [`Source::watch`](crate::Source::watch) returns; an `Err` item says the watch broke (the watcher
/// decides whether to watch again).
pub type Changes = futures::stream::BoxStream<'static, Result<Change, SourceError>>;
