//! What the push sources (`stream_from`: Kafka, NATS, websockets, Redis streams) share.
//!
//! A push source answers a fetch with the latest message of its stream. While a
//! [`Live`](crate::Live) watches a request, the watch's subscription keeps that latest
//! message here ([`Latest`]), and each new one is a [`Change::Value`] of the request
//! carrying the message (and its revision where the broker has one: a Kafka offset, a
//! JetStream sequence): the `Live` applies it (after its quiescence window, so a burst
//! is one update, the newest message) without reading the broker. A message that cannot
//! be a value (too large, a deleted key) is a [`Change::Changed`]: the `Live` fetches the
//! request, and the fetch answers from here — the same error, with no read of the
//! broker. Without a watch, a fetch reads the broker (the start-up read: the last
//! message the broker keeps, or the first one within a deadline).
//!
//! A subscription runs as one task per watched request, reconnecting with a backoff on
//! its own (the last message stays the value meanwhile); it ends when the `Live` stops
//! watching (the [`Changes`] stream is dropped).

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures::Stream;
use tokio::sync::mpsc;

use crate::error::SourceError;
use crate::source::{Change, Changes, FetchRequest, RawValue, Revision};

/// How long a start-up read waits for a first message where the broker keeps none
/// (a websocket, a core NATS subject), by default.
#[cfg_attr(
    not(any(feature = "websocket", feature = "nats", feature = "mqtt")),
    allow(dead_code)
)]
pub const DEFAULT_FIRST_MESSAGE: Duration = Duration::from_secs(10);

/// A message's value, or why it cannot be one (too large, a deleted key): either is
/// what a fetch of the request answers until the next message.
pub(crate) type Message = Result<RawValue, SourceError>;

/// The latest message of each watched request of one source. A request a watch holds
/// but has no message for yet (its subscription is starting) is read from the broker.
#[derive(Default)]
pub(crate) struct Latest {
    held: Mutex<HashMap<FetchRequest, Held>>,
}

struct Held {
    /// How many watches hold the request.
    watches: usize,
    /// The latest message, once one arrived.
    message: Option<Message>,
    /// Its revision (where the broker has one).
    revision: Option<Revision>,
}

impl Latest {
    /// The latest message of `request`, when a watch holds one.
    pub(crate) fn get(&self, request: &FetchRequest) -> Option<Message> {
        let held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        held.get(request)?.message.clone()
    }

    /// The latest message of `request` as a change of watched request `index`: its value,
    /// or (no value: an error, nothing yet) `None`, to read it.
    fn change(&self, request: &FetchRequest, index: usize) -> Option<Change> {
        let held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        let h = held.get(request)?;
        match &h.message {
            Some(Ok(value)) => Some(Change::Value {
                index,
                value: value.clone(),
                revision: h.revision.clone(),
            }),
            _ => None,
        }
    }

    fn set(
        &self,
        request: &FetchRequest,
        message: Message,
        revision: Option<Revision>,
        replace: bool,
    ) {
        let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(h) = held.get_mut(request)
            && (replace || h.message.is_none())
        {
            h.message = Some(message);
            h.revision = revision;
        }
    }

    fn hold(self: &Arc<Self>, request: &FetchRequest) -> Holding {
        let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        held.entry(request.clone())
            .or_insert(Held {
                watches: 0,
                message: None,
                revision: None,
            })
            .watches += 1;
        Holding {
            latest: self.clone(),
            request: request.clone(),
        }
    }
}

/// A watch's hold on one request: the message is forgotten when the last hold ends.
struct Holding {
    latest: Arc<Latest>,
    request: FetchRequest,
}

impl Drop for Holding {
    fn drop(&mut self) {
        let mut held = self
            .latest
            .held
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(h) = held.get_mut(&self.request) {
            h.watches -= 1;
            if h.watches == 0 {
                held.remove(&self.request);
            }
        }
    }
}

/// What a subscription task uses to hand on messages.
pub(crate) struct Feed {
    index: usize,
    request: FetchRequest,
    latest: Arc<Latest>,
    tx: mpsc::Sender<usize>,
    /// Failed attempts in a row (reset by every message), for the reconnect backoff.
    failures: AtomicU32,
}

impl Feed {
    /// The request this subscription serves.
    pub(crate) fn request(&self) -> &FetchRequest {
        &self.request
    }

    /// Keeps `message` as the request's latest and says it changed. `false` when nobody
    /// watches any more (the subscription should end).
    pub(crate) fn push(&self, message: Message) -> bool {
        self.push_at(message, None)
    }

    /// [`push`](Self::push) with the message's revision in the broker (a Kafka offset,
    /// a JetStream sequence), handed on with the value.
    pub(crate) fn push_at(&self, message: Message, revision: Option<Revision>) -> bool {
        if message.is_ok() {
            // A message arrived: the subscription is healthy again.
            self.failures.store(0, Ordering::Relaxed);
        }
        self.latest.set(&self.request, message, revision, true);
        // A signal already waiting makes the same refresh read this message: a full
        // channel loses nothing.
        !matches!(
            self.tx.try_send(self.index),
            Err(mpsc::error::TrySendError::Closed(_))
        )
    }

    /// Says the broker has no message for the request yet (`why`, a `not found`), when no
    /// message arrived: fetches answer that instead of reading the broker again (a
    /// websocket or core NATS subject would make each one wait for a first message).
    /// No change is signalled.
    pub(crate) fn none_yet(&self, why: SourceError) {
        self.latest.set(&self.request, Err(why), None, false);
    }

    /// Whether nobody watches any more.
    #[cfg_attr(not(feature = "kafka"), allow(dead_code))]
    pub(crate) fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }

    /// Resolves when nobody watches any more.
    pub(crate) async fn closed(&self) {
        self.tx.closed().await
    }

    /// Waits `delay` (a reconnect backoff); `false` when the watch ended meanwhile.
    pub(crate) async fn pause(&self, delay: Duration) -> bool {
        tokio::select! {
            _ = self.tx.closed() => false,
            _ = tokio::time::sleep(delay) => true,
        }
    }
}

/// The watch of a push source: one subscription task per request (`run` gets its
/// [`Feed`]), each message a [`Change::Value`] of its request (its newest message when
/// several arrived meanwhile), or a [`Change::Changed`] when the message is no value (an
/// error to read). The tasks end when the returned stream is dropped.
pub(crate) fn watch_pushed<F, Fut>(
    latest: &Arc<Latest>,
    requests: Vec<FetchRequest>,
    run: F,
) -> Changes
where
    F: Fn(Feed) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = mpsc::channel(64);
    let mut holdings = Vec::with_capacity(requests.len());
    let mut tasks = Vec::with_capacity(requests.len());
    for (index, request) in requests.into_iter().enumerate() {
        holdings.push(latest.hold(&request));
        let feed = Feed {
            index,
            request,
            latest: latest.clone(),
            tx: tx.clone(),
            failures: AtomicU32::new(0),
        };
        tasks.push(crate::task::spawn(run(feed)));
    }
    Box::pin(Pushed {
        rx,
        tasks,
        holdings,
        queue: VecDeque::new(),
    })
}

struct Pushed {
    rx: mpsc::Receiver<usize>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    /// One per watched request, in order.
    holdings: Vec<Holding>,
    /// Changes taken from the channel and not handed on yet.
    queue: VecDeque<Change>,
}

impl Stream for Pushed {
    type Item = Result<Change, SourceError>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        let this = &mut *self;
        if let Some(change) = this.queue.pop_front() {
            return std::task::Poll::Ready(Some(Ok(change)));
        }
        match this.rx.poll_recv(cx) {
            std::task::Poll::Ready(Some(first)) => {
                let mut signalled = vec![first];
                while let Ok(i) = this.rx.try_recv() {
                    if !signalled.contains(&i) {
                        signalled.push(i);
                    }
                }
                // Each request's newest message, read now (a later one replaced those
                // signalled before it); those without a value are read by the watcher.
                let mut read = Vec::new();
                for i in signalled {
                    let held = this.holdings.get(i);
                    match held.and_then(|h| h.latest.change(&h.request, i)) {
                        Some(change) => this.queue.push_back(change),
                        None => read.push(i),
                    }
                }
                if !read.is_empty() {
                    this.queue.push_back(Change::Changed(read));
                }
                match this.queue.pop_front() {
                    Some(change) => std::task::Poll::Ready(Some(Ok(change))),
                    None => std::task::Poll::Ready(Some(Ok(Change::Changed(Vec::new())))),
                }
            }
            std::task::Poll::Ready(None) => std::task::Poll::Ready(None),
            std::task::Poll::Pending => std::task::Poll::Pending,
        }
    }
}

impl Drop for Pushed {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// The reconnect delay after `failures` failed attempts in a row (500 ms doubling to
/// 30 s, with jitter), as for every watch.
pub(crate) fn backoff(failures: u32) -> Duration {
    crate::resilience::retry::reconnect_delay(Duration::from_millis(500), failures)
}

/// A subscription's life: `attempt` (one connection's worth of following) again and
/// again until nobody watches — `Ok(true)` from it says so. Between attempts, a backoff
/// that grows with each attempt that ended without a message since the last one
/// ([`Feed::push`] of a message resets it). A message refused for its size is handed on
/// as the request's answer before the next attempt.
#[cfg_attr(
    not(any(
        feature = "websocket",
        feature = "nats",
        feature = "mqtt",
        feature = "redis"
    )),
    allow(dead_code)
)]
pub(crate) async fn reconnecting<F, Fut>(feed: &Feed, what: &str, mut attempt: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<bool, SourceError>>,
{
    loop {
        match attempt().await {
            Ok(true) => return,
            Ok(false) => {}
            Err(e) => {
                tracing::debug!(watch = what, error = %e, "a stream watch failed; watching again after a backoff");
                if e.kind() == crate::ErrorKind::TooLarge && !feed.push(Err(e)) {
                    return;
                }
            }
        }
        let failed = feed.failures.fetch_add(1, Ordering::Relaxed);
        if !feed.pause(backoff(failed)).await {
            return;
        }
    }
}

/// A raw message body as a value: text when it is UTF-8, bytes otherwise.
pub(crate) fn body(bytes: Vec<u8>) -> RawValue {
    RawValue::text_or_bytes(bytes)
}
