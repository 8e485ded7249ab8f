//! [`Source::preflight`](crate::Source::preflight) of the `http` source: a `HEAD` of each
//! distinct URL, with the headers fetch sends (the auth header included); a server that
//! answers `HEAD` with 405 or 501 gets the `GET` (asking `Range: bytes=0-0`), whose
//! response is dropped once its status and headers arrived (the body is never read) —
//! unless a secret field reads the URL: then no `GET` is sent (the body would cross the
//! wire) and the row is [`Access::Unchecked`]. The whole check of one URL is
//! bounded by the source's timeout.
//!
//! 2xx is [`Access::Readable`] (a `pointer` into the document is not checked: that would
//! read it), 404/410 [`Access::Missing`], 401/407 [`Access::Unauthenticated`], 403
//! [`Access::Denied`], 408/429/5xx, a connection refused or a timeout
//! [`Access::Unreachable`], any other status [`Access::Invalid`].

use std::time::Instant;

use reqwest::{Method, StatusCode};

use super::*;
use crate::source::{Access, Probe};

/// How much longer than the source's timeout a check waits for reqwest's own timeout to
/// fire (which says what was late) before giving up itself.
const GRACE: Duration = Duration::from_millis(250);

impl HttpSource {
    /// One [`Probe`] per request, in order; each distinct URL is checked once, all
    /// concurrently.
    pub(super) async fn preflight_all(&self, requests: &[FetchRequest]) -> Vec<Probe> {
        let urls: Vec<Result<String, SourceError>> =
            requests.iter().map(|r| self.url_for(r)).collect();
        let mut distinct: Vec<&str> = urls.iter().filter_map(|u| u.as_deref().ok()).collect();
        distinct.sort_unstable();
        distinct.dedup();
        // A URL any secret field reads: its body must not cross the wire, not even into a
        // buffer that is dropped.
        let secret = |url: &str| {
            self.is_sensitive()
                || urls
                    .iter()
                    .zip(requests)
                    .any(|(u, r)| u.as_deref().ok() == Some(url) && r.is_sensitive())
        };
        let checked: Vec<Probe> =
            futures::future::join_all(distinct.iter().map(|url| self.check_url(url, secret(url))))
                .await;
        urls.iter()
            .zip(requests)
            .map(|(url, request)| match url {
                Err(e) => Probe::from_error(e),
                Ok(url) => {
                    let at = distinct.binary_search(&url.as_str()).unwrap_or(0);
                    let probe = checked[at].clone();
                    let pointer = request
                        .pointer()
                        .or(request.spec().and_then(|s| s.pointer));
                    match (probe.access, pointer) {
                        (Access::Readable, Some(p)) => {
                            let detail = probe.detail.clone().unwrap_or_default();
                            probe.with_detail(format!(
                                "{detail}; `{p}` in the document not checked (that reads the document)"
                            ))
                        }
                        _ => probe,
                    }
                }
            })
            .collect()
    }

    /// `HEAD url`, or the `GET` when the server does not answer `HEAD`, within the timeout.
    async fn check_url(&self, url: &str, secret: bool) -> Probe {
        if let Some(why) = &self.invalid {
            return Probe::new(Access::Invalid).with_detail(why.clone());
        }
        let client = match self.client.get().await {
            Ok(client) => client,
            Err(e) => return Probe::from_error(&e),
        };
        let limits = self.client.limits();
        let shown = redact_url(url);
        let deadline = Instant::now() + limits.timeout;
        let checked = tokio::time::timeout(limits.timeout.saturating_add(GRACE), async {
            let status = self
                .headers_only(client, Method::HEAD, url, deadline)
                .await?;
            if matches!(status.as_u16(), 405 | 501) && secret {
                return Ok((
                    status,
                    format!(
                        "reachable; HEAD {shown} refused ({}) and a GET would transfer the secret: not sent",
                        status.as_u16()
                    ),
                    true,
                ));
            }
            if matches!(status.as_u16(), 405 | 501) {
                let got = self
                    .headers_only(client, Method::GET, url, deadline)
                    .await?;
                return Ok((
                    got,
                    format!("HEAD refused ({}), GET {shown}: {got}", status.as_u16()),
                    false,
                ));
            }
            Ok((status, format!("HEAD {shown}: {status}"), false))
        })
        .await;
        let (status, detail) = match checked {
            Ok(Ok((_, detail, true))) => return Probe::unchecked(detail),
            Ok(Ok((status, detail, false))) => (status, detail),
            Ok(Err(e)) => return Probe::from_error(&e),
            Err(_) => {
                return Probe::new(Access::Unreachable).with_detail(format!(
                    "no response from {shown} within {}",
                    crate::error::humanize(limits.timeout)
                ));
            }
        };
        let access = match status.as_u16() {
            200..=299 => Access::Readable,
            404 | 410 => Access::Missing,
            401 | 407 => Access::Unauthenticated,
            403 => Access::Denied,
            408 | 429 | 500..=599 => Access::Unreachable,
            _ => Access::Invalid,
        };
        Probe::new(access).with_detail(detail)
    }

    /// Sends `method url` with the source's headers and returns the status once the
    /// response's head arrived; the response is dropped unread (its connection closed).
    async fn headers_only(
        &self,
        client: &reqwest::Client,
        method: Method,
        url: &str,
        deadline: Instant,
    ) -> Result<StatusCode, SourceError> {
        let limits = self.client.limits();
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(SourceError::new(ErrorKind::Timeout).with_message(format!(
                "no response from {} within {}",
                redact_url(url),
                crate::error::humanize(limits.timeout)
            )));
        }
        // A GET (to a server that refuses HEAD) asks for one byte: the body is not read,
        // and a server that honours ranges does not send it either.
        let ranged = method == Method::GET;
        let mut request = client
            .request(method, url)
            .header("accept", "application/json")
            .timeout(left);
        if ranged {
            request = request.header("range", "bytes=0-0");
        }
        for (name, value) in &self.headers {
            request = request.header(name, value);
        }
        // Off the caller's runtime, as every exchange: a flood of interim responses must
        // not hold the caller's timers (the preflight's deadline with them).
        transport::send_for_status(request, url, limits).await
    }
}
