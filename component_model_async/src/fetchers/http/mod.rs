//! The `api` / `http` source and [`ApiFetcher`] on reqwest (rustls): a JSON document from
//! an HTTP GET, optionally narrowed with a JSON pointer, converted into the field's type.
//!
//! * `fetch_from = "api", url = "https://..."`: the built-in `api`/`http` sources (always
//!   present with feature `http`) read absolute URLs;
//! * `fetch_from = "billing_api", path = "/settings"`: an [`HttpSource`] registered by name
//!   with a base URL and headers, so tests and deployments point one struct at different
//!   servers.
//!
//! Fields that read the same URL in one fetch share ONE request (each then takes its own
//! `pointer`/`field` out of the document). A non-2xx status is an error naming the status
//! and URL (404 → not found, 401/403 → unauthorized, 408/429/5xx → unavailable); a body that
//! is not JSON is a decode error; every request has a timeout (10 s unless set); at most 10
//! redirects are followed.
//!
// Compiled as a test only when the feature is on (the module is built without it).
#![cfg_attr(feature = "http", doc = "```")]
#![cfg_attr(not(feature = "http"), doc = "```ignore")]
//! use component_model_async::{AsyncAssign, HttpSource, Sources};
//!
//! #[derive(AsyncAssign, Debug)]
//! struct Billing {
//!     #[component(fetch_from = "billing_api", path = "/settings", pointer = "/port")]
//!     port: u16,
//! }
//!
//! let sources = Sources::new().register(
//!     "billing_api",
//!     HttpSource::new("https://billing.internal:8443/v2").with_auth_header("token"),
//! );
//! # let _ = sources;
//! ```
//!
//! ## Preflight
//!
//! [`Source::preflight`](crate::Source::preflight) sends a `HEAD` of each distinct URL with
//! the source's headers (its auth header included); to a server that answers `HEAD` with
//! 405 or 501, the `GET`, whose response is dropped as soon as its status arrived (the body
//! is never read). 2xx is [`Access::Readable`](crate::Access) (a `pointer` into the
//! document is not checked), 404/410 `Missing`, 401/407 `Unauthenticated`, 403 `Denied`,
//! 408/429/5xx, a refused connection or no answer within the source's timeout
//! `Unreachable`; the whole check of a URL is bounded by that timeout.
//!
//! ## What this module declares
//!
//! * names `api` and `http` (present in `Sources::new()` with cargo feature `http`), and
//!   any name an [`HttpSource`] is registered under;
//! * attribute keys: `url` (required for `api`/`http`), `path` (under a registered base
//!   URL);
//! * key label `url` or `path`; values are not secret; coalescing: one GET per URL.

#[cfg(feature = "http")]
mod source;
#[cfg(feature = "http")]
pub use source::*;

use crate::fetchers::Builtin;

pub(crate) const BUILTIN: Builtin = Builtin {
    names: &["api", "http"],
    hint: "present in `Sources::new()` with cargo feature `http`",
    from_env: |_| Vec::new(),
};

/// `api` and `http`, in every `Sources::new()`: an [`HttpSource`] without a base URL.
pub(crate) fn defaults() -> crate::fetchers::Registrations {
    #[cfg(feature = "http")]
    {
        let http: std::sync::Arc<dyn crate::Source> = std::sync::Arc::new(HttpSource::default());
        vec![("api", http.clone()), ("http", http)]
    }
    #[cfg(not(feature = "http"))]
    Vec::new()
}

/// Compile-time rules of `fetch_from = "api"` / `"http"` (see `fetchers/mod.rs`).
#[doc(hidden)]
#[macro_export]
macro_rules! __component_model_rules_http {
    (@url $name:tt url $($rest:ident)*) => {};
    (@url $name:tt $other:ident $($rest:ident)*) => {
        $crate::__component_model_rules_http! { @url $name $($rest)* }
    };
    (@url $name:tt) => {
        ::core::compile_error!(::core::concat!("the `", $name, "` source needs `url = \"https://...\"`; to use a registered base URL, register an HttpSource by name and use `path`"));
    };
    ($name:tt $entry:tt has [$($names:ident)*]) => {
        $crate::__component_model_feature_http! { $entry }
        $crate::__component_model_rules_http! { @url $name $($names)* }
    };
    ($name:tt $entry:tt param url) => {};
    ($name:tt $entry:tt param path) => {};
    ($name:tt $entry:tt param $other:ident) => {
        $crate::fetchers::__unknown_backend_key! { $other $name [url path] }
    };
}

#[cfg(feature = "http")]
#[doc(hidden)]
#[macro_export]
macro_rules! __component_model_feature_http {
    ($entry:tt) => {};
}
#[cfg(not(feature = "http"))]
#[doc(hidden)]
#[macro_export]
macro_rules! __component_model_feature_http {
    (facade) => {
        ::core::compile_error!("backend `api`/`http` needs cargo feature `http` of component_model: `component_model = { features = [\"http\"] }`");
    };
    (direct) => {
        ::core::compile_error!("backend `api`/`http` needs cargo feature `http` of component_model_async");
    };
}
