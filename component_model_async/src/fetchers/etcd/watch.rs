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
//!   (1 s doubling to 30 s, jitter; back to none once a stream stayed up for 10 s) from
//!   the revision after the last event seen: every change arrives once, in order. The
//!   watch asks for progress notifications (etcd sends one every 10 minutes by default,
//!   `--experimental-watch-progress-notify-interval`), which move that revision forward
//!   on an idle watch; a stream with nothing on it for [`IDLE`] (longer than that
//!   interval) is opened again likewise, so a server gone without closing the connection
//!   is noticed. A line must arrive whole within the source's timeout from its first
//!   byte: a stream trickling one is opened again.
//! * A start revision etcd has compacted away is one [`Change::All`] (everything is read
//!   again, at or after the current revision, asked with a `count_only` range of a
//!   watched key) and the watch goes on after that revision: no event of before it is
//!   replayed. A line longer than the source's `max_body` is handled alike (its events
//!   are skipped, everything is read again). Either repeated without an event in between
//!   waits with the same backoff.
//! * etcd refusing the watch (`permission denied`: with RBAC the user needs read access
//!   to the whole range, from the smallest watched key to the end of the largest) ends the
//!   watch with [`ErrorKind::Unauthorized`] naming the range; a cancel for a reason this
//!   client does not know ends it with [`ErrorKind::Unavailable`] naming the reason.
//! * The stream is read on the runtime that polls the [`Changes`] (the caller's), not on
//!   the transport's threads; nothing is spawned: dropping the stream closes the
//!   connection. A flood of lines yields to the runtime as tokio's cooperative budget
//!   says (every 128 lines at most).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use futures::StreamExt;
use reqwest::header::HeaderValue;
use serde::Deserialize;

use super::source::{
    CONNECT_MARGIN, EtcdSource, I64, Kv, Op, b64, cannot_connect, decode_value, no_gateway,
    no_gateway_error, unb64,
};
use crate::error::{ErrorKind, SourceError};
use crate::fetchers::transport;
use crate::source::{Change, Changes, FetchRequest, Revision};
use crate::source_support::redact_url;

/// A watch stream with nothing on it for this long is opened again (from the revision
/// after the last event: nothing is lost), so a server that vanished without closing the
/// connection is noticed. Longer than etcd's default progress notification interval
/// (10 minutes), so an idle watch on a default etcd is not reopened for nothing.
const IDLE: Duration = Duration::from_secs(11 * 60);

/// How long a watch's stream may stay open at all (reqwest's per-request timeout).
const STREAM_LIFETIME: Duration = Duration::from_secs(365 * 24 * 3600);

/// A stream that stayed open this long was healthy: its end starts the backoff afresh.
const HEALTHY: Duration = Duration::from_secs(10);

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
    created: bool,
    #[serde(default)]
    canceled: bool,
    #[serde(default)]
    compact_revision: Option<I64>,
    #[serde(default)]
    cancel_reason: Option<String>,
    #[serde(default)]
    events: Vec<Event>,
}

#[derive(Deserialize, Default)]
struct HeaderRev {
    #[serde(default)]
    revision: Option<I64>,
}

#[derive(Deserialize)]
struct Event {
    #[serde(default, rename = "type")]
    kind: Option<String>,
    kv: Option<Kv>,
}

fn backoff(failures: u32) -> Duration {
    crate::resilience::retry::reconnect_delay(Duration::from_secs(1), failures)
}

/// A key range as text for messages: `[key, end)`.
fn describe_range(key: &[u8], end: &[u8]) -> String {
    let end = if end == [0] {
        "the last key".to_owned()
    } else {
        format!("`{}`", String::from_utf8_lossy(end).escape_debug())
    };
    format!(
        "`{}` up to {end}",
        String::from_utf8_lossy(key).escape_debug()
    )
}

/// An open watch stream: the response and the bytes of lines not handled yet.
struct Open {
    response: reqwest::Response,
    buf: Vec<u8>,
    /// Where the next line starts in `buf` (what is before it was handled).
    start: usize,
    /// How much of `buf` is known to hold no newline.
    scanned: usize,
    /// When the first byte of the line being received arrived.
    line_since: Option<Instant>,
    /// When etcd said the watch was created.
    created: Option<Instant>,
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
    /// Streams that failed in a row (the backoff before the next).
    failures: u32,
    /// Everything is to be read again (compacted, or a line too long): the current
    /// revision is asked before opening again.
    resync: bool,
    /// Re-reads in a row without an event between them (the backoff before the next).
    resyncs: u32,
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
        resync: false,
        resyncs: 0,
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
                let wait = if s.failures > 0 {
                    Some(backoff(s.failures - 1))
                } else if s.resync && s.resyncs > 0 {
                    Some(backoff(s.resyncs - 1))
                } else {
                    None
                };
                if let Some(wait) = wait {
                    tokio::time::sleep(wait).await;
                }
                let opened = if s.resync {
                    s.resync().await
                } else {
                    s.start().await
                };
                if let Err(e) = opened {
                    // A refused token is asked again once; refused again, the watch ends.
                    let retry_auth = e.kind() == ErrorKind::Unauthorized && !s.auth_retried;
                    if e.kind().is_transient() || retry_auth {
                        if retry_auth {
                            s.refresh = true;
                            s.auth_retried = true;
                        }
                        s.failures = s.failures.saturating_add(1);
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
    /// Everything is read again: the current revision is asked (a `count_only` range of
    /// a watched key), every request counts as read at it, the watch goes on after it,
    /// and one [`Change::All`] is handed on.
    async fn resync(&mut self) -> Result<(), SourceError> {
        let key = self
            .targets
            .first()
            .map(|t| t.key.clone())
            .unwrap_or_default();
        let now = self.source.current_revision(&key).await?;
        for t in &mut self.targets {
            t.read_at = t.read_at.max(now);
        }
        self.next = self.next.max(now.saturating_add(1));
        self.resync = false;
        self.resyncs = self.resyncs.saturating_add(1);
        self.queue.push_back(Ok(Change::All));
        Ok(())
    }

    /// Opens the stream from `next` (the revision after the reads, at first).
    async fn start(&mut self) -> Result<(), SourceError> {
        if self.next == 0 {
            // Requests not read through this source (or forgotten) are watched from now
            // on; the others from after the revision they were read at.
            if let Some(unread) = self.targets.iter().find(|t| t.read_at == 0) {
                let key = unread.key.clone();
                let now = self.source.current_revision(&key).await?;
                for t in self.targets.iter_mut().filter(|t| t.read_at == 0) {
                    t.read_at = now;
                }
            }
            let read = self.targets.iter().map(|t| t.read_at).min().unwrap_or(0);
            self.next = read.saturating_add(1);
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
            "progress_notify": true,
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
            let within = limits.timeout.saturating_add(CONNECT_MARGIN);
            let sent = tokio::time::timeout(within, request.send()).await;
            let response = match sent {
                Err(_) => Err(SourceError::new(ErrorKind::Timeout).with_message(format!(
                    "no response from {} within {}",
                    redact_url(url.as_str()),
                    crate::error::humanize(limits.timeout)
                ))),
                Ok(Err(e)) if e.is_connect() => {
                    // A connect timeout too: the next endpoint is tried.
                    let why = transport::root_cause(&e);
                    Err(
                        SourceError::new(ErrorKind::Unavailable).with_message(format!(
                            "cannot connect to {}: {why}",
                            redact_url(url.as_str())
                        )),
                    )
                }
                Ok(r) => r.map_err(|e| transport::transport_error(e, url.as_str(), limits, false)),
            };
            match response {
                Ok(response) if response.status().is_success() => {
                    self.source.answered(at);
                    self.auth_retried = false;
                    self.open = Some(Open {
                        response,
                        buf: Vec::new(),
                        start: 0,
                        scanned: 0,
                        line_since: None,
                        created: None,
                        endpoint,
                    });
                    return Ok(());
                }
                Ok(response) if no_gateway(response.status()) => {
                    return Err(no_gateway_error(response.status(), &endpoint, "/v3/watch"));
                }
                Ok(response) => {
                    let status = response.status();
                    let e = SourceError::new(transport::status_kind(status)).with_message(format!(
                        "HTTP {status} from etcd at {} when opening a watch",
                        redact_url(&endpoint)
                    ));
                    if !status.is_server_error() {
                        return Err(e);
                    }
                    tracing::debug!(endpoint = %redact_url(&endpoint), %status, "etcd endpoint refused to open the watch; trying the next");
                    last = Some(e);
                }
                Err(e) if cannot_connect(&e) || e.kind() == ErrorKind::Timeout => {
                    tracing::debug!(endpoint = %redact_url(&endpoint), error = %e, "etcd endpoint did not open the watch; trying the next");
                    last = Some(e);
                }
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| SourceError::new(ErrorKind::Unavailable)))
    }

    /// The stream ended (broke off, idle, or a line late): it is opened again, after a
    /// backoff unless it had been up long enough to count as healthy.
    fn broke_off(&mut self) {
        let healthy = self
            .open
            .as_ref()
            .and_then(|o| o.created)
            .is_some_and(|c| c.elapsed() >= HEALTHY);
        self.open = None;
        self.failures = if healthy {
            1
        } else {
            self.failures.saturating_add(1)
        };
    }

    /// Reads the stream up to the next complete line and handles it (or notes that the
    /// stream broke off: it is opened again after a backoff).
    async fn read_line(&mut self) {
        let max = self.source.max_body();
        let line_timeout = self.source.client().limits().timeout;
        loop {
            let Some(open) = self.open.as_mut() else {
                return;
            };
            let from = open.start.max(open.scanned);
            if let Some(at) = open.buf[from..].iter().position(|&b| b == b'\n') {
                let (start, stop) = (open.start, from + at);
                open.start = stop + 1;
                open.scanned = open.start;
                open.line_since = None;
                // A flood of lines (each a poll's worth of work) gives the runtime back its
                // thread when the task's budget is spent.
                tokio::task::consume_budget().await;
                let Some(open) = self.open.as_mut() else {
                    return;
                };
                let line = &open.buf[start..stop];
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                let line = line.to_vec();
                self.handle(&line);
                return;
            }
            open.scanned = open.buf.len();
            if open.buf.len() - open.start > max {
                let endpoint = redact_url(&open.endpoint);
                tracing::warn!(%endpoint, max, "a line of the etcd watch stream is longer than max_body; its events are skipped and everything is read again");
                self.open = None;
                self.resync = true;
                return;
            }
            // Everything before `start` was handled: dropped once per chunk.
            if open.start > 0 {
                open.buf.drain(..open.start);
                open.scanned -= open.start;
                open.start = 0;
            }
            // A line begun must arrive whole within the timeout; between lines the
            // stream may be idle for IDLE.
            let wait = match open.line_since {
                Some(since) => line_timeout.saturating_sub(since.elapsed()),
                None => IDLE,
            };
            match tokio::time::timeout(wait, open.response.chunk()).await {
                Ok(Ok(Some(chunk))) => {
                    if open.line_since.is_none() && !chunk.is_empty() {
                        open.line_since = Some(Instant::now());
                    }
                    open.buf.extend_from_slice(&chunk);
                }
                Ok(Ok(None)) | Ok(Err(_)) => {
                    tracing::debug!(endpoint = %redact_url(&open.endpoint), "the etcd watch stream broke off; reconnecting");
                    self.broke_off();
                    return;
                }
                Err(_) if open.line_since.is_some() => {
                    tracing::debug!(endpoint = %redact_url(&open.endpoint), "a line of the etcd watch stream did not arrive whole within the timeout; reconnecting");
                    self.broke_off();
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
            self.broke_off();
            return;
        }
        let Some(result) = parsed.result else { return };
        let compacted = result.compact_revision.map_or(0, |r| r.0);
        if compacted > 0 {
            // What happened since `next` is gone: read everything again, at the current
            // revision, and go on after it (see `resync`).
            tracing::debug!(%endpoint, compacted, "the etcd watch's start revision was compacted; reading everything again");
            self.open = None;
            self.resync = true;
            return;
        }
        if result.created
            && let Some(open) = self.open.as_mut()
        {
            open.created = Some(Instant::now());
        }
        let mut last = 0;
        let no_events = result.events.is_empty();
        for event in result.events {
            let Some(kv) = event.kv else { continue };
            let revision = kv.mod_revision();
            last = last.max(revision);
            let Some(key) = unb64(&kv.key) else { continue };
            let deleted = event.kind.as_deref() == Some("DELETE");
            let value = if deleted {
                None
            } else {
                decode_value(kv.value.as_deref())
            };
            let mut changed = Vec::new();
            for t in self
                .targets
                .iter()
                .filter(|t| t.covers(&key) && revision > t.read_at)
            {
                match (&t.end, &value) {
                    (None, Some(value)) => self.queue.push_back(Ok(Change::Value {
                        index: t.index,
                        value: value.clone(),
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
            self.next = self.next.max(last.saturating_add(1));
            self.failures = 0;
            self.resyncs = 0;
        } else if no_events && !result.created && !result.canceled {
            // A progress notification: every event up to its revision was sent.
            let at = result.header.and_then(|h| h.revision).map_or(0, |r| r.0);
            if at > 0 {
                self.next = self.next.max(at.saturating_add(1));
            }
        }
        if result.canceled {
            let reason: String = result
                .cancel_reason
                .unwrap_or_default()
                .chars()
                .take(300)
                .collect();
            let range = describe_range(&self.key, &self.end);
            if reason.contains("permission denied") {
                self.open = None;
                self.done = true;
                self.queue.push_back(Err(SourceError::new(ErrorKind::Unauthorized).with_message(
                    format!(
                        "etcd at {endpoint} refused to watch the keys from {range} ({reason}): the user needs read permission on that whole range (every watched key and prefix of the source, in one watch)"
                    ),
                )));
            } else if reason.contains("auth") {
                tracing::debug!(%endpoint, %reason, "etcd canceled the watch; authenticating and opening it again");
                self.refresh = true;
                self.broke_off();
            } else {
                self.open = None;
                self.done = true;
                let reason = if reason.is_empty() {
                    "no reason given".to_owned()
                } else {
                    reason
                };
                self.queue
                    .push_back(Err(SourceError::new(ErrorKind::Unavailable).with_message(
                    format!(
                        "etcd at {endpoint} canceled the watch of the keys from {range}: {reason}"
                    ),
                )));
            }
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
    }
}
