//! Watching etcd keys through the gateway's `/v3/watch`: ONE streaming request over the
//! smallest key range that holds every watched key and prefix, started at the revision
//! after the one the keys were read at, so nothing written since the read is missed.
//!
//! * Each PUT of a watched key is a [`Change::Value`] with its `mod_revision` for every
//!   request of that key (applied without reading etcd again); a DELETE a
//!   [`Change::Changed`] (the re-read finds the key absent, and the field's fallback
//!   applies); any event under a watched prefix a `Change::Changed` of that request.
//!   Events of other keys in the range are dropped; an event at or before the revision a
//!   request was read at is not handed on.
//! * The stream breaking off (the server restarted or gone) reconnects with a backoff
//!   (1 s doubling to 30 s, jitter) from the revision after the last event seen: every
//!   change arrives once, in order. A stream idle for [`IDLE`] is opened again likewise.
//! * A start revision etcd has compacted away is one [`Change::All`] (everything is read
//!   again) and the watch goes on from the revision etcd answered with.
//! * Each line of the stream is bounded by the source's `max_body`: a longer one ends the
//!   watch with [`ErrorKind::TooLarge`]. Nothing is spawned: dropping the stream closes
//!   the connection.

use std::collections::VecDeque;
use std::time::Duration;

use futures::StreamExt;
use reqwest::header::HeaderValue;
use serde::Deserialize;

use super::source::{EtcdSource, Kv, Op, b64, cannot_connect, decode_value, unb64};
use crate::error::{ErrorKind, SourceError};
use crate::fetchers::transport;
use crate::source::{Change, Changes, FetchRequest, Revision};
use crate::source_support::redact_url;

/// A watch stream with nothing on it for this long is opened again (from the revision
/// after the last event: nothing is lost), so a server that vanished without closing the
/// connection is noticed.
const IDLE: Duration = Duration::from_secs(300);

/// How long a watch's stream may stay open at all (reqwest's per-request timeout).
const STREAM_LIFETIME: Duration = Duration::from_secs(365 * 24 * 3600);

/// One watched request: its position, its key range and the revision it was read at.
struct Target {
    index: usize,
    key: Vec<u8>,
    /// `None`: one key; else the end of the prefix's range (`[0]`: every key).
    end: Option<Vec<u8>>,
    read_at: u64,
}

impl Target {
    fn covers(&self, key: &[u8]) -> bool {
        match &self.end {
            None => key == self.key.as_slice(),
            Some(end) => {
                key >= self.key.as_slice() && (end.as_slice() == [0] || key < end.as_slice())
            }
        }
    }
}

#[derive(Deserialize, Default)]
struct Line {
    #[serde(default)]
    result: Option<WatchResponse>,
    #[serde(default)]
    error: Option<serde_json::Value>,
}

#[derive(Deserialize, Default)]
struct WatchResponse {
    #[serde(default)]
    header: Option<HeaderRev>,
    #[serde(default)]
    canceled: bool,
    #[serde(default)]
    compact_revision: Option<serde_json::Value>,
    #[serde(default)]
    cancel_reason: Option<String>,
    #[serde(default)]
    events: Vec<Event>,
}

#[derive(Deserialize, Default)]
struct HeaderRev {
    #[serde(default)]
    revision: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct Event {
    #[serde(default, rename = "type")]
    kind: Option<String>,
    kv: Option<Kv>,
}

/// An int64 of the gateway (a string or a number), 0 when absent or not one.
fn int(v: Option<&serde_json::Value>) -> u64 {
    match v {
        Some(serde_json::Value::String(s)) => s.parse::<u64>().unwrap_or(0),
        Some(serde_json::Value::Number(n)) => n.as_u64().unwrap_or(0),
        _ => 0,
    }
}

fn backoff(failures: u32) -> Duration {
    crate::resilience::retry::reconnect_delay(Duration::from_secs(1), failures)
}

/// An open watch stream: the response and the bytes of a line not complete yet.
struct Open {
    response: reqwest::Response,
    buf: Vec<u8>,
    /// How much of `buf` is known to hold no newline.
    scanned: usize,
    endpoint: String,
}

struct State {
    source: EtcdSource,
    targets: Vec<Target>,
    /// The range watched.
    key: Vec<u8>,
    end: Vec<u8>,
    /// The revision the next stream starts at: after the last event seen.
    next: u64,
    failures: u32,
    queue: VecDeque<Result<Change, SourceError>>,
    open: Option<Open>,
    token: Option<HeaderValue>,
    /// A token refused: ask for a new one before opening again.
    refresh: bool,
    /// A refused token was asked again since the stream was last open.
    auth_retried: bool,
    done: bool,
}

/// [`Source::watch`](crate::Source::watch) of the etcd source.
pub(super) fn watch(
    source: EtcdSource,
    requests: Vec<FetchRequest>,
) -> Result<Changes, SourceError> {
    let mut targets = Vec::new();
    for (index, r) in requests.iter().enumerate() {
        let op = Op::of(r)?;
        let (key, end) = op.range();
        targets.push(Target {
            index,
            key,
            end,
            read_at: source.read_at(&op).unwrap_or(0),
        });
    }
    // The range from the smallest key to the end of the largest range.
    let key = targets
        .iter()
        .map(|t| t.key.clone())
        .min()
        .unwrap_or_default();
    let end = if targets.iter().any(|t| t.end.as_deref() == Some(&[0][..])) {
        vec![0]
    } else {
        targets
            .iter()
            .map(|t| match &t.end {
                Some(end) => end.clone(),
                None => {
                    let mut k = t.key.clone();
                    k.push(0);
                    k
                }
            })
            .max()
            .unwrap_or_else(|| vec![0])
    };
    let state = State {
        source,
        targets,
        key,
        end,
        next: 0,
        failures: 0,
        queue: VecDeque::new(),
        open: None,
        token: None,
        refresh: false,
        auth_retried: false,
        done: false,
    };
    Ok(futures::stream::unfold(state, |mut s| async move {
        loop {
            if let Some(item) = s.queue.pop_front() {
                return Some((item, s));
            }
            if s.done || s.targets.is_empty() {
                return None;
            }
            if s.open.is_none() {
                if s.failures > 0 {
                    tokio::time::sleep(backoff(s.failures - 1)).await;
                }
                if let Err(e) = s.start().await {
                    // A refused token is asked again once; refused again, the watch ends.
                    let retry_auth = e.kind() == ErrorKind::Unauthorized && !s.auth_retried;
                    if e.kind().is_transient() || retry_auth {
                        if retry_auth {
                            s.refresh = true;
                            s.auth_retried = true;
                        }
                        s.failures += 1;
                        tracing::debug!(error = %e, "opening an etcd watch failed; backing off");
                        continue;
                    }
                    s.done = true;
                    return Some((Err(e), s));
                }
                continue;
            }
            s.read_line().await;
        }
    })
    .boxed())
}

impl State {
    /// Opens the stream from `next` (the revision after the reads, at first).
    async fn start(&mut self) -> Result<(), SourceError> {
        if self.next == 0 {
            // Requests not read through this source (or forgotten) are watched from now
            // on; the others from after the revision they were read at.
            if self.targets.iter().any(|t| t.read_at == 0) {
                let now = self.source.current_revision().await?;
                for t in self.targets.iter_mut().filter(|t| t.read_at == 0) {
                    t.read_at = now;
                }
            }
            let read = self.targets.iter().map(|t| t.read_at).min().unwrap_or(0);
            self.next = read + 1;
        }
        if self.refresh || self.token.is_none() {
            self.token = if self.refresh {
                self.source.refresh(self.token.as_ref()).await?
            } else {
                self.source.token().await?
            };
            self.refresh = false;
        }
        let body = serde_json::json!({"create_request": {
            "key": b64(&self.key),
            "range_end": b64(&self.end),
            "start_revision": self.next.to_string(),
        }});
        let body = serde_json::to_vec(&body).unwrap_or_default();
        self.source.check_valid()?;
        let client = self.source.client().get().await?;
        let limits = self.source.client().limits();
        let mut last = None;
        let order: Vec<(usize, String)> = self
            .source
            .endpoint_order()
            .map(|(i, e)| (i, e.to_owned()))
            .collect();
        for (at, endpoint) in order {
            let url = transport::join_url(&endpoint, &["/v3/watch"], &[])?;
            let mut request = client
                .post(url.clone())
                .header("content-type", "application/json")
                .timeout(STREAM_LIFETIME)
                .body(body.clone());
            if let Some(token) = &self.token {
                request = request.header("Authorization", token.clone());
            }
            crate::metrics::round_trip();
            let sent = tokio::time::timeout(limits.timeout, request.send()).await;
            let response = match sent {
                Err(_) => Err(SourceError::new(ErrorKind::Timeout).with_message(format!(
                    "no response from {} within {}",
                    redact_url(url.as_str()),
                    crate::error::humanize(limits.timeout)
                ))),
                Ok(r) => r.map_err(|e| transport::transport_error(e, url.as_str(), limits, false)),
            };
            match response {
                Ok(response) if response.status().is_success() => {
                    self.source.answered(at);
                    self.auth_retried = false;
                    self.open = Some(Open {
                        response,
                        buf: Vec::new(),
                        scanned: 0,
                        endpoint,
                    });
                    return Ok(());
                }
                Ok(response) => {
                    let status = response.status();
                    let kind = transport::status_kind(status);
                    return Err(SourceError::new(kind).with_message(format!(
                        "HTTP {status} from etcd at {} when opening a watch",
                        redact_url(&endpoint)
                    )));
                }
                Err(e) if cannot_connect(&e) => last = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| SourceError::new(ErrorKind::Unavailable)))
    }

    /// Reads the stream up to the next complete line and handles it (or notes that the
    /// stream broke off: it is opened again after a backoff).
    async fn read_line(&mut self) {
        let max = self.source.max_body();
        let Some(open) = self.open.as_mut() else {
            return;
        };
        loop {
            if let Some(at) = open.buf[open.scanned..].iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = open.buf.drain(..=open.scanned + at).collect();
                open.scanned = 0;
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                self.handle(&line);
                return;
            }
            open.scanned = open.buf.len();
            if open.buf.len() > max {
                let endpoint = redact_url(&open.endpoint);
                self.open = None;
                self.done = true;
                self.queue.push_back(Err(SourceError::new(ErrorKind::TooLarge).with_message(
                    format!(
                        "a line of the watch stream from etcd at {endpoint} is longer than {}; the watch stopped (raise `with_max_body`)",
                        crate::error::bytes(max as u64)
                    ),
                )));
                return;
            }
            match tokio::time::timeout(IDLE, open.response.chunk()).await {
                Ok(Ok(Some(chunk))) => open.buf.extend_from_slice(&chunk),
                Ok(Ok(None)) | Ok(Err(_)) => {
                    tracing::debug!(endpoint = %redact_url(&open.endpoint), "the etcd watch stream broke off; reconnecting");
                    self.open = None;
                    self.failures += 1;
                    return;
                }
                Err(_) => {
                    // Idle: open it again from where it was (nothing is lost).
                    self.open = None;
                    return;
                }
            }
        }
    }

    /// One line of the stream.
    fn handle(&mut self, line: &[u8]) {
        let endpoint = self
            .open
            .as_ref()
            .map(|o| redact_url(&o.endpoint))
            .unwrap_or_default();
        let parsed: Line = match serde_json::from_slice(line) {
            Ok(l) => l,
            Err(e) => {
                self.open = None;
                self.done = true;
                self.queue
                    .push_back(Err(SourceError::new(ErrorKind::Decode).with_message(
                        format!(
                            "etcd at {endpoint} sent a watch line that is not a watch response: {}",
                            transport::json_error(&e)
                        ),
                    )));
                return;
            }
        };
        if let Some(error) = parsed.error {
            let message = error
                .get("message")
                .and_then(|m| m.as_str())
                .unwrap_or("")
                .chars()
                .take(300)
                .collect::<String>();
            tracing::debug!(%endpoint, %message, "etcd ended the watch with an error; reconnecting");
            if message.contains("auth token") || message.contains("user name is empty") {
                self.refresh = true;
            }
            self.open = None;
            self.failures += 1;
            return;
        }
        let Some(result) = parsed.result else { return };
        let compacted = int(result.compact_revision.as_ref());
        if compacted > 0 {
            // What happened since `next` is gone: read everything again, and go on from
            // the revision etcd is at.
            let now = int(result.header.as_ref().and_then(|h| h.revision.as_ref()));
            let from = now.max(compacted);
            tracing::debug!(%endpoint, compacted, from, "the etcd watch's start revision was compacted; reading everything again");
            for t in &mut self.targets {
                t.read_at = t.read_at.max(from);
            }
            self.next = from + 1;
            self.open = None;
            self.failures = 0;
            self.queue.push_back(Ok(Change::All));
            return;
        }
        let mut last = 0;
        for event in result.events {
            let Some(kv) = event.kv else { continue };
            let revision = kv.mod_revision();
            last = last.max(revision);
            let Some(key) = unb64(&kv.key) else { continue };
            let deleted = event.kind.as_deref() == Some("DELETE");
            let mut changed = Vec::new();
            for t in self
                .targets
                .iter()
                .filter(|t| t.covers(&key) && revision > t.read_at)
            {
                match (&t.end, deleted, decode_value(kv.value.as_deref())) {
                    (None, false, Some(value)) => self.queue.push_back(Ok(Change::Value {
                        index: t.index,
                        value,
                        revision: Some(Revision::Index(revision)),
                    })),
                    _ => changed.push(t.index),
                }
            }
            if !changed.is_empty() {
                self.queue.push_back(Ok(Change::Changed(changed)));
            }
        }
        if last > 0 {
            self.next = self.next.max(last + 1);
            self.failures = 0;
        }
        if result.canceled {
            let reason = result.cancel_reason.unwrap_or_default();
            tracing::debug!(%endpoint, %reason, "etcd canceled the watch; opening it again");
            if reason.contains("auth") {
                self.refresh = true;
            }
            self.open = None;
            self.failures += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_cover_their_keys() {
        let key = Target {
            index: 0,
            key: b"/a/b".to_vec(),
            end: None,
            read_at: 0,
        };
        assert!(key.covers(b"/a/b") && !key.covers(b"/a/bc"));
        let prefix = Target {
            index: 1,
            key: b"/a/".to_vec(),
            end: Some(b"/a0".to_vec()),
            read_at: 0,
        };
        assert!(prefix.covers(b"/a/x") && !prefix.covers(b"/a0") && !prefix.covers(b"/b"));
        let all = Target {
            index: 2,
            key: vec![0],
            end: Some(vec![0]),
            read_at: 0,
        };
        assert!(all.covers(b"anything"));
        assert_eq!(int(Some(&serde_json::json!("12"))), 12);
        assert_eq!(int(None), 0);
    }
}
