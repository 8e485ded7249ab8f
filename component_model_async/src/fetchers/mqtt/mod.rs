//! The `mqtt` push source: `stream_from = "mqtt", topic = "devices/42/config"` — the
//! field's value is the latest message on the topic; retained messages, the usual MQTT
//! way to keep a device's configuration, are the start-up value.
//!
//! * **At start** (a fetch with no watch): a clean session subscribes to the topic (QoS 1)
//!   and takes the first message within a deadline (10 s,
//!   [`MqttSource::with_first_message_timeout`]): the broker sends the topic's retained
//!   message at once when it has one. None: `not found` (the field's `fallback` applies);
//!   a broker that has not even accepted the connection (no CONNACK) by then: `timeout`.
//!   One deadline over connecting, subscribing and reading, whatever packets arrive.
//! * **Watched** (`stream_from` fields always are): one connection per field, subscribed
//!   to the topic; every message is a candidate update. After a lost connection it
//!   connects again with a backoff (500 ms doubling to 30 s) and subscribes again; the
//!   broker sends the retained message again, which is the current value (what was
//!   published meanwhile without `retain` is not seen). A topic filter with `+` or `#`
//!   takes the latest message of any matching topic.
//! * Bounded: packets over [`DEFAULT_MAX_MESSAGE`] ([`MqttSource::with_max_message`]) are
//!   refused by the client before they are buffered; the connection is opened again.
//! * `MQTT_URL` (`mqtt://[user:password@]host[:port]`, port 1883 by default) registers the
//!   source in [`Sources::from_env`](crate::Sources::from_env); plain TCP (no TLS in this
//!   version). Tested against Mosquitto 2 (MQTT 3.1.1, through rumqttc).
//!
//! ## Preflight
//!
//! [`Source::preflight`](crate::Source::preflight) reads no message: ONE connection,
//! within the source's timeout, that waits for the broker's CONNACK and disconnects —
//! never a SUBSCRIBE (the broker would send the topic's retained message). Accepted, every
//! topic is readable with the detail "connected; MQTT cannot look up a topic"; bad
//! credentials (or not authorized) are unauthenticated; no CONNACK in time or no
//! connection, unreachable.
//!
//! ## What this module declares
//!
//! * name `mqtt`, cargo feature `mqtt`, registered by
//!   [`Sources::from_env`](crate::Sources::from_env) from `MQTT_URL`;
//! * attribute keys: `topic` (required: the topic or topic filter);
//! * key label `topic`; values are not secret.

#[cfg(feature = "mqtt")]
mod source;
#[cfg(feature = "mqtt")]
pub use source::*;

use crate::fetchers::Builtin;

pub(crate) const BUILTIN: Builtin = Builtin {
    names: &["mqtt"],
    hint: "`Sources::from_env()` registers it from MQTT_URL with cargo feature `mqtt`; or register an `MqttSource`",
    from_env: |env| {
        #[cfg(feature = "mqtt")]
        return MqttSource::from_env_source(env)
            .map(|s| ("mqtt", std::sync::Arc::new(s) as _))
            .into_iter()
            .collect();
        #[cfg(not(feature = "mqtt"))]
        {
            let _ = env;
            Vec::new()
        }
    },
};

/// Compile-time rules of `fetch_from`/`stream_from = "mqtt"` (see `fetchers/mod.rs`).
#[doc(hidden)]
#[macro_export]
macro_rules! __component_model_rules_mqtt {
    (@topic topic $($rest:ident)*) => {};
    (@topic $other:ident $($rest:ident)*) => {
        $crate::__component_model_rules_mqtt! { @topic $($rest)* }
    };
    (@topic) => {
        ::core::compile_error!("the `mqtt` source needs `topic = \"...\"`, the topic to read (e.g. `stream_from = \"mqtt\", topic = \"devices/42/config\"`)");
    };
    ($entry:tt has [$($names:ident)*]) => {
        $crate::__component_model_feature_mqtt! { $entry }
        $crate::__component_model_rules_mqtt! { @topic $($names)* }
    };
    ($entry:tt param topic) => {};
    ($entry:tt param $other:ident) => {
        $crate::fetchers::__unknown_backend_key! { $other "mqtt" [topic] }
    };
}

#[cfg(feature = "mqtt")]
#[doc(hidden)]
#[macro_export]
macro_rules! __component_model_feature_mqtt {
    ($entry:tt) => {};
}
#[cfg(not(feature = "mqtt"))]
#[doc(hidden)]
#[macro_export]
macro_rules! __component_model_feature_mqtt {
    (facade) => {
        ::core::compile_error!("backend `mqtt` needs cargo feature `mqtt` of component_model: `component_model = { features = [\"mqtt\"] }`");
    };
    (direct) => {
        ::core::compile_error!("backend `mqtt` needs cargo feature `mqtt` of component_model_async");
    };
}
