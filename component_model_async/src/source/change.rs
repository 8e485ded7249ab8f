//! What a watch reports: [`Change`], the [`Revision`] a change may carry, and the
//! [`Changes`] stream.

use std::fmt;

use super::raw::RawValue;
use crate::error::SourceError;

/// What a watched source reports (see [`Source::watch`](crate::Source::watch)).
///
/// Indices are positions in the list of requests the watch was given. A source that knows
/// the new value (a pushed message, a Consul blocking query that returned the entry) says
/// [`Change::Value`], so the watcher applies it without reading the source again; one that
/// only knows *which* requests changed says [`Change::Changed`]; one that knows neither (after
/// a reconnect, when notifications may have been lost) says [`Change::All`].
///
/// ```
/// use component_model_async::{Change, RawValue};
///
/// let c = Change::Value { index: 0, value: RawValue::from("8081"), revision: None };
/// // Debug never shows the value.
/// assert_eq!(format!("{c:?}"), "Value { index: 0, value: Text(<4 bytes>), revision: None }");
/// assert_eq!(c.indices(), Some(&[0][..]));
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Change {
    /// These watched requests (by their position in the watched list) may have new values:
    /// read them again.
    Changed(Vec<usize>),
    /// Any of them may have changed (after a reconnect or an index reset): read them all.
    All,
    /// The watched request at `index` now has this value (the source delivered it with the
    /// notification), at `revision` where the backend has one. A watcher applies it as if
    /// the request had been fetched and answered `value`.
    Value {
        /// The request's position in the watched list.
        index: usize,
        /// Its new value.
        value: RawValue,
        /// The backend's revision of that value, when it has one.
        revision: Option<Revision>,
    },
}

// `RawValue`'s equality is total (serde_json values hold no NaN), so `Change` keeps the
// `Eq` it had before it carried values.
impl Eq for Change {}

impl Change {
    /// The requests this change names, or `None` for [`Change::All`] (every request).
    ///
    /// ```
    /// use component_model_async::Change;
    ///
    /// assert_eq!(Change::Changed(vec![1, 3]).indices(), Some(&[1, 3][..]));
    /// assert_eq!(Change::All.indices(), None);
    /// ```
    pub fn indices(&self) -> Option<&[usize]> {
        match self {
            Change::Changed(ix) => Some(ix),
            Change::All => None,
            Change::Value { index, .. } => Some(std::slice::from_ref(index)),
        }
    }
}

/// Where a value stands in its backend's history: the revision a [`Change::Value`] carries.
///
/// Revisions say *which* version of a value arrived (for logs and for ordering); they never
/// contain the value itself. `Display` is short and stable: an index as its number, a log
/// position as `partition:offset`, a digest as lowercase hex.
///
/// ```
/// use component_model_async::Revision;
///
/// // Consul's X-Consul-Index / ModifyIndex, a Vault KV v2 version, a NATS/etcd revision:
/// assert_eq!(Revision::Index(42).to_string(), "42");
/// // A Kafka record: partition 3, offset 1207.
/// assert_eq!(Revision::Offset { partition: 3, offset: 1207 }.to_string(), "3:1207");
/// // A file's content digest.
/// assert_eq!(Revision::Digest(vec![0xde, 0xad, 0x01]).to_string(), "dead01");
/// assert!(Revision::Index(7) < Revision::Index(9));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Revision {
    /// A counter that grows with every write: Consul's `ModifyIndex` / `X-Consul-Index`, a
    /// Vault KV v2 version, a NATS JetStream sequence, an etcd revision.
    Index(u64),
    /// A position in a partitioned log: a Kafka partition and the record's offset in it.
    Offset {
        /// The partition.
        partition: i32,
        /// The record's offset in the partition.
        offset: i64,
    },
    /// A digest of the content (a file's hash). Comparable for equality only: a different
    /// digest says the content changed, not which one is newer.
    Digest(Vec<u8>),
}

impl fmt::Display for Revision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Revision::Index(i) => write!(f, "{i}"),
            Revision::Offset { partition, offset } => write!(f, "{partition}:{offset}"),
            Revision::Digest(d) => d.iter().try_for_each(|b| write!(f, "{b:02x}")),
        }
    }
}

/// The stream [`Source::watch`](crate::Source::watch) returns; an `Err` item says the watch broke (the watcher
/// decides whether to watch again).
pub type Changes = futures::stream::BoxStream<'static, Result<Change, SourceError>>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revision_display_and_debug_show_no_value() {
        assert_eq!(Revision::Index(0).to_string(), "0");
        assert_eq!(
            Revision::Offset {
                partition: 0,
                offset: -1
            }
            .to_string(),
            "0:-1"
        );
        assert_eq!(Revision::Digest(vec![]).to_string(), "");
        let c = Change::Value {
            index: 2,
            value: RawValue::from("s3cr3t-value"),
            revision: Some(Revision::Index(9)),
        };
        let dbg = format!("{c:?}");
        assert!(!dbg.contains("s3cr3t"), "{dbg}");
        assert!(dbg.contains("Index(9)"), "{dbg}");
        assert_eq!(c.indices(), Some(&[2][..]));
        assert_eq!(c.clone(), c);
    }
}
