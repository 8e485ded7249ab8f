//! The `websocket` push source: `stream_from = "websocket", url = "ws://..."` — each text
//! or binary message on the connection is the field's new value (JSON for a struct).
//!
//! * at start (a fetch with no watch), the value is the first message within a deadline
//!   after connecting (10 s by default,
//!   [`WebSocketSource::with_first_message_timeout`]): a configuration service is expected
//!   to send its current value when a client connects; none in time is `not found` (the
//!   field's `fallback` then applies). It is one deadline over connecting and reading,
//!   whatever control frames arrive: a flood of pings or pongs cannot stretch it, and
//!   pongs owed to a server that does not read are buffered up to 256 KiB (then only the
//!   latest waits);
//! * watched (`stream_from` fields always are), one connection per URL stays open: every
//!   message is a candidate update; a ping goes out every 15 s and a connection silent
//!   for two intervals is dropped; a closed or failed connection is opened again with a
//!   backoff (500 ms doubling to 30 s), and the first message after it is read as the
//!   current value, so nothing said during the outage is lost beyond what the server no
//!   longer says;
//! * every message is bounded ([`DEFAULT_MAX_MESSAGE`], [`WebSocketSource::with_max_message`]):
//!   a larger one is refused by the reader before it is buffered, and the field's update
//!   is rejected with the reason (the old value stays; fetches of the field answer that
//!   error until the next message);
//! * `wss://` uses rustls (ring) with the system's root certificates; `${VAR}` in the URL is
//!   resolved like every URL; [`WebSocketSource::resolve`] pins a host name to an address
//!   (as curl's `--resolve`), e.g. to point `ws://config.service` at a test server.
//!
//! ## Preflight
//!
//! [`Source::preflight`](crate::Source::preflight) reads no message: per URL, the opening
//! handshake (bounded by the first message's deadline, as a fetch's connecting is),
//! then a close. A `101` is readable; HTTP 401 unauthenticated, 403 denied, 404
//! missing; no connection or no answer in time, unreachable.
//!
//! ## What this module declares
//!
//! * name `websocket`, cargo feature `websocket`, always registered by
//!   [`Sources::from_env`](crate::Sources::from_env) (it needs no address of its own);
//! * attribute keys: `url` (required); `field`/`pointer` select inside a JSON message;
//! * key label `url` (credentials in it are masked); values are not secret.

#[cfg(feature = "websocket")]
mod handshake;
#[cfg(feature = "websocket")]
mod source;
#[cfg(feature = "websocket")]
pub use source::*;

use crate::fetchers::Builtin;

pub(crate) const BUILTIN: Builtin = Builtin {
    names: &["websocket"],
    hint: "`Sources::from_env()` registers it with cargo feature `websocket`; or register a `WebSocketSource`",
    from_env: |_| {
        #[cfg(feature = "websocket")]
        return vec![(
            "websocket",
            std::sync::Arc::new(WebSocketSource::new()) as _,
        )];
        #[cfg(not(feature = "websocket"))]
        Vec::new()
    },
};

/// Compile-time rules of `fetch_from`/`stream_from = "websocket"` (see `fetchers/mod.rs`).
#[doc(hidden)]
#[macro_export]
macro_rules! __component_model_rules_websocket {
    (@url url $($rest:ident)*) => {};
    (@url $other:ident $($rest:ident)*) => {
        $crate::__component_model_rules_websocket! { @url $($rest)* }
    };
    (@url) => {
        ::core::compile_error!("the `websocket` source needs `url = \"ws://...\"`, the websocket to read (e.g. `url = \"ws://${CONFIG_HOST}/flags\"`)");
    };
    ($entry:tt has [$($names:ident)*]) => {
        $crate::__component_model_feature_websocket! { $entry }
        $crate::__component_model_rules_websocket! { @url $($names)* }
    };
    ($entry:tt param url) => {};
    ($entry:tt param $other:ident) => {
        $crate::fetchers::__unknown_backend_key! { $other "websocket" [url] }
    };
}

#[cfg(feature = "websocket")]
#[doc(hidden)]
#[macro_export]
macro_rules! __component_model_feature_websocket {
    ($entry:tt) => {};
}
#[cfg(not(feature = "websocket"))]
#[doc(hidden)]
#[macro_export]
macro_rules! __component_model_feature_websocket {
    (facade) => {
        ::core::compile_error!("backend `websocket` needs cargo feature `websocket` of component_model: `component_model = { features = [\"websocket\"] }`");
    };
    (direct) => {
        ::core::compile_error!("backend `websocket` needs cargo feature `websocket` of component_model_async");
    };
}
