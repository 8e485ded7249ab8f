use std::sync::Arc;
use std::time::Duration;

use rskafka::BackoffConfig;
use rskafka::client::error::{Error as KafkaError, ProtocolError, ServerErrorResponse};
use rskafka::client::partition::{OffsetAt, PartitionClient, UnknownTopicHandling};
use rskafka::client::{Client, ClientBuilder};
use rskafka::record::RecordAndOffset;

use crate::EnvSource;
use crate::error::{ErrorKind, SourceError};
use crate::fetchers::stream::{self, Feed, Latest, Message};
use crate::source::{Changes, FetchRequest, RawValue, Source};

/// How many messages of each partition the start-up read looks at, by default.
pub const DEFAULT_LOOKBACK: i64 = 500;

/// The largest record value a [`KafkaSource`] accepts, by default (1 MiB).
pub const DEFAULT_MAX_MESSAGE: usize = 1024 * 1024;

/// How long one long poll of a watched partition waits for new records.
const LONG_POLL_MS: i32 = 500;

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
    client: tokio::sync::Mutex<Option<Arc<Client>>>,
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
                client: tokio::sync::Mutex::new(None),
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
            client: tokio::sync::Mutex::new(None),
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

    /// The brokers, as given.
    pub fn brokers(&self) -> &[String] {
        &self.inner.brokers
    }
}

/// Where one watched partition stands.
struct Position {
    partition: i32,
    next: i64,
}

impl Inner {
    fn shown(&self) -> String {
        self.brokers.join(",")
    }

    fn error(&self, topic: &str, e: &KafkaError) -> SourceError {
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
        SourceError::new(kind).with_message(format!(
            "kafka at {}, topic `{topic}`: {what}",
            self.shown()
        ))
    }

    async fn bounded<T>(
        &self,
        topic: &str,
        work: impl std::future::Future<Output = Result<T, KafkaError>>,
    ) -> Result<T, SourceError> {
        match tokio::time::timeout(self.timeout, work).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(self.error(topic, &e)),
            Err(_) => Err(SourceError::new(ErrorKind::Timeout).with_message(format!(
                "kafka at {}, topic `{topic}`: no answer within {:?}",
                self.shown(),
                self.timeout
            ))),
        }
    }

    async fn client(&self, topic: &str) -> Result<Arc<Client>, SourceError> {
        let mut held = self.client.lock().await;
        if let Some(c) = held.as_ref() {
            return Ok(c.clone());
        }
        if self.brokers.is_empty() {
            return Err(SourceError::new(ErrorKind::Config)
                .with_message("the kafka source has no broker address (set KAFKA_BROKERS)"));
        }
        let builder = ClientBuilder::new(self.brokers.clone())
            .client_id("component_model")
            .max_message_size(self.max_message.saturating_mul(4).max(1 << 20))
            .backoff_config(BackoffConfig {
                init_backoff: Duration::from_millis(50),
                max_backoff: Duration::from_secs(1),
                base: 2.,
                deadline: Some(self.timeout),
            });
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
            _ => Err(SourceError::not_found().with_message(format!(
                "kafka at {}: there is no topic `{topic}`",
                self.shown()
            ))),
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

    /// A record as the field's value.
    fn value(&self, request: &FetchRequest, record: RecordAndOffset) -> Message {
        let topic = request.topic().unwrap_or_default();
        match record.record.value {
            None => Err(SourceError::not_found().with_message(format!(
                "kafka topic `{topic}`: the newest message (offset {}) has no value: the key was deleted",
                record.offset
            ))),
            Some(v) if v.len() > self.max_message => {
                Err(SourceError::new(ErrorKind::TooLarge).with_message(format!(
                    "kafka topic `{topic}`: the message at offset {} is {} bytes, over the limit of {} bytes",
                    record.offset,
                    v.len(),
                    self.max_message
                )))
            }
            Some(v) => Ok(stream::body(v)),
        }
    }

    /// The oldest offset a partition keeps and its end (the high watermark: the next
    /// offset to be written). Read with a small fetch from offset 0 (ListOffsets is not
    /// answered by every Kafka-compatible broker: tansu 0.6 answers it with no topic);
    /// ListOffsets only when the log no longer starts at 0.
    async fn bounds(&self, pc: &PartitionClient, topic: &str) -> Result<(i64, i64), SourceError> {
        let max = i32::try_from(self.max_message).unwrap_or(i32::MAX);
        match tokio::time::timeout(self.timeout, pc.fetch_records(0, 1..max, 10)).await {
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
            Ok(Err(e)) => Err(self.error(topic, &e)),
            Err(_) => Err(SourceError::new(ErrorKind::Timeout).with_message(format!(
                "kafka at {}, topic `{topic}`: no answer within {:?}",
                self.shown(),
                self.timeout
            ))),
        }
    }

    /// Reads `[from, to)` of a partition; the records, in order.
    async fn read_range(
        &self,
        pc: &PartitionClient,
        topic: &str,
        mut from: i64,
        to: i64,
    ) -> Result<Vec<RecordAndOffset>, SourceError> {
        let mut out = Vec::new();
        let max = i32::try_from(self.max_message).unwrap_or(i32::MAX);
        while from < to {
            let (records, _) = self
                .bounded(topic, pc.fetch_records(from, 1..max, 10))
                .await?;
            let Some(last) = records.last().map(|r| r.offset) else {
                break;
            };
            from = last + 1;
            out.extend(records.into_iter().filter(|r| r.offset < to));
        }
        Ok(out)
    }

    /// The start-up read: the newest message of `request` in the look-back of every
    /// partition, and where each partition ended.
    async fn newest(
        &self,
        request: &FetchRequest,
    ) -> Result<(Option<Message>, Vec<Position>), SourceError> {
        let topic = request.topic().ok_or_else(no_topic)?;
        let client = self.client(topic).await?;
        let partitions = self.partitions(&client, topic).await?;
        let mut newest: Option<RecordAndOffset> = None;
        let mut positions = Vec::with_capacity(partitions.len());
        for partition in partitions {
            let pc = self.partition(&client, topic, partition).await?;
            let (first, end) = self.bounds(&pc, topic).await?;
            let from = first.max(end - self.lookback);
            let records = self.read_range(&pc, topic, from, end).await?;
            if let Some(r) = records
                .into_iter()
                .rev()
                .find(|r| Self::matches(request, r))
                && newest
                    .as_ref()
                    .is_none_or(|n| r.record.timestamp > n.record.timestamp)
            {
                newest = Some(r);
            }
            positions.push(Position {
                partition,
                next: end,
            });
        }
        Ok((newest.map(|r| self.value(request, r)), positions))
    }

    fn none_found(&self, request: &FetchRequest) -> SourceError {
        let topic = request.topic().unwrap_or_default();
        let which = match request.key() {
            Some(k) => format!("with key `{k}` "),
            None => String::new(),
        };
        SourceError::not_found().with_message(format!(
            "kafka at {}: no message {which}in the last {} messages of each partition of topic `{topic}` (use a compacted topic to keep the last message of every key)",
            self.shown(),
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
        let mut positions: Option<Vec<Position>> = None;
        loop {
            let result = match positions.as_mut() {
                // The first read, and every read until one succeeds: the newest message.
                None => match self.newest(&request).await {
                    Ok((message, at)) => {
                        if let Some(message) = message
                            && !feed.push(message)
                        {
                            return;
                        }
                        positions = Some(at);
                        Ok(())
                    }
                    Err(e) => Err(e),
                },
                Some(at) => self.follow(&feed, &topic, at).await,
            };
            match result {
                Ok(()) => failures = 0,
                Err(e) => {
                    tracing::debug!(error = %e, "kafka watch: reading failed; trying again after a backoff");
                    if e.kind() == ErrorKind::Unavailable || e.kind() == ErrorKind::Timeout {
                        self.forget().await;
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

    /// One long poll of every partition from its position; pushes the newest matching
    /// message of what arrived.
    async fn follow(
        &self,
        feed: &Feed,
        topic: &str,
        positions: &mut Vec<Position>,
    ) -> Result<(), SourceError> {
        let client = self.client(topic).await?;
        let known = self.partitions(&client, topic).await?;
        // Partitions added since: read from their start.
        for p in &known {
            if !positions.iter().any(|at| at.partition == *p) {
                positions.push(Position {
                    partition: *p,
                    next: 0,
                });
            }
        }
        let max = i32::try_from(self.max_message).unwrap_or(i32::MAX);
        let wait = LONG_POLL_MS / i32::try_from(positions.len().max(1)).unwrap_or(1);
        let mut newest: Option<RecordAndOffset> = None;
        for at in positions.iter_mut() {
            let pc = self.partition(&client, topic, at.partition).await?;
            let polled = tokio::select! {
                _ = feed.closed() => return Ok(()),
                r = tokio::time::timeout(self.timeout, pc.fetch_records(at.next, 1..max, wait.max(10))) => r,
            };
            let records = match polled {
                // A log that ends before the position lost its data (a broker restarted
                // on memory storage, a topic made again): go on from its oldest message.
                Ok(Ok((_, end))) if at.next > end => {
                    let (first, _) = self.bounds(&pc, topic).await?;
                    tracing::warn!(
                        topic,
                        partition = at.partition,
                        position = at.next,
                        first,
                        end,
                        "kafka watch: the partition's log ends before the consumer's position; reading from its oldest message"
                    );
                    at.next = first;
                    continue;
                }
                Ok(Ok((records, _))) => records,
                Ok(Err(KafkaError::ServerError {
                    protocol_error: ProtocolError::OffsetOutOfRange,
                    ..
                })) => {
                    // The log no longer reaches the position: go on from its oldest message.
                    let (first, end) = self.bounds(&pc, topic).await?;
                    tracing::warn!(
                        topic,
                        partition = at.partition,
                        position = at.next,
                        first,
                        end,
                        "kafka watch: the partition's log does not reach the consumer's position; reading from its oldest message"
                    );
                    at.next = first;
                    continue;
                }
                Ok(Err(e)) => {
                    // Some brokers (tansu) answer a fetch at or past the end with no topic
                    // at all rather than an empty one or OffsetOutOfRange: look at the
                    // partition's bounds to tell "nothing new" and "a log that lost its
                    // data" from a failure.
                    let (first, end) = self.bounds(&pc, topic).await?;
                    if at.next == end {
                        continue;
                    }
                    if at.next > end || at.next < first {
                        tracing::warn!(
                            topic,
                            partition = at.partition,
                            position = at.next,
                            first,
                            end,
                            "kafka watch: the partition's log does not reach the consumer's position; reading from its oldest message"
                        );
                        at.next = first;
                        continue;
                    }
                    return Err(self.error(topic, &e));
                }
                Err(_) => {
                    return Err(SourceError::new(ErrorKind::Timeout).with_message(format!(
                        "kafka at {}, topic `{topic}`: no answer within {:?}",
                        self.shown(),
                        self.timeout
                    )));
                }
            };
            for r in records {
                if r.offset < at.next {
                    continue;
                }
                at.next = r.offset + 1;
                if Self::matches(feed.request(), &r)
                    && newest
                        .as_ref()
                        .is_none_or(|n| r.record.timestamp >= n.record.timestamp)
                {
                    newest = Some(r);
                }
            }
        }
        if let Some(r) = newest {
            feed.push(self.value(feed.request(), r));
        }
        Ok(())
    }
}

fn no_topic() -> SourceError {
    SourceError::new(ErrorKind::Config).with_message("the `kafka` source needs `topic = \"...\"`")
}

#[async_trait::async_trait]
impl Source for KafkaSource {
    async fn fetch(&self, request: &FetchRequest) -> Result<RawValue, SourceError> {
        if let Some(message) = self.inner.latest.get(request) {
            return message;
        }
        match self.inner.newest(request).await? {
            (Some(message), _) => message,
            (None, _) => Err(self.inner.none_found(request)),
        }
    }

    fn location(&self) -> Option<String> {
        Some(format!("kafka at {}", self.inner.shown()))
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
