//! Redis streams as a push source: `stream_from = "redis", topic = "config:app"`.
//!
//! A stream (`XADD`) rather than pub/sub: a stream keeps its entries, so the start-up
//! read has a value (`XREVRANGE <topic> + - COUNT 1`, the last entry) and a watch follows
//! it from the last entry ID it saw (`XREAD BLOCK ... STREAMS <topic> <id>`, on a
//! connection of its own). After a lost connection it reads the last entry again: when
//! entries were added during the outage, the newest is applied (a value, not a log: the
//! older ones are not applied one by one). Pub/sub delivers only to connected
//! subscribers and keeps nothing, so it has no start-up value and loses what is published
//! while reconnecting.
//!
//! An entry's value: the member named by `field = "..."`; else the only member of an
//! entry with one (`XADD config:app * value '{"port":8080}'`); else all members as a JSON
//! object of strings.

use futures::StreamExt;
use redis::Value;

use super::source::RedisSource;
use crate::error::{ErrorKind, SourceError};
use crate::fetchers::stream::{self, Feed, Message};
use crate::source::{Change, Changes, FetchRequest, RawValue};

/// How long one `XREAD BLOCK` waits at most, in milliseconds.
const BLOCK_MS: u64 = 5_000;

/// One stream entry: its ID and members.
struct Entry {
    id: String,
    members: Vec<(String, Value)>,
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::BulkString(b) => Some(String::from_utf8_lossy(b).into_owned()),
        Value::SimpleString(s) => Some(s.clone()),
        _ => None,
    }
}

/// `[id, [member, value, ...]]`.
fn entry(v: Value) -> Option<Entry> {
    let Value::Array(mut parts) = v else {
        return None;
    };
    if parts.len() != 2 {
        return None;
    }
    let fields = parts.pop()?;
    let id = text(&parts.pop()?)?;
    let flat = match fields {
        Value::Array(flat) => flat,
        Value::Map(pairs) => pairs.into_iter().flat_map(|(k, v)| [k, v]).collect(),
        _ => return None,
    };
    let mut members = Vec::with_capacity(flat.len() / 2);
    let mut flat = flat.into_iter();
    while let (Some(k), Some(v)) = (flat.next(), flat.next()) {
        members.push((text(&k)?, v));
    }
    Some(Entry { id, members })
}

/// An entry as the request's value.
fn value(request: &FetchRequest, topic: &str, entry: Entry) -> Message {
    let raw = |v: Value| match v {
        Value::BulkString(b) => Ok(stream::body(b)),
        other => text(&other).map(RawValue::Text).ok_or_else(|| {
            SourceError::new(ErrorKind::Decode).with_message(format!(
                "stream `{topic}`: entry {} holds a member that is not a string",
                entry.id
            ))
        }),
    };
    if let Some(member) = request.select() {
        let id = entry.id.clone();
        return match entry.members.into_iter().find(|(k, _)| k == member) {
            Some((_, v)) => raw(v),
            None => Err(SourceError::not_found().with_message(format!(
                "stream `{topic}`: the last entry ({id}) has no member `{member}`"
            ))),
        };
    }
    if entry.members.len() == 1 {
        let (_, v) = entry.members.into_iter().next().expect("one member");
        return raw(v);
    }
    let object: serde_json::Map<String, serde_json::Value> = entry
        .members
        .iter()
        .map(|(k, v)| {
            (
                k.clone(),
                serde_json::Value::String(text(v).unwrap_or_default()),
            )
        })
        .collect();
    Ok(RawValue::Json(serde_json::Value::Object(object)))
}

impl RedisSource {
    /// The start-up read of stream requests: the last entry of each, in one pipeline.
    pub(super) async fn read_streams(
        &self,
        requests: &[&FetchRequest],
    ) -> Vec<Result<RawValue, SourceError>> {
        let mut pipe = ::redis::pipe();
        pipe.ignore_errors();
        for r in requests {
            pipe.cmd("XREVRANGE")
                .arg(r.topic().unwrap_or_default())
                .arg("+")
                .arg("-")
                .arg("COUNT")
                .arg(1);
        }
        let replies = match self.round_trip(&pipe, "XREVRANGE").await {
            Ok(r) => r,
            Err(e) => return requests.iter().map(|_| Err(e.clone())).collect(),
        };
        let mut replies = replies.into_iter();
        requests
            .iter()
            .map(|r| {
                let topic = r.topic().unwrap_or_default();
                match replies.next() {
                    Some(Ok(Value::Array(mut entries))) => match entries.pop().and_then(entry) {
                        Some(e) => value(r, topic, e),
                        None => Err(SourceError::not_found().with_message(format!(
                            "redis stream `{topic}` has no entry (or there is no such key)"
                        ))),
                    },
                    Some(Ok(_)) => Err(SourceError::new(ErrorKind::Decode)
                        .with_message(format!("redis answered XREVRANGE `{topic}` oddly"))),
                    Some(Err(e)) if e.code() == Some("WRONGTYPE") => {
                        Err(SourceError::new(ErrorKind::Decode).with_message(format!(
                            "key `{topic}` is not a stream (WRONGTYPE): `topic` reads a Redis stream (XADD); read a string with `key`"
                        )))
                    }
                    Some(Err(e)) => Err(SourceError::new(ErrorKind::Unavailable)
                        .with_message(format!("redis at {}, XREVRANGE `{topic}`: {e}", self.address()))),
                    None => Err(SourceError::new(ErrorKind::Unavailable)
                        .with_message("redis answered fewer commands than were sent")),
                }
            })
            .collect()
    }

    /// The last entry ID of `topic` (`0-0` for an empty or missing stream).
    async fn last_id(&self, topic: &str) -> Result<(String, Option<Entry>), SourceError> {
        let mut pipe = ::redis::pipe();
        pipe.cmd("XREVRANGE")
            .arg(topic)
            .arg("+")
            .arg("-")
            .arg("COUNT")
            .arg(1);
        match self.round_trip(&pipe, "XREVRANGE").await?.pop() {
            Some(Ok(Value::Array(mut entries))) => match entries.pop().and_then(entry) {
                Some(e) => Ok((e.id.clone(), Some(e))),
                None => Ok(("0-0".to_owned(), None)),
            },
            Some(Ok(_)) | None => Ok(("0-0".to_owned(), None)),
            Some(Err(e)) => Err(
                SourceError::new(ErrorKind::Unavailable).with_message(format!(
                    "redis at {}, XREVRANGE `{topic}`: {e}",
                    self.address()
                )),
            ),
        }
    }

    /// Follows one stream until nobody watches: XREAD BLOCK on a connection of its own
    /// (a blocking command would hold up the shared one), from the last entry seen.
    async fn subscribe_stream(self, feed: Feed) {
        let request = feed.request().clone();
        let topic = request.topic().unwrap_or_default().to_owned();
        // The last entry ID seen, kept across attempts.
        let position = tokio::sync::Mutex::new(None::<String>);
        let what = format!("redis stream {topic}");
        stream::reconnecting(&feed, &what, || async {
            let mut position = position.lock().await;
            self.follow(&feed, &request, &topic, &mut position).await
        })
        .await;
    }

    /// One connection's worth of following; `Ok(true)` when nobody watches any more.
    ///
    /// It starts with the stream's last entry: at the first start that is the current
    /// value; after a reconnect, when entries were added meanwhile, only the newest of
    /// them is applied (not every old one in turn).
    async fn follow(
        &self,
        feed: &Feed,
        request: &FetchRequest,
        topic: &str,
        position: &mut Option<String>,
    ) -> Result<bool, SourceError> {
        let (id, last) = self.last_id(topic).await?;
        match last {
            Some(e) if position.as_deref() != Some(id.as_str()) => {
                if !feed.push(value(request, topic, e)) {
                    return Ok(true);
                }
            }
            Some(_) => {}
            None => feed.none_yet(SourceError::not_found().with_message(format!(
                "redis stream `{topic}` has no entry (or there is no such key)"
            ))),
        }
        *position = Some(id);
        let own = self.dedicated().await?;
        let mut connection = own.multiplexed;
        let block = BLOCK_MS
            .min(self.response_timeout().as_millis() as u64 / 2)
            .max(1);
        loop {
            let from = position.clone().unwrap_or_else(|| "$".to_owned());
            let mut cmd = ::redis::cmd("XREAD");
            // A few entries per reply: each is bounded by the source's reply bound.
            cmd.arg("COUNT")
                .arg(16)
                .arg("BLOCK")
                .arg(block)
                .arg("STREAMS")
                .arg(topic)
                .arg(&from);
            let reply = tokio::select! {
                _ = feed.closed() => return Ok(true),
                r = cmd.query_async::<Value>(&mut connection) => r,
            };
            let reply = match reply {
                Ok(v) => v,
                Err(e) => {
                    let e = self.error(&e, &own.exceeded, &format!("XREAD `{topic}`"));
                    if e.kind() == ErrorKind::TooLarge {
                        // The newest entry is read again (and refused again) after the
                        // backoff, until a new one arrives.
                        *position = None;
                    }
                    return Err(e);
                }
            };
            // `[[topic, [entry, ...]]]` (RESP2) or `{topic: [entry, ...]}` (RESP3); nil
            // when the block timed out.
            let entries = match reply {
                Value::Nil => continue,
                Value::Array(mut streams) => match streams.pop() {
                    Some(Value::Array(mut pair)) if pair.len() == 2 => pair.pop(),
                    _ => None,
                },
                Value::Map(mut pairs) => pairs.pop().map(|(_, v)| v),
                _ => None,
            };
            let odd = || {
                SourceError::new(ErrorKind::Decode).with_message(format!(
                    "redis at {} answered XREAD `{topic}` with a reply that is not stream entries",
                    self.address()
                ))
            };
            let Some(Value::Array(entries)) = entries else {
                return Err(odd());
            };
            let mut newest = None;
            for e in entries.into_iter().filter_map(entry) {
                *position = Some(e.id.clone());
                newest = Some(e);
            }
            match newest {
                Some(e) => {
                    if !feed.push(value(request, topic, e)) {
                        return Ok(true);
                    }
                }
                // Entries that do not parse: never the same read again at once.
                None => return Err(odd()),
            }
        }
    }

    /// The watch of stream requests (by their positions in the watched list).
    pub(super) fn watch_streams(
        &self,
        requests: Vec<FetchRequest>,
        positions: Vec<usize>,
    ) -> Changes {
        let this = self.clone();
        stream::watch_pushed(self.latest(), requests, move |feed| {
            this.clone().subscribe_stream(feed)
        })
        .map(move |change| match change {
            Ok(Change::Changed(ix)) => Ok(Change::Changed(
                ix.into_iter()
                    .filter_map(|i| positions.get(i).copied())
                    .collect(),
            )),
            Ok(Change::Value {
                index,
                value,
                revision,
            }) => match positions.get(index) {
                Some(&index) => Ok(Change::Value {
                    index,
                    value,
                    revision,
                }),
                None => Ok(Change::Changed(Vec::new())),
            },
            other => other,
        })
        .boxed()
    }
}
