//! [`AwsSsmSource`]: AWS Systems Manager Parameter Store (see the module above).

use std::fmt;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use futures::StreamExt;
use serde::Deserialize;

use super::client::{self, AwsClient, SSM};
use super::credentials::AwsCredentials;
use super::secrets::DEFAULT_AWS_WATCH;
use crate::convert::subtree::{self, Subtree};
use crate::error::{ErrorKind, SourceError};
use crate::fetchers::env::EnvSource;
use crate::source::{
    Access, Change, Changes, FetchContext, FetchRequest, Preflighting, Probe, RawValue, Revision,
    Source,
};
use crate::source_support::coalesce;

/// The most names one `GetParameters` takes (the API's limit).
pub(crate) const PARAMETERS_PER_CALL: usize = 10;

/// The most parameters one page of `GetParametersByPath` answers (the API's limit).
const PAGE: usize = 10;

/// AWS Systems Manager Parameter Store: `fetch_from = "aws_ssm", key = "/app/port"`
/// reads a parameter (a `SecureString` decrypted; a `StringList` as its text), `prefix =
/// "/app/"` every parameter under a path into a map or struct.
///
/// Every value is secret. Up to 10 parameters of one fetch are read
/// with one `GetParameters`; a prefix is `GetParametersByPath` (recursive, 10 a page),
/// bounded by `max_keys` (default 10,000) and the field's `max_size`: more is
/// [`ErrorKind::TooLarge`], never a truncated map.
///
/// ```
/// use component_model_async::{AwsSsmSource, Source};
///
/// let ssm = AwsSsmSource::new("eu-west-1").with_endpoint("http://127.0.0.1:5000");
/// assert_eq!(
///     ssm.location().as_deref(),
///     Some("AWS SSM Parameter Store eu-west-1 at http://127.0.0.1:5000")
/// );
/// assert!(ssm.is_sensitive());
/// ```
#[derive(Clone)]
pub struct AwsSsmSource {
    client: AwsClient,
    watch_every: Duration,
}

impl fmt::Debug for AwsSsmSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AwsSsmSource")
            .field("client", &self.client)
            .field("watch_every", &self.watch_every)
            .finish()
    }
}

/// One parameter of `GetParameters` / `GetParametersByPath` (never printed: no `Debug`).
#[derive(Deserialize, Clone)]
struct Parameter {
    #[serde(rename = "Name", default)]
    name: String,
    #[serde(rename = "ARN", default)]
    arn: Option<String>,
    #[serde(rename = "Selector", default)]
    selector: Option<String>,
    #[serde(rename = "Type", default)]
    kind: Option<String>,
    #[serde(rename = "Value", default)]
    value: Option<String>,
    #[serde(rename = "Version", default)]
    version: Option<u64>,
}

#[derive(Deserialize)]
struct Parameters {
    #[serde(rename = "Parameters", default)]
    parameters: Vec<Parameter>,
    #[serde(rename = "InvalidParameters", default)]
    invalid: Vec<String>,
    #[serde(rename = "NextToken", default)]
    next_token: Option<String>,
}

/// What one request reads.
#[derive(Clone, Copy)]
enum Op<'a> {
    Name(&'a str),
    Prefix(&'a str),
}

impl<'a> Op<'a> {
    fn of(request: &'a FetchRequest) -> Result<Self, SourceError> {
        if let Some(prefix) = request.param(subtree::PREFIX) {
            return Ok(Op::Prefix(prefix));
        }
        match request.key().map(str::trim).filter(|k| !k.is_empty()) {
            Some(key) => Ok(Op::Name(key)),
            None => Err(SourceError::new(ErrorKind::Config)
                .with_message("the field names no `key` (the parameter's name)")),
        }
    }
}

/// The path `GetParametersByPath` takes for `prefix`: no trailing `/` (but `/` itself).
fn path_of(prefix: &str) -> String {
    let trimmed = prefix.trim().trim_end_matches('/');
    if trimmed.is_empty() {
        "/".to_owned()
    } else {
        trimmed.to_owned()
    }
}

/// Whether `p` is the parameter `name` asks for (its name, ARN or `name:selector`).
fn is_named(p: &Parameter, name: &str) -> bool {
    p.name == name
        || p.arn.as_deref() == Some(name)
        || p.selector
            .as_deref()
            .is_some_and(|s| name.strip_prefix(p.name.as_str()) == Some(s))
}

fn decode_error(what: &str, e: &serde_json::Error) -> SourceError {
    SourceError::new(ErrorKind::Decode).with_message(format!(
        "AWS SSM's answer for {what} is not one: {}",
        crate::fetchers::transport::json_error(e)
    ))
}

/// An answer and the revision it was read at.
type Answer = (Result<RawValue, SourceError>, Option<u64>);

impl AwsSsmSource {
    /// Parameter Store in `region`, at its public endpoint
    /// (`https://ssm.<region>.amazonaws.com`), with the standard credential chain of the
    /// process environment.
    pub fn new(region: impl AsRef<str>) -> Self {
        AwsSsmSource {
            watch_every: DEFAULT_AWS_WATCH,
            client: AwsClient::new(&SSM, region.as_ref()),
        }
    }

    /// The source the process environment names (see
    /// [`from_env_source`](Self::from_env_source)).
    pub fn from_env() -> Option<Self> {
        Self::from_env_source(&EnvSource::process())
    }

    /// The source `env` names: the region from `AWS_REGION` / `AWS_DEFAULT_REGION`
    /// (`None` without one), the endpoint from `AWS_ENDPOINT_URL_SSM` or
    /// `AWS_ENDPOINT_URL`, the credentials from the standard chain.
    ///
    /// ```
    /// use component_model_async::{AwsSsmSource, EnvSource, Source};
    ///
    /// let env = EnvSource::from_map([
    ///     ("AWS_DEFAULT_REGION", "eu-central-1"),
    ///     ("AWS_ENDPOINT_URL_SSM", "http://localhost:4566"),
    /// ]);
    /// let ssm = AwsSsmSource::from_env_source(&env).unwrap();
    /// assert_eq!(ssm.location().as_deref(), Some("AWS SSM Parameter Store eu-central-1 at http://localhost:4566"));
    /// assert!(AwsSsmSource::from_env_source(&EnvSource::from_map([("X", "1")])).is_none());
    /// ```
    pub fn from_env_source(env: &EnvSource) -> Option<Self> {
        Some(AwsSsmSource {
            watch_every: DEFAULT_AWS_WATCH,
            client: AwsClient::from_env(&SSM, env)?,
        })
    }

    /// Sends requests to `url` (LocalStack, moto, a VPC endpoint) instead of the public
    /// endpoint; `host:port` is `https`.
    #[must_use]
    pub fn with_endpoint(mut self, url: impl AsRef<str>) -> Self {
        self.client.set_endpoint(url.as_ref());
        self
    }

    /// Signs with these credentials instead of the standard chain's. The secret access key
    /// and the session token never appear in `Debug`, errors or logs.
    #[must_use]
    pub fn with_credentials(
        mut self,
        access_key_id: impl Into<String>,
        secret_access_key: impl Into<String>,
        session_token: Option<String>,
    ) -> Self {
        self.client.set_credentials(AwsCredentials {
            access_key_id: access_key_id.into(),
            secret_access_key: secrecy::SecretString::from(secret_access_key.into()),
            session_token: session_token.map(secrecy::SecretString::from),
            expires_at: None,
        });
        self
    }

    /// Limits each request (and finding credentials) to `timeout` (default 10 s).
    #[must_use]
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.client.set_timeout(timeout);
        self
    }

    /// Connects with these TLS settings (a custom CA, a client certificate).
    #[must_use]
    pub fn with_tls(mut self, tls: crate::TlsConfig) -> Self {
        self.client.set_tls(tls);
        self
    }

    /// Polls a watch every `every` when its fields name no `watch_interval` (default
    /// 30 s: every call is billed).
    #[must_use]
    pub fn with_watch_interval(mut self, every: Duration) -> Self {
        self.watch_every = every;
        self
    }

    /// Reads response bodies of at most `bytes` (default 16 MiB): a larger one fails its
    /// fields with [`ErrorKind::TooLarge`].
    #[must_use]
    pub fn with_max_body(mut self, bytes: usize) -> Self {
        self.client.set_max_body(bytes);
        self
    }

    /// The region requests are signed for.
    pub fn region(&self) -> &str {
        self.client.region()
    }

    /// The endpoint requests go to.
    pub fn endpoint(&self) -> &str {
        self.client.endpoint()
    }

    /// ONE `GetParameters` of at most 10 distinct names; per name its parameter (with its
    /// value when `decrypt`... and always its metadata) or the error.
    async fn get_parameters(
        &self,
        names: &[&str],
        decrypt: bool,
    ) -> Vec<Result<Parameter, SourceError>> {
        let what = match names {
            [one] => format!("parameter `{one}`"),
            _ => format!("{} parameters ({}, ...)", names.len(), names[0]),
        };
        let body = serde_json::json!({ "Names": names, "WithDecryption": decrypt });
        let answer = match self.client.call("GetParameters", &body, &what).await {
            Ok(bytes) => {
                serde_json::from_slice::<Parameters>(&bytes).map_err(|e| decode_error(&what, &e))
            }
            Err(e) => Err(e),
        };
        let answer = match answer {
            Ok(a) => a,
            Err(e) => return names.iter().map(|_| Err(e.clone())).collect(),
        };
        names
            .iter()
            .map(|name| {
                // Not taken: one parameter asked by its name and its ARN is answered to both.
                if let Some(p) = answer.parameters.iter().find(|p| is_named(p, name)) {
                    return Ok(p.clone());
                }
                if answer.invalid.iter().any(|n| n == name) {
                    return Err(SourceError::not_found().with_message(format!(
                        "AWS SSM ({}) has no parameter `{name}` (InvalidParameters)",
                        self.client.region()
                    )));
                }
                Err(SourceError::new(ErrorKind::Decode).with_message(format!(
                    "AWS SSM's GetParameters answer has neither the parameter `{name}` nor says it is invalid"
                )))
            })
            .collect()
    }

    /// Every parameter under `prefix` (`GetParametersByPath`, recursive, its pages
    /// followed), into `tree`; stops past `max_keys` or `max_size`. The newest version
    /// among them.
    async fn by_path(
        &self,
        prefix: &str,
        mut tree: Option<&mut Subtree<'_>>,
        max_keys: usize,
        decrypt: bool,
    ) -> Result<(usize, u64), SourceError> {
        let path = path_of(prefix);
        let what = format!("prefix `{prefix}`");
        let mut token: Option<String> = None;
        let mut count = 0usize;
        let mut newest = 0u64;
        // Pages can come back empty with a token (AWS filters after paging): bounded still.
        let max_pages = max_keys / PAGE + 50;
        for _ in 0..max_pages {
            let mut body = serde_json::json!({
                "Path": path,
                "Recursive": true,
                "WithDecryption": decrypt,
                "MaxResults": PAGE,
            });
            if let Some(t) = &token {
                body["NextToken"] = t.clone().into();
            }
            let bytes = self
                .client
                .call("GetParametersByPath", &body, &what)
                .await?;
            let page: Parameters =
                serde_json::from_slice(&bytes).map_err(|e| decode_error(&what, &e))?;
            for p in page.parameters {
                count += 1;
                newest = newest.max(p.version.unwrap_or(0));
                let Some(tree) = tree.as_deref_mut() else {
                    if count > max_keys {
                        return Ok((count, newest));
                    }
                    continue;
                };
                let rest = p.name.strip_prefix(path.as_str()).unwrap_or(&p.name);
                let name = rest.strip_prefix('/').unwrap_or(rest);
                if name.is_empty() {
                    continue;
                }
                tree.insert(name, RawValue::Text(p.value.unwrap_or_default()))?;
            }
            token = page.next_token.filter(|t| !t.is_empty());
            if token.is_none() {
                return Ok((count, newest));
            }
        }
        Err(
            SourceError::new(ErrorKind::Unavailable).with_message(format!(
                "AWS SSM answered more than {max_pages} pages for {what} without an end"
            )),
        )
    }

    /// One subtree read.
    async fn read_prefix(&self, request: &FetchRequest, prefix: &str) -> Answer {
        let mut tree = match Subtree::of(request) {
            Some(Ok(tree)) => tree,
            Some(Err(e)) => return (Err(e), None),
            None => {
                return (
                    Err(SourceError::new(ErrorKind::Config).with_message("no `prefix`")),
                    None,
                );
            }
        };
        let max_keys = tree.max_keys();
        match self.by_path(prefix, Some(&mut tree), max_keys, true).await {
            Ok((_, newest)) => (Ok(tree.finish()), (newest > 0).then_some(newest)),
            Err(e) => (Err(e), None),
        }
    }

    /// Distinct requests: names in `GetParameters` of 10, prefixes one
    /// `GetParametersByPath` walk each, all concurrently.
    async fn read(&self, requests: &[&FetchRequest]) -> Vec<Answer> {
        let mut answers: Vec<Option<Answer>> = requests.iter().map(|_| None).collect();
        let mut names: Vec<&str> = Vec::new();
        let mut prefixes: Vec<(usize, &str)> = Vec::new();
        for (i, r) in requests.iter().enumerate() {
            match Op::of(r) {
                Ok(Op::Name(n)) => {
                    if !names.contains(&n) {
                        names.push(n);
                    }
                }
                Ok(Op::Prefix(p)) => prefixes.push((i, p)),
                Err(e) => answers[i] = Some((Err(e), None)),
            }
        }
        let by_name = futures::future::join_all(
            names
                .chunks(PARAMETERS_PER_CALL)
                .map(|chunk| self.get_parameters(chunk, true)),
        );
        let trees = futures::future::join_all(
            prefixes
                .iter()
                .map(|(i, p)| self.read_prefix(requests[*i], p)),
        );
        let (by_name, trees) = futures::join!(by_name, trees);
        let by_name: Vec<(&str, Answer)> = names
            .iter()
            .copied()
            .zip(by_name.into_iter().flatten())
            .map(|(n, p)| {
                let answer = match p {
                    Ok(p) => (Ok(RawValue::Text(p.value.unwrap_or_default())), p.version),
                    Err(e) => (Err(e), None),
                };
                (n, answer)
            })
            .collect();
        for ((i, _), answer) in prefixes.iter().zip(trees) {
            answers[*i] = Some(answer);
        }
        for (i, r) in requests.iter().enumerate() {
            if let Ok(Op::Name(n)) = Op::of(r)
                && let Some((_, a)) = by_name.iter().find(|(m, _)| *m == n)
            {
                answers[i] = Some(a.clone());
            }
        }
        answers
            .into_iter()
            .map(|a| a.unwrap_or_else(|| (Err(SourceError::new(ErrorKind::Unavailable)), None)))
            .collect()
    }

    /// What a watch or preflight sees of each request without decrypting: a name's
    /// `Version` and type, a prefix's key count and newest version.
    async fn metadata(&self, requests: &[FetchRequest]) -> Vec<Result<Meta, SourceError>> {
        let mut out: Vec<Option<Result<Meta, SourceError>>> =
            requests.iter().map(|_| None).collect();
        let mut names: Vec<&str> = Vec::new();
        let mut prefixes: Vec<(usize, &str, usize)> = Vec::new();
        for (i, r) in requests.iter().enumerate() {
            match Op::of(r) {
                Ok(Op::Name(n)) => {
                    if !names.contains(&n) {
                        names.push(n);
                    }
                }
                Ok(Op::Prefix(p)) => match Subtree::of(r) {
                    Some(Ok(t)) => prefixes.push((i, p, t.max_keys())),
                    Some(Err(e)) => out[i] = Some(Err(e)),
                    None => {}
                },
                Err(e) => out[i] = Some(Err(e)),
            }
        }
        let by_name = futures::future::join_all(
            names
                .chunks(PARAMETERS_PER_CALL)
                .map(|chunk| self.get_parameters(chunk, false)),
        );
        let trees = futures::future::join_all(
            prefixes
                .iter()
                .map(|(_, p, max)| self.by_path(p, None, *max, false)),
        );
        let (by_name, trees) = futures::join!(by_name, trees);
        let by_name: Vec<(&str, Result<Meta, SourceError>)> = names
            .iter()
            .copied()
            .zip(by_name.into_iter().flatten())
            .map(|(n, p)| {
                (
                    n,
                    p.map(|p| Meta::Name {
                        version: p.version.unwrap_or(0),
                        kind: p.kind.unwrap_or_default(),
                    }),
                )
            })
            .collect();
        for ((i, _, max), t) in prefixes.iter().zip(trees) {
            out[*i] = Some(t.map(|(count, newest)| Meta::Prefix {
                count,
                newest,
                max_keys: *max,
            }));
        }
        for (i, r) in requests.iter().enumerate() {
            if let Ok(Op::Name(n)) = Op::of(r)
                && let Some((_, m)) = by_name.iter().find(|(m, _)| *m == n)
            {
                out[i] = Some(m.clone());
            }
        }
        out.into_iter()
            .map(|m| m.unwrap_or_else(|| Err(SourceError::new(ErrorKind::Unavailable))))
            .collect()
    }

    async fn preflight_probes(&self, requests: Vec<FetchRequest>) -> Vec<Probe> {
        if let Err(e) = self.client.check_valid() {
            return requests.iter().map(|_| Probe::from_error(&e)).collect();
        }
        self.metadata(&requests)
            .await
            .into_iter()
            .map(|m| match m {
                Err(e) => client::probe_of_error(&e),
                Ok(Meta::Name { version, kind }) => {
                    let detail = if kind == "SecureString" {
                        format!("{kind}, version {version} (kms:Decrypt not checked)")
                    } else {
                        format!("{kind}, version {version}")
                    };
                    Probe::readable().with_detail(detail)
                }
                Ok(Meta::Prefix {
                    count, max_keys, ..
                }) if count > max_keys => Probe::new(Access::Invalid).with_detail(format!(
                    "more than {max_keys} parameters under the prefix, over `max_keys`"
                )),
                Ok(Meta::Prefix { count, .. }) => Probe::readable().with_detail(match count {
                    1 => "1 parameter under the prefix".to_owned(),
                    n => format!("{n} parameters under the prefix"),
                }),
            })
            .collect()
    }

    fn watch_parameters(&self, requests: Vec<FetchRequest>) -> Result<Changes, SourceError> {
        self.client.check_valid()?;
        if requests.is_empty() {
            return Err(SourceError::new(ErrorKind::Config).with_message("no parameter to watch"));
        }
        let every = requests
            .iter()
            .filter_map(|r| r.spec().and_then(|s| s.watch_interval))
            .min()
            .unwrap_or(self.watch_every);
        let state = (self.clone(), requests, Vec::<Option<(u64, usize)>>::new());
        Ok(
            futures::stream::unfold(state, move |(source, requests, mut seen)| async move {
                loop {
                    if !seen.is_empty() {
                        tokio::time::sleep(every).await;
                    }
                    let now: Vec<Option<(u64, usize)>> = source
                        .metadata(&requests)
                        .await
                        .into_iter()
                        .map(|m| match m {
                            Ok(Meta::Name { version, .. }) => Some((version, 1)),
                            Ok(Meta::Prefix { newest, count, .. }) => Some((newest, count)),
                            // Gone: a change too (the field falls back).
                            Err(e) if e.kind() == ErrorKind::NotFound => Some((0, 0)),
                            Err(e) => {
                                tracing::debug!(error = %e, "reading SSM parameter versions failed during a watch");
                                None
                            }
                        })
                        .collect();
                    let first = seen.is_empty();
                    let changed: Vec<usize> = now
                        .iter()
                        .enumerate()
                        .filter(|(i, v)| !first && v.is_some() && seen.get(*i).copied().flatten() != **v)
                        .map(|(i, _)| i)
                        .collect();
                    seen = now
                        .into_iter()
                        .enumerate()
                        .map(|(i, v)| v.or_else(|| seen.get(i).copied().flatten()))
                        .collect();
                    if !changed.is_empty() {
                        return Some((Ok(Change::Changed(changed)), (source, requests, seen)));
                    }
                }
            })
            .boxed(),
        )
    }
}

/// What a watch or preflight learns of one request without a value.
#[derive(Clone)]
enum Meta {
    Name {
        version: u64,
        kind: String,
    },
    Prefix {
        count: usize,
        newest: u64,
        max_keys: usize,
    },
}

#[async_trait::async_trait]
impl Source for AwsSsmSource {
    async fn fetch(&self, request: &FetchRequest) -> Result<RawValue, SourceError> {
        self.fetch_many(&[request])
            .await
            .pop()
            .unwrap_or_else(|| Err(SourceError::new(ErrorKind::Unavailable)))
    }

    /// `GetParameters` per 10 distinct names, concurrently; a prefix `GetParametersByPath`.
    async fn fetch_many(&self, requests: &[&FetchRequest]) -> Vec<Result<RawValue, SourceError>> {
        self.fetch_many_in(&FetchContext::new(), requests).await
    }

    /// As [`Source::fetch_many`], noting each value's `Version` (a prefix: the newest
    /// under it) for the fetch report.
    async fn fetch_many_in(
        &self,
        cx: &FetchContext,
        requests: &[&FetchRequest],
    ) -> Vec<Result<RawValue, SourceError>> {
        let versions: Mutex<Vec<(FetchRequest, u64)>> = Mutex::new(Vec::new());
        let answers = coalesce(requests, |unique| {
            let versions = &versions;
            async move {
                let read = self.read(&unique).await;
                let mut noted = versions.lock().unwrap_or_else(PoisonError::into_inner);
                unique
                    .iter()
                    .zip(read)
                    .map(|(r, (answer, version))| {
                        if let (Ok(_), Some(v)) = (&answer, version) {
                            noted.push(((*r).clone(), v));
                        }
                        answer
                    })
                    .collect()
            }
        })
        .await;
        for (request, version) in versions
            .into_inner()
            .unwrap_or_else(PoisonError::into_inner)
        {
            cx.note_revision(&request, Revision::Index(version));
        }
        answers
    }

    /// The service, region and endpoint (no credentials).
    fn location(&self) -> Option<String> {
        Some(self.client.location())
    }

    /// `("prefix", <prefix>)` for a subtree read, else `("parameter", <name>)`.
    fn native_key(&self, request: &FetchRequest) -> Option<(&'static str, String)> {
        subtree::native_key(request).or_else(|| request.key().map(|k| ("parameter", k.to_owned())))
    }

    fn is_sensitive(&self) -> bool {
        true
    }

    /// A subtree read (`prefix = "..."`) names its keys itself: no convention key.
    fn convention(
        &self,
        request: FetchRequest,
        field: &crate::FieldPath<'_>,
    ) -> Result<FetchRequest, String> {
        if Subtree::is_subtree(&request) {
            return Ok(request);
        }
        Ok(request.with_key(field.key('/')))
    }

    /// `GetParameters` WITHOUT decryption (no plaintext of a `SecureString` crosses) per
    /// 10 names; a prefix `GetParametersByPath` without decryption, counted against
    /// `max_keys`.
    fn preflight(&self, requests: Vec<FetchRequest>) -> Preflighting<'_> {
        Box::pin(self.preflight_probes(requests))
    }

    /// Polls the watched parameters' `Version` (without decryption) every
    /// `watch_interval` (default 30 s); a prefix changes when its newest
    /// version or its count does.
    fn watch(&self, requests: Vec<FetchRequest>) -> Result<Changes, SourceError> {
        self.watch_parameters(requests)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        assert_eq!(path_of("/app/"), "/app");
        assert_eq!(path_of("/"), "/");
        assert_eq!(path_of("/a/b"), "/a/b");
    }

    #[test]
    fn names_match() {
        let p = Parameter {
            name: "/app/port".into(),
            arn: Some("arn:aws:ssm:us-east-1:1:parameter/app/port".into()),
            selector: Some(":3".into()),
            kind: None,
            value: None,
            version: Some(3),
        };
        assert!(is_named(&p, "/app/port"));
        assert!(is_named(&p, "/app/port:3"));
        assert!(is_named(&p, "arn:aws:ssm:us-east-1:1:parameter/app/port"));
        assert!(!is_named(&p, "/app/por"));
    }
}
