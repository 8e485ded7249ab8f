//! In-process **API doubles** of Consul, Vault, Azure Key Vault and Google Secret Manager
//! for tests (feature `test-util`), and [`WebSocketServer`], a websocket configuration
//! service double.
//!
//! [`ConsulDouble`] and [`VaultDouble`] are not Consul or Vault: they are small HTTP
//! servers on `127.0.0.1` that answer the endpoints this crate uses the way HashiCorp's
//! HTTP API documentation describes them — paths, query parameters, headers
//! (`X-Consul-Token`, `X-Consul-Index`, `X-Vault-Token`, `X-Vault-Namespace`), status
//! codes, base64 values and the Vault response envelope — so a configuration struct can be
//! tested against them without a real server. Each records the requests it received, so a
//! test can count round trips. What they implement is listed on each type; anything else
//! gets a 404 or 405.
//!
//! They are checked from outside in CI with widely used clients, unmodified: **hvac
//! 2.4.0** (Vault), **py-consul 1.8.0** (Consul), and the official Python SDKs
//! **azure-keyvault-secrets 4.12.0** ([`AzureKeyVaultDouble`], with its Entra ID and managed
//! identity token endpoints; served behind TLS, as the SDK sends tokens over HTTPS only) and
//! **google-cloud-secret-manager 2.32.0** ([`GcpSecretsDouble`], REST transport, with its
//! OAuth token endpoint and metadata server), through the calls an application or operator
//! makes (`tests/clients/conformance.py` against `cargo run --example serve_doubles`).
//! AWS is tested against moto, a real AWS API emulator, instead of a double.
//!
//! ```
//! use component_model_async::test_util::ConsulDouble;
//! use component_model_async::{AsyncAssign, ConsulSource, Sources};
//!
//! #[derive(AsyncAssign, Debug)]
//! struct App {
//!     #[component(fetch_from = "consul", key = "app/port")]
//!     port: u16,
//!     #[component(fetch_from = "consul", key = "app/name")]
//!     name: String,
//! }
//!
//! # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
//! let consul = ConsulDouble::start().await;
//! consul.put("app/port", "8080");
//! consul.put("app/name", "billing");
//! let sources = Sources::new().register("consul", ConsulSource::new(consul.address()));
//! let app = App::fetch_all_components_with(&sources).await.unwrap();
//! assert_eq!((app.port, app.name.as_str()), (8080, "billing"));
//! assert_eq!(consul.requests_to("/v1/txn").len(), 1); // both keys in one transaction
//! # });
//! ```

mod azure_keyvault;
mod consul;
mod fault;
mod gcp_secrets;
mod vault;
mod vault_auth;
mod websocket;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, Uri};

pub use azure_keyvault::{AzureKeyVaultDouble, AzureKeyVaultDoubleBuilder};
pub use consul::{ConsulDouble, ConsulDoubleBuilder};
pub use fault::{Fault, FaultProxy};
pub use gcp_secrets::GcpSecretsDouble;
pub use vault::{VaultDouble, VaultDoubleBuilder};
pub use websocket::WebSocketServer;

/// How many tasks spawned by this crate are alive now, in the whole process (a Redis
/// connection's driver while the connection is in use; the blocking write of
/// `local_cache`). Tasks of the crates underneath (hyper's connections, sqlx's pools) are
/// not counted. For tests that check no task outlives a fetch.
pub fn library_tasks_alive() -> usize {
    crate::task::alive()
}

/// One request a double received.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RecordedRequest {
    /// `GET`, `PUT`, ...
    pub method: String,
    /// The path, percent-decoded (`/v1/kv/app/port`).
    pub path: String,
    /// The query parameters in order (`raw` has an empty value).
    pub query: Vec<(String, String)>,
    /// The request headers, names lower-case.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl std::fmt::Debug for RecordedRequest {
    /// Header values of tokens are not shown.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let headers: Vec<String> = self
            .headers
            .iter()
            .map(|(n, v)| match n.as_str() {
                "x-consul-token" | "x-vault-token" | "authorization" => format!("{n}: <redacted>"),
                _ => format!("{n}: {v}"),
            })
            .collect();
        f.debug_struct("RecordedRequest")
            .field("method", &self.method)
            .field("path", &self.path)
            .field("query", &self.query)
            .field("headers", &headers)
            .field("body", &format_args!("<{} bytes>", self.body.len()))
            .finish()
    }
}

impl RecordedRequest {
    /// The value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The value of query parameter `name` (`Some("")` for a bare `?raw`).
    pub fn query_param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// The requests a double has received.
#[derive(Clone, Default)]
pub(crate) struct Recorder(Arc<Mutex<Vec<RecordedRequest>>>);

impl Recorder {
    fn record(
        &self,
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
        body: &Bytes,
    ) -> RecordedRequest {
        let r = RecordedRequest {
            method: method.as_str().to_owned(),
            path: decode_path(uri.path()),
            query: parse_query(uri.query()),
            headers: headers
                .iter()
                .map(|(n, v)| {
                    (
                        n.as_str().to_owned(),
                        String::from_utf8_lossy(v.as_bytes()).into_owned(),
                    )
                })
                .collect(),
            body: body.to_vec(),
        };
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(r.clone());
        r
    }

    fn all(&self) -> Vec<RecordedRequest> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn matching(&self, prefix: &str) -> Vec<RecordedRequest> {
        let all = self.0.lock().unwrap_or_else(|p| p.into_inner());
        all.iter()
            .filter(|r| r.path.starts_with(prefix))
            .cloned()
            .collect()
    }

    fn clear(&self) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }
}

fn decode_path(path: &str) -> String {
    percent_encoding::percent_decode_str(path)
        .decode_utf8_lossy()
        .into_owned()
}

fn parse_query(query: Option<&str>) -> Vec<(String, String)> {
    form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// A running double: the task serving it stops when this is dropped.
struct Server {
    addr: SocketAddr,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl Server {
    /// Serves `router` on a free port of 127.0.0.1 until the returned value is dropped.
    async fn spawn(router: axum::Router) -> std::io::Result<Server> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let serve = axum::serve(listener, router).with_graceful_shutdown(async move {
            let _ = rx.await;
        });
        spawn(async move {
            let _ = serve.await;
        });
        Ok(Server { addr, _stop: tx })
    }
}

fn spawn(f: impl Future<Output = ()> + Send + 'static) {
    drop(tokio::spawn(f));
}

/// A Go-style duration (`"5s"`, `"100ms"`, `"1m30s"`) as Consul's `wait` accepts it.
pub(crate) fn parse_go_duration(s: &str) -> Option<std::time::Duration> {
    let mut total = 0f64;
    let mut rest = s.trim();
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let num_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let n: f64 = rest[..num_end].parse().ok()?;
        rest = &rest[num_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let factor = match &rest[..unit_end] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" | "" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        total += n * factor;
        rest = &rest[unit_end..];
    }
    Some(std::time::Duration::from_secs_f64(total))
}

/// `2026-11-22T04:19:39.000000Z` for a Unix time, as Vault prints `created_time`.
pub(crate) fn rfc3339(t: std::time::SystemTime) -> String {
    let d = t.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:06}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        d.subsec_micros()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        assert_eq!(
            parse_go_duration("5s"),
            Some(std::time::Duration::from_secs(5))
        );
        assert_eq!(
            parse_go_duration("1m30s"),
            Some(std::time::Duration::from_secs(90))
        );
        assert_eq!(
            parse_go_duration("250ms"),
            Some(std::time::Duration::from_millis(250))
        );
        assert_eq!(parse_go_duration("soon"), None);
    }

    #[test]
    fn rfc3339_dates() {
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_795_321_179);
        assert_eq!(rfc3339(t), "2026-11-22T04:19:39.000000Z");
        assert_eq!(
            rfc3339(std::time::UNIX_EPOCH),
            "1970-01-01T00:00:00.000000Z"
        );
    }
}
