//! [`AwsSecretsSource`]: AWS Secrets Manager (see the module above).

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures::StreamExt;
use serde::Deserialize;

use super::client::{self, AwsClient, SECRETS_MANAGER};
use super::credentials::AwsCredentials;
use crate::error::{ErrorKind, SourceError};
use crate::fetchers::env::EnvSource;
use crate::source::{
    Access, Change, Changes, FetchContext, FetchRequest, Preflighting, Probe, RawValue, Revision,
    Source,
};
use crate::source_support::coalesce;

/// The most secrets one `BatchGetSecretValue` names (the API's limit).
pub(crate) const SECRETS_PER_BATCH: usize = 20;

/// The version stage read when the field names none.
pub(crate) const AWSCURRENT: &str = "AWSCURRENT";

/// How often a watch asks `DescribeSecret` when the fields name no `watch_interval`:
/// every call is billed and counts against the account's request quota.
pub(crate) const DEFAULT_AWS_WATCH: Duration = Duration::from_secs(30);

/// Pages of one batch followed at most (20 secrets fit in a few; a server that hands out
/// `NextToken`s without end stops here).
const MAX_PAGES: usize = 20;

/// AWS Secrets Manager: `fetch_from = "aws_secrets", key = "prod/db"` reads the secret's
/// `SecretString` (or its `SecretBinary`), `field = "password"` a member of a JSON
/// secret; `version_stage` / `version_id` pin another version than `AWSCURRENT`.
///
/// Every value is secret. Up to 20 secrets of one fetch are read with
/// one `BatchGetSecretValue`; a lone secret, a pinned version, and every secret of a
/// source whose batch call was refused as a whole (a role allowed `GetSecretValue` only)
/// one `GetSecretValue` each, at most 16 requests at once. Requests are
/// signed with SigV4; credentials come from the standard chain (or
/// [`with_credentials`](Self::with_credentials)).
///
/// ```
/// use std::time::Duration;
/// use component_model_async::{AwsSecretsSource, Source};
///
/// let sm = AwsSecretsSource::new("eu-west-1")
///     .with_endpoint("http://127.0.0.1:5000")
///     .with_credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG", None)
///     .with_timeout(Duration::from_secs(5));
/// // Where credentials come from, never a key.
/// assert_eq!(
///     sm.location().as_deref(),
///     Some("AWS Secrets Manager eu-west-1 at http://127.0.0.1:5000 (credentials: the credentials given)")
/// );
/// assert!(sm.is_sensitive());
/// // Debug shows the access key id, never the secret key.
/// assert!(!format!("{sm:?}").contains("wJalrXUtnFEMI"));
/// ```
#[derive(Clone)]
pub struct AwsSecretsSource {
    client: AwsClient,
    watch_every: Duration,
    /// Set when a `BatchGetSecretValue` was refused as a whole (`AccessDeniedException`:
    /// a role allowed `GetSecretValue` only): later reads go one `GetSecretValue` each.
    batch_denied: Arc<AtomicBool>,
}

impl fmt::Debug for AwsSecretsSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AwsSecretsSource")
            .field("client", &self.client)
            .field("watch_every", &self.watch_every)
            .field("batch_denied", &self.batch_denied.load(Ordering::Relaxed))
            .finish()
    }
}

/// One value of `BatchGetSecretValue` / `GetSecretValue` (never printed: no `Debug`).
#[derive(Deserialize, Clone)]
struct SecretValue {
    #[serde(rename = "ARN", default)]
    arn: Option<String>,
    #[serde(rename = "Name", default)]
    name: Option<String>,
    #[serde(rename = "VersionId", default)]
    version_id: Option<String>,
    #[serde(rename = "SecretString", default)]
    secret_string: Option<String>,
    #[serde(rename = "SecretBinary", default)]
    secret_binary: Option<String>,
}

#[derive(Deserialize)]
struct BatchError {
    #[serde(rename = "SecretId", default)]
    secret_id: Option<String>,
    #[serde(rename = "ErrorCode", default)]
    code: Option<String>,
    #[serde(rename = "Message", default)]
    message: Option<String>,
}

#[derive(Deserialize)]
struct BatchAnswer {
    #[serde(rename = "SecretValues", default)]
    values: Vec<SecretValue>,
    #[serde(rename = "Errors", default)]
    errors: Vec<BatchError>,
    #[serde(rename = "NextToken", default)]
    next_token: Option<String>,
}

#[derive(Deserialize)]
struct Described {
    #[serde(rename = "VersionIdsToStages", default)]
    versions: HashMap<String, Vec<String>>,
    #[serde(rename = "DeletedDate", default)]
    deleted: Option<serde_json::Value>,
}

/// What one request reads.
#[derive(Clone, PartialEq, Eq, Hash)]
enum Target<'a> {
    /// The `AWSCURRENT` version: batched.
    Current(&'a str),
    /// A version by stage or id: one `GetSecretValue`.
    Pinned {
        id: &'a str,
        stage: Option<&'a str>,
        version: Option<&'a str>,
    },
}

impl<'a> Target<'a> {
    fn of(request: &'a FetchRequest) -> Result<Self, SourceError> {
        let id = request
            .key()
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .ok_or_else(|| {
                SourceError::new(ErrorKind::Config)
                    .with_message("the field names no `key` (the secret's name or ARN)")
            })?;
        let stage = request
            .param("version_stage")
            .map(str::trim)
            .filter(|s| !s.is_empty());
        let version = request
            .param("version_id")
            .map(str::trim)
            .filter(|s| !s.is_empty());
        Ok(match (stage, version) {
            (None | Some(AWSCURRENT), None) => Target::Current(id),
            _ => Target::Pinned { id, stage, version },
        })
    }

    fn id(&self) -> &'a str {
        match self {
            Target::Current(id) | Target::Pinned { id, .. } => id,
        }
    }

    fn describe(&self) -> String {
        match self {
            Target::Current(id) => format!("secret `{id}`"),
            Target::Pinned {
                id,
                version: Some(v),
                ..
            } => format!("secret `{id}` version `{v}`"),
            Target::Pinned {
                id, stage: Some(s), ..
            } => format!("secret `{id}` stage `{s}`"),
            Target::Pinned { id, .. } => format!("secret `{id}`"),
        }
    }

    /// The stage a watch follows (`None`: a pinned version id never changes).
    fn stage(&self) -> Option<&'a str> {
        match self {
            Target::Current(_) => Some(AWSCURRENT),
            Target::Pinned {
                version: Some(_), ..
            } => None,
            Target::Pinned { stage, .. } => Some(stage.unwrap_or(AWSCURRENT)),
        }
    }
}

/// Whether the answer `v` is the secret `id` names (its name, its ARN, or a partial ARN:
/// the ARN without the six random characters AWS appends).
fn names(v: &SecretValue, id: &str) -> bool {
    v.name.as_deref() == Some(id)
        || v.arn.as_deref() == Some(id)
        || (id.starts_with("arn:")
            && v.arn
                .as_deref()
                .and_then(|arn| arn.strip_prefix(id))
                .is_some_and(|rest| rest.starts_with('-') && rest.len() == 7))
}

/// The secret name an ARN id carries (`arn:...:secret:prod/db-AbCdEf` or the partial
/// `arn:...:secret:prod/db`), as written; `None` for a name.
fn arn_name(id: &str) -> Option<&str> {
    id.strip_prefix("arn:")?
        .split_once(":secret:")
        .map(|(_, n)| n)
}

/// Whether `a` and `b` (names or ARNs) may name secrets of the same name: an answer's
/// `Name` could not tell them apart.
fn same_name(a: &str, b: &str) -> bool {
    let close = |arn_part: &str, name: &str| {
        arn_part == name
            || arn_part
                .strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('-') && rest.len() == 7)
            || name
                .strip_prefix(arn_part)
                .is_some_and(|rest| rest.starts_with('-') && rest.len() == 7)
    };
    match (arn_name(a), arn_name(b)) {
        (None, None) => a == b,
        (Some(x), None) => close(x, b),
        (None, Some(y)) => close(y, a),
        (Some(x), Some(y)) => close(x, y),
    }
}

/// The ids of `batches`, in order.
fn batched_ids<'a>(batches: &'a [&'a [&'a str]]) -> impl Iterator<Item = &'a str> + 'a {
    batches.iter().flat_map(|b| b.iter().copied())
}

/// Whether a refusal of a whole `BatchGetSecretValue` (the service's answer, not a
/// transport or credentials failure) is worth asking each secret alone: a denial of the
/// batch action, or a request the service rejects for one of its names.
fn splits(e: &SourceError) -> bool {
    let m = e.message().unwrap_or("");
    m.contains("refused BatchGetSecretValue")
        && [
            "AccessDeniedException",
            "AccessDenied",
            "ValidationException",
            "InvalidParameterException",
            "InvalidRequestException",
        ]
        .iter()
        .any(|c| m.contains(&format!(" {c}:")))
}

/// The value of one secret version, with its version id.
fn value_of(v: SecretValue, what: &str) -> (Result<RawValue, SourceError>, Option<String>) {
    let version = v.version_id;
    let value = match (v.secret_string, v.secret_binary) {
        (Some(text), _) => Ok(RawValue::Text(text)),
        (None, Some(b64)) => client::unb64(&b64)
            .map(RawValue::text_or_bytes)
            .ok_or_else(|| {
                SourceError::new(ErrorKind::Decode)
                    .with_message(format!("the SecretBinary of {what} is not valid base64"))
            }),
        (None, None) => Err(SourceError::new(ErrorKind::Decode)
            .with_message(format!("{what} has neither SecretString nor SecretBinary"))),
    };
    (value, version)
}

fn decode_error(what: &str, e: &serde_json::Error) -> SourceError {
    SourceError::new(ErrorKind::Decode).with_message(format!(
        "AWS Secrets Manager's answer for {what} is not one: {}",
        crate::fetchers::transport::json_error(e)
    ))
}

/// An answer and the version id it was read at.
type Answer = (Result<RawValue, SourceError>, Option<String>);

impl AwsSecretsSource {
    /// Secrets Manager in `region` (`eu-west-1`), at its public endpoint
    /// (`https://secretsmanager.<region>.amazonaws.com`), with the standard credential
    /// chain of the process environment.
    pub fn new(region: impl AsRef<str>) -> Self {
        AwsSecretsSource {
            watch_every: DEFAULT_AWS_WATCH,
            client: AwsClient::new(&SECRETS_MANAGER, region.as_ref()),
            batch_denied: Arc::default(),
        }
    }

    /// The source the process environment names (see
    /// [`from_env_source`](Self::from_env_source)).
    pub fn from_env() -> Option<Self> {
        Self::from_env_source(&EnvSource::process())
    }

    /// The source `env` names: the region from `AWS_REGION` / `AWS_DEFAULT_REGION`
    /// (`None` without one), the endpoint from `AWS_ENDPOINT_URL_SECRETS_MANAGER` or
    /// `AWS_ENDPOINT_URL`, the credentials from the standard chain.
    ///
    /// ```
    /// use component_model_async::{AwsSecretsSource, EnvSource, Source};
    ///
    /// let env = EnvSource::from_map([
    ///     ("AWS_REGION", "us-east-1"),
    ///     ("AWS_ENDPOINT_URL", "http://localhost:4566"),
    ///     ("AWS_ACCESS_KEY_ID", "AKID"),
    ///     ("AWS_SECRET_ACCESS_KEY", "s3cr3t"),
    /// ]);
    /// let sm = AwsSecretsSource::from_env_source(&env).unwrap();
    /// assert_eq!(
    ///     sm.location().as_deref(),
    ///     Some("AWS Secrets Manager us-east-1 at http://localhost:4566 (credentials: the environment (AWS_ACCESS_KEY_ID))")
    /// );
    /// assert!(!format!("{sm:?}").contains("s3cr3t"));
    /// assert!(AwsSecretsSource::from_env_source(&EnvSource::from_map([("X", "1")])).is_none());
    /// ```
    pub fn from_env_source(env: &EnvSource) -> Option<Self> {
        Some(AwsSecretsSource {
            watch_every: DEFAULT_AWS_WATCH,
            client: AwsClient::from_env(&SECRETS_MANAGER, env)?,
            batch_denied: Arc::default(),
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

    /// ONE `BatchGetSecretValue` of at most 20 distinct secret ids (its pages followed);
    /// one answer per id, in order.
    async fn batch(&self, ids: &[&str]) -> Vec<Answer> {
        let what = match ids {
            [one] => format!("secret `{one}`"),
            _ => format!("{} secrets ({}, ...)", ids.len(), ids[0]),
        };
        let mut values: Vec<SecretValue> = Vec::new();
        let mut errors: Vec<BatchError> = Vec::new();
        let mut token: Option<String> = None;
        // All pages together are bounded like one body: a server handing out tokens
        // with values on every page cannot pile up MAX_PAGES bodies.
        let mut total = 0usize;
        for page_no in 0..MAX_PAGES {
            let mut body = serde_json::json!({ "SecretIdList": ids });
            if let Some(t) = &token {
                body["NextToken"] = t.clone().into();
            }
            let page = match self.client.call("BatchGetSecretValue", &body, &what).await {
                Ok(bytes) => {
                    total = total.saturating_add(bytes.len());
                    if total > self.client.max_body() {
                        Err(SourceError::new(ErrorKind::TooLarge).with_message(format!(
                            "AWS Secrets Manager's BatchGetSecretValue pages for {what} are over {} bytes together",
                            self.client.max_body()
                        )))
                    } else {
                        serde_json::from_slice::<BatchAnswer>(&bytes)
                            .map_err(|e| decode_error(&what, &e))
                    }
                }
                Err(e) => Err(e),
            };
            let page = match page {
                Ok(p) => p,
                // Refused as a whole (a role without BatchGetSecretValue, or one name
                // the call rejects): each secret alone, so each error lands on its key.
                Err(e) if page_no == 0 && splits(&e) => {
                    if e.kind() == ErrorKind::Unauthorized
                        && !self.batch_denied.swap(true, Ordering::Relaxed)
                    {
                        tracing::debug!(error = %e, "BatchGetSecretValue refused: reading secrets one GetSecretValue each from now on");
                    }
                    return self.singles(ids).await;
                }
                Err(e) => return ids.iter().map(|_| (Err(e.clone()), None)).collect(),
            };
            let progress = !page.values.is_empty() || !page.errors.is_empty();
            values.extend(page.values);
            errors.extend(page.errors);
            token = page.next_token.filter(|t| !t.is_empty());
            if token.is_none() || !progress {
                break;
            }
        }
        ids.iter()
            .map(|id| {
                let what = format!("secret `{id}`");
                // Not taken: one secret asked by its name and its ARN is answered to both.
                if let Some(v) = values.iter().find(|v| names(v, id)) {
                    return value_of(v.clone(), &what);
                }
                if let Some(e) = errors.iter().find(|e| e.secret_id.as_deref() == Some(id)) {
                    let code = e.code.clone().unwrap_or_default();
                    let message = client::bounded(e.message.as_deref().unwrap_or(""));
                    let kind = client::kind_of(400, &code, &message);
                    return (
                        Err(SourceError::new(kind).with_message(format!(
                            "AWS Secrets Manager ({}) refused {what}: {code}: {message}",
                            self.client.region()
                        ))),
                        None,
                    );
                }
                (
                    Err(SourceError::new(ErrorKind::Decode).with_message(format!(
                        "AWS Secrets Manager's BatchGetSecretValue answer has neither a value nor an error for {what}"
                    ))),
                    None,
                )
            })
            .collect()
    }

    /// One `GetSecretValue` per id (the current version), concurrently.
    async fn singles(&self, ids: &[&str]) -> Vec<Answer> {
        futures::future::join_all(
            ids.iter()
                .map(|id| async move { self.get_one(&Target::Current(id)).await }),
        )
        .await
    }

    /// ONE `GetSecretValue` (a pinned version, or the current one of a lone secret).
    async fn get_one(&self, target: &Target<'_>) -> Answer {
        let what = target.describe();
        let mut body = serde_json::json!({ "SecretId": target.id() });
        if let Target::Pinned { stage, version, .. } = target {
            if let Some(s) = stage {
                body["VersionStage"] = (*s).into();
            }
            if let Some(v) = version {
                body["VersionId"] = (*v).into();
            }
        }
        match self.client.call("GetSecretValue", &body, &what).await {
            Ok(bytes) => match serde_json::from_slice::<SecretValue>(&bytes) {
                Ok(v) => value_of(v, &what),
                Err(e) => (Err(decode_error(&what, &e)), None),
            },
            Err(e) => (Err(e), None),
        }
    }

    /// Distinct requests: the current versions in batches of 20, the pinned ones one by
    /// one, all concurrently.
    async fn read(&self, requests: &[&FetchRequest]) -> Vec<Answer> {
        let mut answers: Vec<Option<Answer>> = requests.iter().map(|_| None).collect();
        let mut current: Vec<&str> = Vec::new();
        let mut pinned: Vec<(usize, Target<'_>)> = Vec::new();
        let mut targets: Vec<Option<Target<'_>>> = Vec::with_capacity(requests.len());
        for (i, r) in requests.iter().enumerate() {
            match Target::of(r) {
                Ok(Target::Current(id)) => {
                    if !current.contains(&id) {
                        current.push(id);
                    }
                    targets.push(Some(Target::Current(id)));
                }
                Ok(t) => {
                    pinned.push((i, t.clone()));
                    targets.push(Some(t));
                }
                Err(e) => {
                    answers[i] = Some((Err(e), None));
                    targets.push(None);
                }
            }
        }
        // An ARN whose secret name another id of this fetch names too is read alone: a
        // batch answer's `Name` cannot tell another account's `prod/db` from ours.
        let (alone, batched): (Vec<&str>, Vec<&str>) = current.iter().partition(|id| {
            self.batch_denied.load(Ordering::Relaxed)
                || (arn_name(id).is_some()
                    && current
                        .iter()
                        .any(|other| other != *id && same_name(id, other)))
        });
        let mut alone = alone;
        let mut batches: Vec<&[&str]> = Vec::new();
        for chunk in batched.chunks(SECRETS_PER_BATCH) {
            match chunk {
                // One secret: GetSecretValue, still one round trip, and what a role
                // allowed `GetSecretValue` only can do.
                [one] => alone.push(one),
                _ => batches.push(chunk),
            }
        }
        let batches_of = batches;
        let batches = futures::future::join_all(batches_of.iter().map(|ids| self.batch(ids)));
        let lone = self.singles(&alone);
        let singles = futures::future::join_all(pinned.iter().map(|(_, t)| self.get_one(t)));
        let (batches, lone, singles) = futures::join!(batches, lone, singles);
        let mut by_id: HashMap<&str, Answer> = batched_ids(&batches_of)
            .zip(batches.into_iter().flatten())
            .collect();
        by_id.extend(alone.iter().copied().zip(lone));
        for ((i, _), answer) in pinned.iter().zip(singles) {
            answers[*i] = Some(answer);
        }
        for (i, t) in targets.iter().enumerate() {
            if let Some(Target::Current(id)) = t
                && let Some(a) = by_id.get(id)
            {
                answers[i] = Some(a.clone());
            }
        }
        answers
            .into_iter()
            .map(|a| a.unwrap_or_else(|| (Err(SourceError::new(ErrorKind::Unavailable)), None)))
            .collect()
    }

    /// `DescribeSecret` of `id`: its versions and stages (no value crosses).
    async fn describe(&self, id: &str) -> Result<Described, SourceError> {
        let what = format!("secret `{id}`");
        let bytes = self
            .client
            .call(
                "DescribeSecret",
                &serde_json::json!({ "SecretId": id }),
                &what,
            )
            .await?;
        serde_json::from_slice(&bytes).map_err(|e| decode_error(&what, &e))
    }

    async fn preflight_probes(&self, requests: Vec<FetchRequest>) -> Vec<Probe> {
        if let Err(e) = self.client.check_valid() {
            return requests.iter().map(|_| Probe::from_error(&e)).collect();
        }
        futures::future::join_all(requests.iter().map(|r| async move {
            let target = match Target::of(r) {
                Ok(t) => t,
                Err(e) => return Probe::from_error(&e),
            };
            match self.describe(target.id()).await {
                Err(e) => client::probe_of_error(&e),
                Ok(d) if d.deleted.is_some() => {
                    Probe::missing().with_detail("the secret is scheduled for deletion")
                }
                Ok(d) => match &target {
                    Target::Pinned {
                        version: Some(v), ..
                    } => match d.versions.get(*v) {
                        Some(_) => Probe::readable().with_detail(format!(
                            "version {v} exists (GetSecretValue not checked)"
                        )),
                        // DescribeSecret lists staged versions only: an unstaged one may
                        // exist still.
                        None => Probe::new(Access::Unchecked).with_detail(format!(
                            "version `{v}` has no stage: DescribeSecret cannot tell whether it exists"
                        )),
                    },
                    _ => {
                        let stage = target.stage().unwrap_or(AWSCURRENT);
                        match d
                            .versions
                            .iter()
                            .find(|(_, stages)| stages.iter().any(|s| s == stage))
                        {
                            Some((id, _)) => Probe::readable().with_detail(format!(
                                "{stage} is version {id} (GetSecretValue not checked)"
                            )),
                            None => Probe::missing()
                                .with_detail(format!("no version has stage `{stage}`")),
                        }
                    }
                },
            }
        }))
        .await
    }

    /// The version id the stage `stage` of `id` is at now; empty when the secret is gone
    /// (deleted, or scheduled for deletion) or no version has the stage: a change too,
    /// the field's re-read then fails or falls back.
    async fn version_at(&self, id: &str, stage: &str) -> Result<Option<String>, SourceError> {
        let d = match self.describe(id).await {
            Ok(d) if d.deleted.is_none() => d,
            Ok(_) => return Ok(Some(String::new())),
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Some(String::new())),
            Err(e) => return Err(e),
        };
        Ok(d.versions
            .into_iter()
            .find(|(_, stages)| stages.iter().any(|s| s == stage))
            .map_or(Some(String::new()), |(v, _)| Some(v)))
    }
}

/// A watched secret stage and the positions of the requests reading it.
struct Watched {
    id: String,
    stage: String,
    covers: Vec<usize>,
}

impl AwsSecretsSource {
    fn watch_secrets(&self, requests: Vec<FetchRequest>) -> Result<Changes, SourceError> {
        self.client.check_valid()?;
        let mut watched: Vec<Watched> = Vec::new();
        for (i, r) in requests.iter().enumerate() {
            let Ok(t) = Target::of(r) else { continue };
            let Some(stage) = t.stage() else { continue };
            match watched
                .iter_mut()
                .find(|w| w.id == t.id() && w.stage == stage)
            {
                Some(w) => w.covers.push(i),
                None => watched.push(Watched {
                    id: t.id().to_owned(),
                    stage: stage.to_owned(),
                    covers: vec![i],
                }),
            }
        }
        if watched.is_empty() {
            // Every field pinned by `version_id`: nothing can change, and polling them
            // instead would re-read (and bill) every value forever.
            return Ok(futures::stream::pending().boxed());
        }
        let every = requests
            .iter()
            .filter_map(|r| r.spec().and_then(|s| s.watch_interval))
            .min()
            .unwrap_or(self.watch_every);
        let state = (self.clone(), watched, Vec::<Option<String>>::new());
        Ok(
            futures::stream::unfold(state, move |(source, watched, mut seen)| async move {
                loop {
                    if !seen.is_empty() {
                        tokio::time::sleep(every).await;
                    }
                    let polled = futures::future::join_all(
                        watched.iter().map(|w| source.version_at(&w.id, &w.stage)),
                    )
                    .await;
                    // Every secret refused for good (a role without DescribeSecret): a
                    // watch that can never fire. Said once; the engine polls instead.
                    if let Some(e) =
                        client::permanent_failure(polled.iter(), "secretsmanager:DescribeSecret")
                    {
                        return Some((Err(e), (source, watched, seen)));
                    }
                    let now: Vec<Option<String>> = polled
                        .into_iter()
                        .map(|r| match r {
                            Ok(v) => v,
                            Err(e) => {
                                tracing::debug!(error = %e, "DescribeSecret failed during a watch");
                                None
                            }
                        })
                        .collect();
                    let first = seen.is_empty();
                    let changed: Vec<usize> = watched
                        .iter()
                        .zip(&now)
                        .enumerate()
                        .filter(|(i, (_, v))| {
                            !first && v.is_some() && seen.get(*i).cloned().flatten() != **v
                        })
                        .flat_map(|(_, (w, _))| w.covers.iter().copied())
                        .collect();
                    // A version that could not be read keeps the last one seen.
                    seen = now
                        .into_iter()
                        .enumerate()
                        .map(|(i, v)| v.or_else(|| seen.get(i).cloned().flatten()))
                        .collect();
                    if !changed.is_empty() {
                        return Some((Ok(Change::Changed(changed)), (source, watched, seen)));
                    }
                }
            })
            .boxed(),
        )
    }
}

#[async_trait::async_trait]
impl Source for AwsSecretsSource {
    async fn fetch(&self, request: &FetchRequest) -> Result<RawValue, SourceError> {
        self.fetch_many(&[request])
            .await
            .pop()
            .unwrap_or_else(|| Err(SourceError::new(ErrorKind::Unavailable)))
    }

    /// `BatchGetSecretValue` per 20 distinct secrets, concurrently; a pinned version one
    /// `GetSecretValue`.
    async fn fetch_many(&self, requests: &[&FetchRequest]) -> Vec<Result<RawValue, SourceError>> {
        self.fetch_many_in(&FetchContext::new(), requests).await
    }

    /// As [`Source::fetch_many`], noting each value's `VersionId` for the fetch report.
    async fn fetch_many_in(
        &self,
        cx: &FetchContext,
        requests: &[&FetchRequest],
    ) -> Vec<Result<RawValue, SourceError>> {
        let versions: Mutex<Vec<(FetchRequest, String)>> = Mutex::new(Vec::new());
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
            cx.note_revision(&request, Revision::Digest(client::version_digest(&version)));
        }
        answers
    }

    /// The service, region and endpoint (no credentials).
    fn location(&self) -> Option<String> {
        Some(self.client.location())
    }

    /// `("secret", <name or ARN>)`.
    fn native_key(&self, request: &FetchRequest) -> Option<(&'static str, String)> {
        request.key().map(|k| ("secret", k.to_owned()))
    }

    fn is_sensitive(&self) -> bool {
        true
    }

    /// `DescribeSecret` per secret (no value crosses): the secret exists, is not
    /// scheduled for deletion, and has the version stage (or id) the field reads;
    /// `GetSecretValue` (and `kms:Decrypt`) is not checked. A `version_id` without a
    /// stage is `unchecked` (`DescribeSecret` lists staged versions only).
    fn preflight(&self, requests: Vec<FetchRequest>) -> Preflighting<'_> {
        Box::pin(self.preflight_probes(requests))
    }

    /// Polls `DescribeSecret` of each watched secret every `watch_interval` (default
    /// 30 s): a stage that moved to another `VersionId` is a change. When every poll is
    /// refused (no `secretsmanager:DescribeSecret`), the stream ends with a
    /// [`ErrorKind::Config`] error naming it (the engine polls the fields instead);
    /// fields pinned by `version_id` only never change: a stream that never yields.
    fn watch(&self, requests: Vec<FetchRequest>) -> Result<Changes, SourceError> {
        self.watch_secrets(requests)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(name: &str, arn: &str) -> SecretValue {
        SecretValue {
            arn: Some(arn.to_owned()),
            name: Some(name.to_owned()),
            version_id: None,
            secret_string: None,
            secret_binary: None,
        }
    }

    #[test]
    fn answers_match_names_and_arns() {
        let arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/db-AbCdEf";
        let v = value("prod/db", arn);
        assert!(names(&v, "prod/db"));
        assert!(names(&v, arn));
        assert!(names(
            &v,
            "arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/db"
        ));
        assert!(!names(
            &v,
            "arn:aws:secretsmanager:us-east-1:123456789012:secret:prod"
        ));
        assert!(!names(&v, "prod"));
    }

    #[test]
    fn targets() {
        let r = FetchRequest::for_key("aws_secrets", "a");
        assert!(matches!(Target::of(&r), Ok(Target::Current("a"))));
        let r =
            FetchRequest::for_key("aws_secrets", "a").with_param("version_stage", "AWSPREVIOUS");
        let t = Target::of(&r).unwrap();
        assert_eq!(t.stage(), Some("AWSPREVIOUS"));
        let r = FetchRequest::for_key("aws_secrets", "a").with_param("version_id", "v1");
        assert_eq!(Target::of(&r).unwrap().stage(), None);
        assert!(Target::of(&FetchRequest::for_source("aws_secrets")).is_err());
    }
}
