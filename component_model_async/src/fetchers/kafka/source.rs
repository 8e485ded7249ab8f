use std::sync::Arc;
use std::time::Duration;

use rskafka::BackoffConfig;
use rskafka::client::error::{Error as KafkaError, ProtocolError, ServerErrorResponse};
use rskafka::client::partition::{OffsetAt, PartitionClient, UnknownTopicHandling};
use rskafka::client::{Client, ClientBuilder};
use rskafka::record::RecordAndOffset;

use super::relay::Relay;
use crate::EnvSource;
use crate::error::{ErrorKind, SourceError};
use crate::fetchers::stream::{self, Feed, Latest, Message};
use crate::source::{
    Access, Changes, FetchRequest, Preflighting, Probe, RawValue, Revision, Source,
};

/// How many messages of each partition the start-up read looks at, by default.
pub const DEFAULT_LOOKBACK: i64 = 500;

/// The largest record value a [`KafkaSource`] accepts, by default (1 MiB).
pub const DEFAULT_MAX_MESSAGE: usize = 1024 * 1024;

/// How long one long poll of a watched topic waits for new records, by default.
pub const DEFAULT_LONG_POLL: Duration = Duration::from_millis(500);

/// The `kafka` push source (see the [module](crate::fetchers::kafka)).
///
/// ```
/// use component_model_async::{KafkaSource, Sources};
///
/// let kafka = KafkaSource::new(["127.0.0.1:9092"]).with_lookback(100);
/// let sources = Sources::new().register("kafka", kafka);
/// ```
#[derive(Clone)]
pub struct KafkaSource {
    inner: Arc<Inner>,
}

struct Inner {
    brokers: Vec<String>,
    lookback: i64,
    max_message: usize,
    timeout: Duration,
    long_poll: Duration,
    client: tokio::sync::Mutex<Option<Arc<Client>>>,
    /// The bounded relay every connection of the client goes through (started with the
    /// first client).
    relay: tokio::sync::OnceCell<Relay>,
    latest: Arc<Latest>,
}

impl std::fmt::Debug for KafkaSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaSource")
            .field("brokers", &self.inner.brokers)
            .field("lookback", &self.inner.lookback)
            .field("max_message", &self.inner.max_message)
            .finish_non_exhaustive()
    }
}

impl KafkaSource {
    /// A source for the cluster reachable at `brokers` (`host:port` each; the client
    /// learns the others from the metadata).
    pub fn new<I, S>(brokers: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        KafkaSource {
            inner: Arc::new(Inner {
                brokers: brokers
                    .into_iter()
                    .map(Into::into)
                    .map(|b| b.trim().to_owned())
                    .filter(|b| !b.is_empty())
                    .collect(),
                lookback: DEFAULT_LOOKBACK,
                max_message: DEFAULT_MAX_MESSAGE,
                timeout: Duration::from_secs(10),
                long_poll: DEFAULT_LONG_POLL,
                client: tokio::sync::Mutex::new(None),
                relay: tokio::sync::OnceCell::new(),
                latest: Arc::default(),
            }),
        }
    }

    /// The source `KAFKA_BROKERS` (comma-separated) describes, if it is set.
    pub fn from_env_source(env: &EnvSource) -> Option<Self> {
        let brokers = env.get("KAFKA_BROKERS")?;
        let source = KafkaSource::new(brokers.split(','));
        (!source.inner.brokers.is_empty()).then_some(source)
    }

    fn with(self, f: impl FnOnce(&mut Inner)) -> Self {
        let i = &self.inner;
        let mut inner = Inner {
            brokers: i.brokers.clone(),
            lookback: i.lookback,
            max_message: i.max_message,
            timeout: i.timeout,
            long_poll: i.long_poll,
            client: tokio::sync::Mutex::new(None),
            relay: tokio::sync::OnceCell::new(),
            latest: Arc::default(),
        };
        f(&mut inner);
        KafkaSource {
            inner: Arc::new(inner),
        }
    }

    /// How many messages of each partition the start-up read looks at (at least 1).
    #[must_use]
    pub fn with_lookback(self, messages: i64) -> Self {
        self.with(|i| i.lookback = messages.max(1))
    }

    /// The largest record value accepted.
    #[must_use]
    pub fn with_max_message(self, bytes: usize) -> Self {
        self.with(|i| i.max_message = bytes.max(1))
    }

    /// Limits connecting and each request (the client's own retries included), 10 s by
    /// default.
    #[must_use]
    pub fn with_timeout(self, timeout: Duration) -> Self {
        self.with(|i| i.timeout = timeout)
    }

    /// How long one poll of a watched topic waits for new records (500 ms by default,
    /// at least 10 ms). Apache Kafka answers a poll as soon as a record arrives; a broker
    /// that holds every poll for the whole wait (tansu does) delivers updates that much
    /// later, so a shorter wait trades requests for latency there.
    #[must_use]
    pub fn with_long_poll(self, wait: Duration) -> Self {
        self.with(|i| i.long_poll = wait.max(Duration::from_millis(10)))
    }

    /// The brokers, as given.
    pub fn brokers(&self) -> &[String] {
        &self.inner.brokers
    }
}

/// Where one watched partition stands, and its client (kept between polls, made again
/// after a failure).
struct Position {
    partition: i32,
    next: i64,
    client: Option<PartitionClient>,
}

/// A consumer's state between polls.
struct Following {
    positions: Vec<Position>,
    /// When the topic's partitions were last listed (new ones are read from their start).
    listed: tokio::time::Instant,
}

/// How often a consumer looks for partitions added to its topic.
const RELIST_EVERY: Duration = Duration::from_secs(30);

impl Inner {
    fn shown(&self) -> String {
        self.brokers.join(",")
    }

    /// The largest response frame the client reads: four times the largest message
    /// (a fetch response carries a batch and its framing), at least 1 MiB.
    fn frame_bound(&self) -> usize {
        self.max_message.saturating_mul(4).max(1 << 20)
    }

    /// The most a record batch may inflate to (gzip, snappy): four times the frame bound.
    fn batch_bound(&self) -> u64 {
        (self.frame_bound() as u64).saturating_mul(4)
    }

    /// Why `e` came of a response too large to read: refused by the relay (a frame over the
    /// bound, a batch inflating past it), or over rskafka's own frame bound. With a
    /// `partition`, only the relay's refusal of a fetch of that partition counts (see
    /// [`Relay::take_refused`]).
    fn refused(&self, e: &KafkaError, topic: &str, partition: Option<i32>) -> Option<String> {
        if let Some(why) = self.take_refused(topic, partition) {
            return Some(why);
        }
        too_large(e).then(|| {
            format!(
                "a response larger than the client's bound of {} bytes",
                self.frame_bound()
            )
        })
    }

    /// The relay's refusal of a response for `topic` (and `partition`), if there was one.
    fn take_refused(&self, topic: &str, partition: Option<i32>) -> Option<String> {
        self.relay.get()?.take_refused(topic, partition)
    }

    /// No answer in time: a timeout, unless the relay refused the response meanwhile
    /// (rskafka retries a connection the relay closed until its deadline).
    fn timed_out(&self, topic: &str, partition: Option<i32>) -> SourceError {
        if let Some(why) = self.take_refused(topic, partition) {
            return SourceError::new(ErrorKind::TooLarge)
                .with_message(format!("{why}; it was not read"));
        }
        if let Some(e) = self.broken() {
            return e;
        }
        SourceError::new(ErrorKind::Timeout).with_message(format!(
            "no answer within {:?} (topic `{topic}`)",
            self.timeout
        ))
    }

    /// The broker broke the protocol (the relay broke the connection off), if it did
    /// since the last call.
    fn broken(&self) -> Option<SourceError> {
        let why = self.relay.get().and_then(Relay::take_broken)?;
        Some(SourceError::new(ErrorKind::Unavailable).with_message(why))
    }

    fn error(&self, e: &KafkaError, topic: &str, partition: Option<i32>) -> SourceError {
        if let Some(why) = self.refused(e, topic, partition) {
            return SourceError::new(ErrorKind::TooLarge)
                .with_message(format!("{why}; it was not read"));
        }
        if let Some(e) = self.broken() {
            return e;
        }
        let kind = match e {
            KafkaError::ServerError {
                protocol_error: ProtocolError::UnknownTopicOrPartition,
                ..
            } => ErrorKind::NotFound,
            KafkaError::ServerError {
                protocol_error:
                    ProtocolError::TopicAuthorizationFailed
                    | ProtocolError::ClusterAuthorizationFailed
                    | ProtocolError::SaslAuthenticationFailed,
                ..
            } => ErrorKind::Unauthorized,
            KafkaError::Timeout => ErrorKind::Timeout,
            _ => ErrorKind::Unavailable,
        };
        let what = match e {
            KafkaError::ServerError { protocol_error, .. } => protocol_error.to_string(),
            other => other.to_string(),
        };
        SourceError::new(kind).with_message(what)
    }

    async fn bounded<T>(
        &self,
        topic: &str,
        work: impl std::future::Future<Output = Result<T, KafkaError>>,
    ) -> Result<T, SourceError> {
        self.bounded_in(topic, None, work).await
    }

    /// [`Inner::bounded`], for a request about one partition.
    async fn bounded_in<T>(
        &self,
        topic: &str,
        partition: Option<i32>,
        work: impl std::future::Future<Output = Result<T, KafkaError>>,
    ) -> Result<T, SourceError> {
        match tokio::time::timeout(self.timeout, work).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(self.error(&e, topic, partition)),
            Err(_) => Err(self.timed_out(topic, partition)),
        }
    }

    async fn client(&self, topic: &str) -> Result<Arc<Client>, SourceError> {
        let mut held = self.client.lock().await;
        // The relay's loop ends with the runtime it ran on: the client reconnects through
        // a loop on this one.
        if let Some(relay) = self.relay.get()
            && let Err(e) = relay.ensure_running()
        {
            tracing::warn!(error = %e, "kafka: the relay to the brokers could not start");
        }
        if let Some(c) = held.as_ref() {
            return Ok(c.clone());
        }
        if self.brokers.is_empty() {
            return Err(SourceError::new(ErrorKind::Config)
                .with_message("the kafka source has no broker address (set KAFKA_BROKERS)"));
        }
        check_brokers(&self.brokers)?;
        let builder = ClientBuilder::new(self.brokers.clone())
            .client_id("component_model")
            .max_message_size(self.frame_bound())
            .backoff_config(BackoffConfig {
                init_backoff: Duration::from_millis(50),
                max_backoff: Duration::from_secs(1),
                base: 2.,
                deadline: Some(self.timeout),
            });
        let relay = self
            .relay
            .get_or_try_init(|| async {
                Relay::bind(
                    &self.brokers,
                    self.frame_bound(),
                    self.batch_bound(),
                    self.timeout,
                )
            })
            .await
            .and_then(|relay| relay.ensure_running().map(|()| relay))
            .map_err(|e| {
                SourceError::new(ErrorKind::Unavailable).with_message(format!(
                    "the relay to the brokers cannot listen on 127.0.0.1: {e}"
                ))
            })?;
        let builder = builder.socks5_proxy(relay.addr().to_string());
        let client = Arc::new(self.bounded(topic, builder.build()).await?);
        *held = Some(client.clone());
        Ok(client)
    }

    /// Forgets the client after a connection failure (the next call connects again).
    async fn forget(&self) {
        *self.client.lock().await = None;
    }

    async fn partitions(&self, client: &Client, topic: &str) -> Result<Vec<i32>, SourceError> {
        let topics = self.bounded(topic, client.list_topics()).await?;
        match topics.into_iter().find(|t| t.name == topic) {
            Some(t) if !t.partitions.is_empty() => Ok(t.partitions.into_iter().collect()),
            _ => Err(SourceError::not_found().with_message(format!("there is no topic `{topic}`"))),
        }
    }

    async fn partition(
        &self,
        client: &Client,
        topic: &str,
        partition: i32,
    ) -> Result<PartitionClient, SourceError> {
        self.bounded(
            topic,
            client.partition_client(topic, partition, UnknownTopicHandling::Retry),
        )
        .await
    }

    /// Whether `record` is a message of `request` (its key, when it names one).
    fn matches(request: &FetchRequest, record: &RecordAndOffset) -> bool {
        match request.key() {
            Some(key) => record.record.key.as_deref() == Some(key.as_bytes()),
            None => true,
        }
    }

    /// A record of `partition` as a message, and its position as the revision.
    fn revised(&self, partition: i32, record: RecordAndOffset) -> (Message, Revision) {
        let at = Revision::Offset {
            partition,
            offset: record.offset,
        };
        (self.value(record), at)
    }

    /// A record as the field's value.
    fn value(&self, record: RecordAndOffset) -> Message {
        match record.record.value {
            None => Err(SourceError::not_found().with_message(format!(
                "the newest message (offset {}) has no value: the key was deleted",
                record.offset
            ))),
            Some(v) if v.len() > self.max_message => Err(SourceError::new(ErrorKind::TooLarge)
                .with_message(format!(
                    "the message at offset {} is {} bytes, over the limit of {} bytes",
                    record.offset,
                    v.len(),
                    self.max_message
                ))),
            Some(v) => Ok(stream::body(v)),
        }
    }

    /// The oldest offset a partition keeps and its end (the high watermark: the next
    /// offset to be written). Read with a small fetch from offset 0 (ListOffsets is not
    /// answered by every Kafka-compatible broker: tansu 0.6 answers it with no topic);
    /// ListOffsets only when the log no longer starts at 0.
    async fn bounds(&self, pc: &PartitionClient, topic: &str) -> Result<(i64, i64), SourceError> {
        // At most one batch comes back (a broker sends the first batch whole even when
        // it is over the asked size).
        match tokio::time::timeout(self.timeout, pc.fetch_records(0, 1..2, 10)).await {
            Ok(Ok((records, end))) => Ok((records.first().map_or(end, |r| r.offset), end)),
            Ok(Err(KafkaError::ServerError {
                protocol_error: ProtocolError::OffsetOutOfRange,
                response: Some(ServerErrorResponse::PartitionFetchState { high_watermark, .. }),
                ..
            })) => {
                let first = match self.bounded(topic, pc.get_offset(OffsetAt::Earliest)).await {
                    Ok(first) => first,
                    Err(_) => high_watermark,
                };
                Ok((first, high_watermark))
            }
            Ok(Err(e)) => Err(self.error(&e, topic, Some(pc.partition()))),
            Err(_) => Err(self.timed_out(topic, Some(pc.partition()))),
        }
    }

    /// Reads `[from, to)` of a partition and keeps the newest record of `request` in it
    /// (no more than one record is held at a time).
    async fn newest_in(
        &self,
        pc: &PartitionClient,
        request: &FetchRequest,
        mut from: i64,
        to: i64,
    ) -> Result<Option<RecordAndOffset>, SourceError> {
        let topic = request.topic().unwrap_or_default();
        let max = i32::try_from(self.max_message).unwrap_or(i32::MAX);
        let mut newest = None;
        while from < to {
            let (records, _) = self
                .bounded_in(
                    topic,
                    Some(pc.partition()),
                    pc.fetch_records(from, 1..max, 10),
                )
                .await?;
            let Some(last) = records.last().map(|r| r.offset) else {
                break;
            };
            from = last.saturating_add(1);
            if let Some(r) = records
                .into_iter()
                .rfind(|r| r.offset < to && Self::matches(request, r))
            {
                newest = Some(r);
            }
        }
        Ok(newest)
    }

    /// The start-up read: the newest message of `request` in the look-back of every
    /// partition (with its partition and offset), and where each partition ended.
    async fn newest(
        &self,
        request: &FetchRequest,
    ) -> Result<(Option<(Message, Revision)>, Vec<Position>), SourceError> {
        let topic = request.topic().ok_or_else(no_topic)?;
        let client = self.client(topic).await?;
        let partitions = self.partitions(&client, topic).await?;
        let mut newest: Option<(i32, RecordAndOffset)> = None;
        let mut positions = Vec::with_capacity(partitions.len());
        for partition in partitions {
            let pc = self.partition(&client, topic, partition).await?;
            let (first, end) = self.bounds(&pc, topic).await?;
            let from = first.max(end.saturating_sub(self.lookback));
            if let Some(r) = self.newest_in(&pc, request, from, end).await?
                && newest
                    .as_ref()
                    .is_none_or(|(_, n)| r.record.timestamp > n.record.timestamp)
            {
                newest = Some((partition, r));
            }
            positions.push(Position {
                partition,
                next: end,
                client: Some(pc),
            });
        }
        Ok((newest.map(|(p, r)| self.revised(p, r)), positions))
    }

    fn none_found(&self, request: &FetchRequest) -> SourceError {
        let topic = request.topic().unwrap_or_default();
        let which = match request.key() {
            Some(k) => format!("with key `{k}` "),
            None => String::new(),
        };
        SourceError::not_found().with_message(format!(
            "no message {which}in the last {} messages of each partition of topic `{topic}` (use a compacted topic to keep the last message of every key)",
            self.lookback
        ))
    }

    /// One consumer for `feed`'s request until nobody watches.
    async fn subscribe(self: Arc<Self>, feed: Feed) {
        let request = feed.request().clone();
        let Some(topic) = request.topic().map(str::to_owned) else {
            feed.push(Err(no_topic()));
            return;
        };
        let mut failures = 0u32;
        let mut following: Option<Following> = None;
        loop {
            let result = match following.as_mut() {
                // The first read, and every read after a reset: the newest message.
                None => match self.newest(&request).await {
                    Ok((message, at)) => {
                        let sent = match message {
                            Some((message, at)) => feed.push_at(message, Some(at)),
                            None => {
                                feed.none_yet(self.none_found(&request));
                                true
                            }
                        };
                        if !sent {
                            return;
                        }
                        following = Some(Following {
                            positions: at,
                            listed: tokio::time::Instant::now(),
                        });
                        Ok(Step::Polled)
                    }
                    Err(e) => Err(e),
                },
                Some(f) => self.follow(&feed, &topic, f).await,
            };
            match result {
                Ok(Step::Polled) => failures = 0,
                Ok(Step::Reset) => following = None,
                Err(e) => {
                    tracing::debug!(topic = %topic, error = %e, "kafka watch: reading failed; trying again after a backoff");
                    // A frame over the bound poisons the connection: a new client too.
                    if matches!(
                        e.kind(),
                        ErrorKind::Unavailable | ErrorKind::Timeout | ErrorKind::TooLarge
                    ) {
                        self.forget().await;
                    }
                    // Clients are made again; positions stay.
                    for at in following.iter_mut().flat_map(|f| f.positions.iter_mut()) {
                        at.client = None;
                    }
                    failures = failures.saturating_add(1);
                    if !feed.pause(stream::backoff(failures - 1)).await {
                        return;
                    }
                }
            }
            if feed.is_closed() {
                return;
            }
        }
    }

    /// One long poll of every partition from its position, reading on until each is
    /// caught up; pushes the newest matching message of what arrived (so a consumer
    /// catching up after an outage applies only the newest value, not every old one).
    /// `Step::Reset` when a partition's log no longer reaches the position (a broker
    /// that lost its data) or the consumer is more than the look-back behind: the
    /// newest message is then read again as at start.
    async fn follow(
        &self,
        feed: &Feed,
        topic: &str,
        following: &mut Following,
    ) -> Result<Step, SourceError> {
        let started = tokio::time::Instant::now();
        let client = self.client(topic).await?;
        if following.listed.elapsed() >= RELIST_EVERY {
            let known = self.partitions(&client, topic).await?;
            // Partitions added since: read from their start.
            for p in known {
                if !following.positions.iter().any(|at| at.partition == p) {
                    following.positions.push(Position {
                        partition: p,
                        next: 0,
                        client: None,
                    });
                }
            }
            following.listed = tokio::time::Instant::now();
        }
        let max = i32::try_from(self.max_message).unwrap_or(i32::MAX);
        let parts = i32::try_from(following.positions.len().max(1)).unwrap_or(i32::MAX);
        let total = i32::try_from(self.long_poll.as_millis()).unwrap_or(i32::MAX);
        let wait = (total / parts).max(10);
        let mut newest: Option<(i32, RecordAndOffset)> = None;
        let mut arrived = false;
        for at in following.positions.iter_mut() {
            if at.client.is_none() {
                at.client = Some(self.partition(&client, topic, at.partition).await?);
            }
            let Some(pc) = at.client.as_ref() else {
                continue;
            };
            // The first poll waits for news; the ones catching up do not.
            let mut poll_wait = wait;
            loop {
                let polled = tokio::select! {
                    _ = feed.closed() => return Ok(Step::Polled),
                    r = tokio::time::timeout(self.timeout, pc.fetch_records(at.next, 1..max, poll_wait)) => r,
                };
                poll_wait = 10;
                // A batch of this partition too large to read (refused by the relay, or
                // over rskafka's frame bound), however the poll ended: say so, and step
                // past it. (A refusal of another partition is not this one's to skip.)
                let refusal = match &polled {
                    Ok(Err(e)) => self.refused(e, topic, Some(at.partition)),
                    Err(_) => self.take_refused(topic, Some(at.partition)),
                    Ok(Ok(_)) => None,
                };
                if let Some(why) = refusal {
                    let position = at.next;
                    at.next = at.next.saturating_add(1);
                    let error = SourceError::new(ErrorKind::TooLarge).with_message(format!(
                        "the batch at offset {position} of partition {} is too large to read ({why}); it is skipped",
                        at.partition
                    ));
                    feed.push(Err(error.clone()));
                    return Err(error);
                }
                let (records, end) = match polled {
                    Ok(Ok(got)) => got,
                    Ok(Err(KafkaError::ServerError {
                        protocol_error: ProtocolError::OffsetOutOfRange,
                        ..
                    })) => return Ok(self.reset(topic, at, "is out of the partition's range")),
                    Ok(Err(e)) => {
                        // Some brokers (tansu) answer a fetch at the end with no topic at
                        // all: look at the bounds to tell "nothing new" from a failure.
                        let (first, end) = self.bounds(pc, topic).await?;
                        if at.next == end {
                            break;
                        }
                        if at.next > end || at.next < first {
                            return Ok(self.reset(topic, at, "is out of the partition's range"));
                        }
                        return Err(self.error(&e, topic, Some(at.partition)));
                    }
                    Err(_) => return Err(self.timed_out(topic, Some(at.partition))),
                };
                if at.next > end {
                    return Ok(self.reset(topic, at, "is past the end of the partition's log"));
                }
                if end.saturating_sub(at.next) > self.lookback {
                    return Ok(self.reset(topic, at, "is more than the look-back behind"));
                }
                let was = at.next;
                for r in records {
                    if r.offset < at.next {
                        continue;
                    }
                    at.next = r.offset.saturating_add(1);
                    arrived = true;
                    if Self::matches(feed.request(), &r)
                        && newest
                            .as_ref()
                            .is_none_or(|(_, n)| r.record.timestamp >= n.record.timestamp)
                    {
                        newest = Some((at.partition, r));
                    }
                }
                // No record below the end: control records (transaction markers), which
                // the client leaves out. Step over one.
                if at.next == was && at.next < end {
                    at.next = at.next.saturating_add(1);
                }
                if at.next >= end {
                    break;
                }
            }
        }
        if let Some((partition, r)) = newest {
            let (message, at) = self.revised(partition, r);
            feed.push_at(message, Some(at));
        }
        // A broker that answers at once when there is nothing new must not be polled in
        // a tight loop.
        if !arrived {
            let rest = self.long_poll.saturating_sub(started.elapsed());
            if !feed.pause(rest).await {
                return Ok(Step::Polled);
            }
        }
        Ok(Step::Polled)
    }

    fn reset(&self, topic: &str, at: &Position, why: &str) -> Step {
        tracing::warn!(
            topic,
            partition = at.partition,
            position = at.next,
            "kafka watch: the consumer's position {why}; reading the newest message again"
        );
        Step::Reset
    }
}

/// What one step of a consumer did.
enum Step {
    /// Polled (maybe pushed a message).
    Polled,
    /// Start over from the newest message.
    Reset,
}

/// Whether `e` is a response frame over the client's bound.
fn too_large(e: &KafkaError) -> bool {
    // rskafka reports it through its connection (`ReadError::MessageTooLarge`), wrapped
    // in request and connection errors: its text is the stable part.
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(&s.to_string());
        source = s.source();
    }
    text.contains("Message too large")
}

/// Refuses a broker given as an IPv6 literal (`[::1]:9092`): rskafka hands the relay (its
/// SOCKS5 proxy) the host cut at the first `:`, so it could not be reached — said here,
/// naming the broker, rather than as rskafka's `InvalidHostPort` after retries. Reaching
/// it around the relay would leave its responses unbounded.
fn check_brokers(brokers: &[String]) -> Result<(), SourceError> {
    match brokers.iter().find(|b| b.matches(':').count() > 1) {
        Some(b) => Err(SourceError::new(ErrorKind::Config).with_message(format!(
            "the kafka broker `{b}` is an IPv6 address, which this source cannot reach (its client splits host and port at the first `:`); name it by a host name that resolves to it"
        ))),
        None => Ok(()),
    }
}

fn no_topic() -> SourceError {
    SourceError::new(ErrorKind::Config).with_message("the `kafka` source needs `topic = \"...\"`")
}

impl Inner {
    /// Checks `requests` without reading a message (see the module's "Preflight"): the
    /// client (connecting through the relay, as a fetch does), then ONE metadata request
    /// listing the topics; each request's topic is there with its partitions, or not.
    async fn preflight(&self, requests: Vec<FetchRequest>) -> Vec<Probe> {
        let first = requests.iter().find_map(FetchRequest::topic).unwrap_or("");
        let listed = async {
            let client = self.client(first).await?;
            self.bounded(first, client.list_topics()).await
        };
        let topics = match tokio::time::timeout(self.timeout, listed).await {
            Ok(Ok(topics)) => topics,
            Ok(Err(e)) => {
                let mut probe = Probe::from_error(&e);
                if e.kind() == ErrorKind::Unauthorized
                    && e.message()
                        .is_some_and(|m| m.to_ascii_lowercase().contains("sasl"))
                {
                    probe.access = Access::Unauthenticated;
                }
                return requests.iter().map(|_| probe.clone()).collect();
            }
            Err(_) => {
                let probe = Probe::from_error(&SourceError::new(ErrorKind::Timeout).with_message(
                    format!("no answer from the brokers within {:?}", self.timeout),
                ));
                return requests.iter().map(|_| probe.clone()).collect();
            }
        };
        requests
            .iter()
            .map(|r| {
                let Some(topic) = r.topic() else {
                    return Probe::from_error(&no_topic());
                };
                match topics.iter().find(|t| t.name == topic) {
                    Some(t) if !t.partitions.is_empty() => {
                        let n = t.partitions.len();
                        let mut detail =
                            format!("topic with {n} partition{}", if n == 1 { "" } else { "s" });
                        if r.key().is_some() {
                            detail.push_str("; whether a message has the key is not looked up");
                        }
                        Probe::readable().with_detail(detail)
                    }
                    Some(_) => Probe::new(Access::Missing)
                        .with_detail(format!("topic `{topic}` has no partition")),
                    None => Probe::missing().with_detail(format!(
                        "no topic `{topic}` (absent, or not visible to this user)"
                    )),
                }
            })
            .collect()
    }
}

#[async_trait::async_trait]
impl Source for KafkaSource {
    async fn fetch(&self, request: &FetchRequest) -> Result<RawValue, SourceError> {
        if let Some(message) = self.inner.latest.get(request) {
            return message;
        }
        match self.inner.newest(request).await? {
            (Some((message, _)), _) => message,
            (None, _) => Err(self.inner.none_found(request)),
        }
    }

    fn location(&self) -> Option<String> {
        Some(self.inner.shown())
    }

    /// Without reading a message: connects, and asks the brokers' metadata for the
    /// topics (see the module's "Preflight").
    fn preflight(&self, requests: Vec<FetchRequest>) -> Preflighting<'_> {
        Box::pin(self.inner.preflight(requests))
    }

    fn watch(&self, requests: Vec<FetchRequest>) -> Result<Changes, SourceError> {
        let inner = self.inner.clone();
        Ok(stream::watch_pushed(
            &self.inner.latest,
            requests,
            move |feed| inner.clone().subscribe(feed),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ipv6_broker_is_a_config_error_naming_it() {
        let brokers = ["127.0.0.1:9092".to_owned(), "[::1]:9092".to_owned()];
        let e = check_brokers(&brokers).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Config);
        assert!(
            e.to_string().contains("`[::1]:9092` is an IPv6 address"),
            "{e}"
        );
        let named = [
            "kafka-1.example:9092".to_owned(),
            "10.0.0.1:9092".to_owned(),
        ];
        assert!(check_brokers(&named).is_ok());
    }
}
