//! The `nats` push source: `stream_from = "nats", topic = "config.app"` — the field's
//! value is the latest message on the subject.
//!
//! * **At start** (a fetch with no watch): when a JetStream stream keeps the subject, its
//!   last message on the subject (`$JS.API.STREAM.MSG.GET` with `last_by_subj`); else, a
//!   core subject keeps nothing, so the first message published within a deadline
//!   (10 s, [`NatsSource::with_first_message_timeout`]) is the value, and none is
//!   `not found` (the field's `fallback` applies).
//! * **Watched** (`stream_from` fields always are): a JetStream subject is followed with
//!   an ordered push consumer delivering the last message per subject and then every new
//!   one (the client recreates it from the last sequence seen after a reconnect, so
//!   nothing is skipped; when the consumer itself is made again after a failure, it starts
//!   with the last message, which is the current value again and changes nothing); a
//!   core subject is a plain subscription (the client subscribes again after a
//!   reconnect; what was published meanwhile is not seen — core NATS keeps nothing). A
//!   failed subscription is opened again with a backoff. Which stream keeps a subject is
//!   asked of JetStream; only "no stream" (or no JetStream on the server) makes it a core
//!   subject — a timeout or a refusal is an error, retried.
//! * Bounded before anything is buffered: async-nats reads a message by the size the
//!   server announces and has no receive limit, so it reaches the servers through a relay
//!   of ours on 127.0.0.1 that reads the protocol first. A message announced larger than
//!   [`DEFAULT_MAX_MESSAGE`] ([`NatsSource::with_max_message`]; a third more for a
//!   JetStream answer, which carries it in base64) is refused before its payload is read
//!   — a fetch fails with `TooLarge` naming the announced size and the subject, a watched
//!   update is rejected with the reason —; its payload is read past a buffer at a time
//!   when it is at most four times the bound, else that server connection is closed (the
//!   client reconnects). Control lines are bounded at 64 KiB. The relay listens on
//!   127.0.0.1 and admits only its own client (a per-relay pass in the `CONNECT` name):
//!   another local process that connects is closed before a byte reaches the server. TLS (`tls://`, or a server
//!   that requires it) is done by the relay with [`NatsSource::with_tls`]'s settings
//!   (system roots by default).
//! * `NATS_URL` (`nats://host:4222`, several comma-separated) registers the source in
//!   [`Sources::from_env`](crate::Sources::from_env). Credentials in the URL
//!   (`nats://user:password@host`, or `nats://token@host`) are handed to async-nats as
//!   connect options, never inside a URL it may log, and are never shown (all of a
//!   server up to its last `@`, with or without a scheme). One client has one set of
//!   credentials: a server without any gets the others'; different ones are a `Config`
//!   error.
//! * async-nats queues at most 128 messages per subscription (not its default 65 536),
//!   so a flooding server cannot pile messages up: an ordered consumer makes itself
//!   again from the last sequence it delivered; a core subscription loses what did not
//!   fit (the latest message may be among it, until the next one). When the source is
//!   dropped, a connection task still reconnecting sends no credentials and stops
//!   connecting to the relay's former port.
//!
//! ## Preflight
//!
//! [`Source::preflight`](crate::Source::preflight) reads no message, within the source's
//! timeout: it connects, and asks JetStream which stream keeps each subject. A core
//! subject is readable once connected (detail: "connected; core subject, nothing to
//! look up"); a subject a stream keeps is readable when the stream holds a message on
//! it and missing when not (`STREAM.INFO` filtered to the subject: a count, no
//! payload). A JetStream lookup the user's permissions refuse is denied at once (the
//! server reports a violation naming the API subject, and answers nothing); credentials
//! refused are unauthenticated; cannot connect, unreachable. Whether the user may
//! subscribe to a core subject is not checked (only subscribing would tell).
//!
//! ## What this module declares
//!
//! * name `nats`, cargo feature `nats`, registered by
//!   [`Sources::from_env`](crate::Sources::from_env) from `NATS_URL`;
//! * attribute keys: `topic` (required: the subject);
//! * key label `topic`; values are not secret.

#[cfg(feature = "nats")]
pub(crate) mod connection;
#[cfg(feature = "nats")]
pub(crate) mod relay;
#[cfg(feature = "nats")]
mod source;
#[cfg(feature = "nats")]
pub use source::*;

use crate::fetchers::Builtin;

pub(crate) const BUILTIN: Builtin = Builtin {
    names: &["nats"],
    hint: "`Sources::from_env()` registers it from NATS_URL with cargo feature `nats`; or register a `NatsSource`",
    from_env: |env| {
        #[cfg(feature = "nats")]
        return NatsSource::from_env_source(env)
            .map(|s| ("nats", std::sync::Arc::new(s) as _))
            .into_iter()
            .collect();
        #[cfg(not(feature = "nats"))]
        {
            let _ = env;
            Vec::new()
        }
    },
};

/// Compile-time rules of `fetch_from`/`stream_from = "nats"` (see `fetchers/mod.rs`).
#[doc(hidden)]
#[macro_export]
macro_rules! __component_model_rules_nats {
    (@topic topic $($rest:ident)*) => {};
    (@topic $other:ident $($rest:ident)*) => {
        $crate::__component_model_rules_nats! { @topic $($rest)* }
    };
    (@topic) => {
        ::core::compile_error!("the `nats` source needs `topic = \"...\"`, the subject to read (e.g. `stream_from = \"nats\", topic = \"config.app\"`)");
    };
    ($entry:tt has [$($names:ident)*]) => {
        $crate::__component_model_feature_nats! { $entry }
        $crate::__component_model_rules_nats! { @topic $($names)* }
    };
    ($entry:tt param topic) => {};
    ($entry:tt param $other:ident) => {
        $crate::fetchers::__unknown_backend_key! { $other "nats" [topic] }
    };
}

#[cfg(feature = "nats")]
#[doc(hidden)]
#[macro_export]
macro_rules! __component_model_feature_nats {
    ($entry:tt) => {};
}
#[cfg(not(feature = "nats"))]
#[doc(hidden)]
#[macro_export]
macro_rules! __component_model_feature_nats {
    (facade) => {
        ::core::compile_error!("backend `nats` needs cargo feature `nats` of component_model: `component_model = { features = [\"nats\"] }`");
    };
    (direct) => {
        ::core::compile_error!("backend `nats` needs cargo feature `nats` of component_model_async");
    };
}
