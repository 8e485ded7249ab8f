use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, Packet, QoS};

use crate::EnvSource;
use crate::error::{ErrorKind, SourceError};
use crate::fetchers::stream::{self, DEFAULT_FIRST_MESSAGE, Feed, Latest, Message};
use crate::source::{
    Access, Changes, FetchRequest, Preflighting, Probe, RawValue, Source, redact_url,
};

/// The largest message an [`MqttSource`] accepts, by default (1 MiB).
pub const DEFAULT_MAX_MESSAGE: usize = 1024 * 1024;

/// The `mqtt` push source (see the [module](crate::fetchers::mqtt)).
///
/// ```
/// use component_model_async::{MqttSource, Sources};
///
/// let mqtt = MqttSource::new("mqtt://127.0.0.1:1883");
/// let sources = Sources::new().register("mqtt", mqtt);
/// ```
#[derive(Clone)]
pub struct MqttSource {
    inner: Arc<Inner>,
}

struct Inner {
    url: String,
    /// Host, port and credentials, or why the URL is not usable.
    target: Result<Target, String>,
    first_message: Duration,
    max_message: usize,
    timeout: Duration,
    latest: Arc<Latest>,
}

#[derive(Clone)]
struct Target {
    host: String,
    port: u16,
    credentials: Option<(String, String)>,
}

impl std::fmt::Debug for MqttSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MqttSource")
            .field("url", &redact_url(&self.inner.url))
            .finish_non_exhaustive()
    }
}

/// `mqtt://[user:password@]host[:port]` (or `tcp://`, or `host[:port]`).
fn parse(url: &str) -> Result<Target, String> {
    let rest = url
        .strip_prefix("mqtt://")
        .or_else(|| url.strip_prefix("tcp://"))
        .unwrap_or(url);
    if rest.contains("://") {
        return Err(format!(
            "`{}` is not an MQTT URL (mqtt://host:port; TLS is not supported in this version)",
            redact_url(url)
        ));
    }
    let rest = rest.trim_end_matches('/');
    let (credentials, hostport) = match rest.rsplit_once('@') {
        Some((userinfo, hostport)) => {
            let (user, pass) = userinfo.split_once(':').unwrap_or((userinfo, ""));
            (Some((user.to_owned(), pass.to_owned())), hostport)
        }
        None => (None, rest),
    };
    let (host, port) = match hostport.rsplit_once(':') {
        Some((host, port)) => (
            host,
            port.parse::<u16>()
                .map_err(|_| format!("`{}`: the port is not a number", redact_url(url)))?,
        ),
        None => (hostport, 1883),
    };
    if host.is_empty() {
        return Err(format!("`{}` names no host", redact_url(url)));
    }
    Ok(Target {
        host: host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned(),
        port,
        credentials,
    })
}

/// A client id no other connection of this process uses.
fn client_id() -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "component_model-{}-{}-{nanos}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

impl MqttSource {
    /// A source for the broker at `url` (`mqtt://[user:password@]host[:port]`). An
    /// unusable URL is reported by every fetch as a configuration error.
    pub fn new(url: impl Into<String>) -> Self {
        let url = url.into();
        MqttSource {
            inner: Arc::new(Inner {
                target: parse(url.trim()),
                url,
                first_message: DEFAULT_FIRST_MESSAGE,
                max_message: DEFAULT_MAX_MESSAGE,
                timeout: Duration::from_secs(10),
                latest: Arc::default(),
            }),
        }
    }

    /// The source `MQTT_URL` names, if it is set.
    pub fn from_env_source(env: &EnvSource) -> Option<Self> {
        env.get("MQTT_URL")
            .filter(|u| !u.trim().is_empty())
            .map(Self::new)
    }

    fn with(self, f: impl FnOnce(&mut Inner)) -> Self {
        let i = &self.inner;
        let mut inner = Inner {
            url: i.url.clone(),
            target: i.target.clone(),
            first_message: i.first_message,
            max_message: i.max_message,
            timeout: i.timeout,
            latest: Arc::default(),
        };
        f(&mut inner);
        MqttSource {
            inner: Arc::new(inner),
        }
    }

    /// How long the start-up read waits for a first (usually retained) message.
    #[must_use]
    pub fn with_first_message_timeout(self, limit: Duration) -> Self {
        self.with(|i| i.first_message = limit)
    }

    /// The largest message accepted (larger packets are refused by the client).
    #[must_use]
    pub fn with_max_message(self, bytes: usize) -> Self {
        self.with(|i| i.max_message = bytes.max(1))
    }

    /// Limits connecting and subscribing, 10 s by default.
    #[must_use]
    pub fn with_timeout(self, timeout: Duration) -> Self {
        self.with(|i| i.timeout = timeout)
    }

    /// The broker's URL, credentials masked.
    pub fn address(&self) -> String {
        redact_url(&self.inner.url)
    }
}

impl Inner {
    /// A new connection's client and event loop, subscribed to `topic` once it runs.
    async fn open(&self, topic: &str) -> Result<(AsyncClient, EventLoop), SourceError> {
        let target = self
            .target
            .as_ref()
            .map_err(|why| SourceError::new(ErrorKind::Config).with_message(why.clone()))?;
        let mut options = MqttOptions::new(client_id(), target.host.clone(), target.port);
        options
            .set_keep_alive(Duration::from_secs(15))
            .set_clean_session(true)
            // The packet bound: a message (plus its topic and header) over it is refused.
            .set_max_packet_size(self.max_message.saturating_add(64 * 1024), 64 * 1024);
        if let Some((user, pass)) = &target.credentials {
            options.set_credentials(user.clone(), pass.clone());
        }
        let (client, events) = AsyncClient::new(options, 16);
        client
            .subscribe(topic, QoS::AtLeastOnce)
            .await
            .map_err(|e| self.unavailable(&e))?;
        Ok((client, events))
    }

    fn unavailable(&self, e: &dyn std::fmt::Display) -> SourceError {
        SourceError::new(ErrorKind::Unavailable).with_message(e.to_string())
    }

    /// What a failed poll of the event loop means.
    fn failed(&self, e: &rumqttc::ConnectionError) -> SourceError {
        use rumqttc::ConnectionError as C;
        match e {
            C::ConnectionRefused(
                rumqttc::ConnectReturnCode::BadUserNamePassword
                | rumqttc::ConnectReturnCode::NotAuthorized,
            ) => SourceError::new(ErrorKind::Unauthorized)
                .with_message(format!("the broker refused the connection: {e}")),
            C::MqttState(rumqttc::StateError::Deserialization(
                rumqttc::mqttbytes::Error::PayloadSizeLimitExceeded(size),
            )) => SourceError::new(ErrorKind::TooLarge).with_message(format!(
                "a message of {size} bytes, over the limit of {} bytes; the connection is opened again",
                self.max_message
            )),
            other => self.unavailable(other),
        }
    }

    /// The next event of the connection: a message on the subscription, the broker's
    /// CONNACK, or other protocol traffic (the caller polls again).
    ///
    /// Protocol traffic costs a unit of the task's cooperative budget: a broker flooding
    /// packets (`PINGRESP`s, say) keeps the socket readable, and the client takes many
    /// packets from one read, so without it the loop would not return `Pending` and the
    /// caller's deadline (a timer) could not fire.
    async fn next(&self, events: &mut EventLoop) -> Result<Step, SourceError> {
        match events.poll().await {
            Ok(Event::Incoming(Packet::Publish(p))) => Ok(Step::Message(p.payload.to_vec())),
            Ok(Event::Incoming(Packet::SubAck(ack)))
                if ack
                    .return_codes
                    .iter()
                    .any(|c| matches!(c, rumqttc::SubscribeReasonCode::Failure)) =>
            {
                Err(SourceError::new(ErrorKind::Unauthorized)
                    .with_message("the broker refused the subscription"))
            }
            Ok(event) => {
                tokio::task::coop::consume_budget().await;
                Ok(match event {
                    Event::Incoming(Packet::ConnAck(_)) => Step::Connected,
                    _ => Step::Other,
                })
            }
            Err(e) => Err(self.failed(&e)),
        }
    }

    fn value(&self, payload: Vec<u8>) -> Message {
        if payload.len() > self.max_message {
            return Err(SourceError::new(ErrorKind::TooLarge).with_message(format!(
                "a message of {} bytes, over the limit of {} bytes",
                payload.len(),
                self.max_message
            )));
        }
        Ok(stream::body(payload))
    }

    /// The start-up read: the first message (the retained one) within the deadline.
    ///
    /// One deadline for connecting, subscribing and reading, whatever packets arrive. A
    /// broker that has not accepted the connection (no CONNACK) by then is a timeout, not
    /// a topic without a message.
    async fn first(&self, topic: &str) -> Result<RawValue, SourceError> {
        let (client, mut events) = self.open(topic).await?;
        let mut connected = false;
        let read = async {
            loop {
                match self.next(&mut events).await? {
                    Step::Message(payload) => return self.value(payload),
                    Step::Connected => connected = true,
                    Step::Other => {}
                }
            }
        };
        let got = tokio::time::timeout(self.first_message, read).await;
        let _ = client.try_disconnect();
        match got {
            Ok(result) => result,
            Err(_) if !connected => {
                Err(SourceError::new(ErrorKind::Timeout).with_message(format!(
                    "the broker did not accept the connection (no CONNACK) within {:?}",
                    self.first_message
                )))
            }
            Err(_) => Err(SourceError::not_found().with_message(format!(
                "no message on topic `{topic}` within {:?} of subscribing (no retained message)",
                self.first_message
            ))),
        }
    }

    /// Follows `feed`'s topic until nobody watches.
    async fn subscribe(self: Arc<Self>, feed: Feed) {
        let Some(topic) = feed.request().topic().map(str::to_owned) else {
            feed.push(Err(no_topic()));
            return;
        };
        let what = format!("mqtt topic {topic}");
        stream::reconnecting(&feed, &what, || self.follow(&feed, &topic)).await;
    }

    /// One connection; `Ok(true)` when nobody watches any more.
    async fn follow(&self, feed: &Feed, topic: &str) -> Result<bool, SourceError> {
        let (_client, mut events) = self.open(topic).await?;
        let first_due = tokio::time::sleep(self.first_message);
        tokio::pin!(first_due);
        let mut heard = false;
        let mut connected = false;
        loop {
            tokio::select! {
                _ = feed.closed() => return Ok(true),
                _ = &mut first_due, if !heard => {
                    heard = true;
                    // A broker that has not accepted the connection says nothing of
                    // the topic: a timeout, not "no retained message".
                    feed.none_yet(if connected {
                        SourceError::not_found().with_message(format!(
                            "no message on topic `{topic}` yet (no retained message)"
                        ))
                    } else {
                        SourceError::new(ErrorKind::Timeout).with_message(format!(
                            "the broker did not accept the connection (no CONNACK) within {:?}",
                            self.first_message
                        ))
                    });
                }
                next = self.next(&mut events) => match next? {
                    Step::Message(payload) => {
                        heard = true;
                        if !feed.push(self.value(payload)) {
                            return Ok(true);
                        }
                    }
                    Step::Connected => connected = true,
                    Step::Other => {}
                },
            }
        }
    }
}

/// What one poll of the connection brought.
impl Inner {
    /// Checks `requests` without reading a message (see the module's "Preflight"): ONE
    /// connection that waits for the broker's CONNACK and disconnects — no SUBSCRIBE (a
    /// broker sends a topic's retained message on it). Bounded by the source's timeout;
    /// the connection is the caller's (polled here, nothing spawned).
    async fn preflight(&self, requests: Vec<FetchRequest>) -> Vec<Probe> {
        let probe = match self.connect_only().await {
            Ok(()) => Probe::readable().with_detail("connected; MQTT cannot look up a topic"),
            Err(e) => {
                let mut probe = Probe::from_error(&e);
                if e.kind() == ErrorKind::Unauthorized {
                    probe.access = Access::Unauthenticated;
                }
                probe
            }
        };
        requests
            .iter()
            .map(|r| match r.topic() {
                Some(_) => probe.clone(),
                None => Probe::from_error(&no_topic()),
            })
            .collect()
    }

    /// Connects (a clean session), waits for the CONNACK, disconnects.
    async fn connect_only(&self) -> Result<(), SourceError> {
        let target = self
            .target
            .as_ref()
            .map_err(|why| SourceError::new(ErrorKind::Config).with_message(why.clone()))?;
        let mut options = MqttOptions::new(client_id(), target.host.clone(), target.port);
        options
            .set_keep_alive(Duration::from_secs(15))
            .set_clean_session(true)
            .set_max_packet_size(self.max_message.saturating_add(64 * 1024), 64 * 1024);
        if let Some((user, pass)) = &target.credentials {
            options.set_credentials(user.clone(), pass.clone());
        }
        let (client, mut events) = AsyncClient::new(options, 4);
        let accepted = tokio::time::timeout(self.timeout, async {
            loop {
                match events.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => return Ok(()),
                    Ok(_) => tokio::task::coop::consume_budget().await,
                    Err(e) => return Err(self.failed(&e)),
                }
            }
        })
        .await
        .unwrap_or_else(|_| {
            Err(SourceError::new(ErrorKind::Timeout).with_message(format!(
                "the broker did not accept the connection (no CONNACK) within {:?}",
                self.timeout
            )))
        });
        if accepted.is_ok() && client.try_disconnect().is_ok() {
            // The DISCONNECT sent, briefly: the connection ends when dropped anyway.
            let _ = tokio::time::timeout(Duration::from_millis(200), async {
                while let Ok(event) = events.poll().await {
                    if matches!(event, Event::Outgoing(rumqttc::Outgoing::Disconnect)) {
                        break;
                    }
                    // A broker flooding packets keeps `poll` ready: without a yield the
                    // 200 ms timer (and the caller's deadline) would not fire.
                    tokio::task::coop::consume_budget().await;
                }
            })
            .await;
        }
        accepted
    }
}

enum Step {
    /// A message on the subscription (its payload).
    Message(Vec<u8>),
    /// The broker accepted the connection (CONNACK).
    Connected,
    /// Other protocol traffic.
    Other,
}

fn no_topic() -> SourceError {
    SourceError::new(ErrorKind::Config).with_message("the `mqtt` source needs `topic = \"...\"`")
}

#[async_trait::async_trait]
impl Source for MqttSource {
    async fn fetch(&self, request: &FetchRequest) -> Result<RawValue, SourceError> {
        if let Some(message) = self.inner.latest.get(request) {
            return message;
        }
        let topic = request.topic().ok_or_else(no_topic)?;
        self.inner.first(topic).await
    }

    /// Without reading a message: the broker accepts a connection (see the module's
    /// "Preflight").
    fn preflight(&self, requests: Vec<FetchRequest>) -> Preflighting<'_> {
        Box::pin(self.inner.preflight(requests))
    }

    fn location(&self) -> Option<String> {
        Some(redact_url(&self.inner.url))
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
    use super::parse;

    #[test]
    fn urls_parse_with_defaults_and_credentials() {
        let t = parse("mqtt://127.0.0.1").unwrap();
        assert_eq!((t.host.as_str(), t.port), ("127.0.0.1", 1883));
        let t = parse("mqtt://dev:s3cret@broker.local:8883/").unwrap();
        assert_eq!((t.host.as_str(), t.port), ("broker.local", 8883));
        assert_eq!(t.credentials, Some(("dev".into(), "s3cret".into())));
        let e = parse("mqtts://dev:s3cret@broker:8883").err().unwrap();
        assert!(!e.contains("s3cret"), "{e}");
        assert!(parse("mqtt://host:port").is_err());
    }
}
