//! Watching Vault KV v2 secrets: KV secrets have no leases to renew, so their metadata is
//! polled (`GET /v1/<mount>/metadata/<path>`, its `current_version`) every
//! `watch_interval` of the watched fields (default 10 s), and a new version is a change.
//! One metadata read per distinct secret per interval, however many fields read it.
//! A KV v1 mount has no versions (and a token may lack the `read` capability on
//! `metadata/`): those secrets cannot be watched and a `Live` polls them instead.

use std::time::Duration;

use futures::StreamExt;

use super::source::VaultSource;
use crate::error::{ErrorKind, SourceError};
use crate::source::{Change, Changes, FetchRequest};

/// How often secret metadata is read when the fields name no `watch_interval`.
pub const DEFAULT_VAULT_WATCH: Duration = Duration::from_secs(10);

/// A watched secret and the positions of the requests reading it.
struct Secret {
    mount: String,
    path: String,
    version: Option<u8>,
    covers: Vec<usize>,
}

impl VaultSource {
    /// The `current_version` of a KV v2 secret.
    async fn current_version(&self, s: &Secret) -> Result<u64, SourceError> {
        let kv = match s.version {
            Some(v) => v,
            None => self.kv_version_of(&s.mount, &s.path).await?,
        };
        if kv != 2 {
            return Err(SourceError::new(ErrorKind::Config).with_message(format!(
                "`{}/{}` is on a KV v1 mount: no versions to watch",
                s.mount, s.path
            )));
        }
        let what = format!("the metadata of `{}/{}`", s.mount, s.path);
        let envelope = self
            .call(&["v1", &s.mount, "metadata", &s.path], &what)
            .await
            .map_err(|e| match e.kind() {
                ErrorKind::Unauthorized => SourceError::new(ErrorKind::Config).with_message(
                    format!("the token may not read {what}: it cannot be watched"),
                ),
                _ => e,
            })?;
        envelope
            .data
            .as_ref()
            .and_then(|d| d.get("current_version"))
            .and_then(serde_json::Value::as_u64)
            .ok_or_else(|| {
                SourceError::new(ErrorKind::Decode)
                    .with_message(format!("{what} has no `current_version`"))
            })
    }

    /// [`Source::watch`](crate::Source::watch) of the Vault source.
    pub(super) fn watch_secrets(
        &self,
        requests: Vec<FetchRequest>,
    ) -> Result<Changes, SourceError> {
        let mut secrets: Vec<Secret> = Vec::new();
        for (i, r) in requests.iter().enumerate() {
            let Some(path) = r.secret_path() else {
                continue;
            };
            let mount = r
                .mount()
                .unwrap_or(self.default_mount())
                .trim_matches('/')
                .to_owned();
            let path = path.trim_matches('/').to_owned();
            match secrets
                .iter_mut()
                .find(|s| s.mount == mount && s.path == path)
            {
                Some(s) => s.covers.push(i),
                None => secrets.push(Secret {
                    mount,
                    path,
                    version: r.kv_version(),
                    covers: vec![i],
                }),
            }
        }
        if secrets.is_empty() {
            return Err(SourceError::new(ErrorKind::Config).with_message("no secret to watch"));
        }
        let every = requests
            .iter()
            .filter_map(|r| r.spec().and_then(|s| s.watch_interval))
            .min()
            .unwrap_or(DEFAULT_VAULT_WATCH);
        let state = (self.clone(), secrets, Vec::<Option<u64>>::new());
        Ok(
            futures::stream::unfold(state, move |(source, secrets, mut seen)| async move {
                loop {
                    if !seen.is_empty() {
                        tokio::time::sleep(every).await;
                    }
                    let read = futures::future::join_all(
                        secrets.iter().map(|s| source.current_version(s)),
                    )
                    .await;
                    let mut now = Vec::with_capacity(read.len());
                    for r in read {
                        match r {
                            Ok(v) => now.push(Some(v)),
                            // A secret that cannot be watched (v1, no capability): say so once.
                            Err(e) if e.kind() == ErrorKind::Config => {
                                return Some((Err(e), (source, secrets, seen)));
                            }
                            Err(e) => {
                                tracing::debug!(error = %e, "reading vault metadata failed");
                                now.push(None);
                            }
                        }
                    }
                    let first = seen.is_empty();
                    let changed: Vec<usize> = secrets
                        .iter()
                        .zip(&now)
                        .enumerate()
                        .filter(|(i, (_, v))| {
                            !first && v.is_some() && seen.get(*i).copied().flatten() != **v
                        })
                        .flat_map(|(_, (s, _))| s.covers.iter().copied())
                        .collect();
                    // A version that could not be read keeps the last one seen.
                    seen = now
                        .into_iter()
                        .enumerate()
                        .map(|(i, v)| v.or_else(|| seen.get(i).copied().flatten()))
                        .collect();
                    if !changed.is_empty() {
                        return Some((Ok(Change::Changed(changed)), (source, secrets, seen)));
                    }
                }
            })
            .boxed(),
        )
    }
}
