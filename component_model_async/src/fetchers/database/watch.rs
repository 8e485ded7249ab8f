//! Watching PostgreSQL with LISTEN/NOTIFY: a `table = "..."` field is watched on the
//! table's channel (`cm_<table>`, see [`notify_channel`]), which the trigger made by
//! [`notify_trigger_sql`] (or [`DatabaseSource::install_notify_trigger`]) notifies on every
//! insert, update, delete or truncate; a `query = "..."` field is watched on the channel
//! given with [`DatabaseSource::with_notify_channel`] (your own `NOTIFY`). Without a
//! channel, the source cannot watch and a `Live` polls it.
//!
//! The listener has a connection of its own (sqlx's `PgListener`, from the pool's
//! options). When it is lost, it reconnects (backoff 500 ms doubling to 30 s, with
//! jitter) and says that everything may have changed, so a change made during the outage
//! is read, never lost.
//!
//! A notification names its channel, not the rows: it is a [`Change::Changed`] of the
//! requests watched on that channel (a `Live` reads those fields, not the others).

use std::time::Duration;

use futures::StreamExt;
use sqlx::postgres::PgListener;

use super::source::{DatabaseSource, DbPool, valid_table};
use crate::error::{ErrorKind, SourceError};
use crate::source::{Change, Changes, FetchRequest};

/// The NOTIFY channel of `table`: `cm_` and the table name (`schema.name` → `schema_name`),
/// lower-cased, at most 63 bytes (PostgreSQL's identifier limit).
///
/// ```
/// use component_model_async::fetchers::database::notify_channel;
/// assert_eq!(notify_channel("Settings"), "cm_settings");
/// assert_eq!(notify_channel("app.config"), "cm_app_config");
/// ```
pub fn notify_channel(table: &str) -> String {
    let mut channel = format!("cm_{}", table.replace('.', "_").to_ascii_lowercase());
    channel.truncate(63);
    channel
}

/// The SQL that makes `table` notify [`notify_channel`]`(table)` after every statement
/// that changes it: a trigger function `component_model_notify()` (created or replaced)
/// and a statement-level trigger `component_model_notify` on the table (replaced). Run it
/// once per table, with a role that may create triggers on it. `table` must be `name` or
/// `schema.name` of plain identifiers (quoted as the source quotes them).
///
/// ```
/// use component_model_async::fetchers::database::notify_trigger_sql;
/// let sql = notify_trigger_sql("config").unwrap();
/// assert!(sql.contains("EXECUTE FUNCTION component_model_notify('cm_config')"));
/// assert!(notify_trigger_sql("config; DROP TABLE users").is_err());
/// ```
pub fn notify_trigger_sql(table: &str) -> Result<String, SourceError> {
    if !valid_table(table) {
        return Err(SourceError::new(ErrorKind::Config).with_message(format!(
            "`{table}` is not a table name (`name` or `schema.name` of letters, digits and `_`)"
        )));
    }
    let quoted = table
        .split('.')
        .map(|p| format!("\"{p}\""))
        .collect::<Vec<_>>()
        .join(".");
    let channel = notify_channel(table);
    Ok(format!(
        "CREATE OR REPLACE FUNCTION component_model_notify() RETURNS trigger LANGUAGE plpgsql AS $cm$
BEGIN
  PERFORM pg_notify(TG_ARGV[0], TG_OP);
  RETURN NULL;
END
$cm$;
DROP TRIGGER IF EXISTS component_model_notify ON {quoted};
CREATE TRIGGER component_model_notify
  AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON {quoted}
  FOR EACH STATEMENT EXECUTE FUNCTION component_model_notify('{channel}');"
    ))
}

fn backoff(failures: u32) -> Duration {
    crate::resilience::retry::reconnect_delay(Duration::from_millis(500), failures)
}

impl DatabaseSource {
    /// Installs the trigger of [`notify_trigger_sql`] on `table` (PostgreSQL only).
    pub async fn install_notify_trigger(&self, table: &str) -> Result<(), SourceError> {
        let sql = notify_trigger_sql(table)?;
        match self.pool() {
            Some(DbPool::Postgres(pool)) => sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                .execute(pool)
                .await
                .map(drop)
                .map_err(|e| {
                    SourceError::new(ErrorKind::Unavailable)
                        .with_message(format!("installing the notify trigger on `{table}`: {e}"))
                }),
            _ => Err(SourceError::new(ErrorKind::Config)
                .with_message("LISTEN/NOTIFY triggers are for PostgreSQL pools")),
        }
    }

    /// The channels that watch `requests` (each table's, and the user's for queries), each
    /// with the positions of its requests.
    fn channels(
        &self,
        requests: &[FetchRequest],
    ) -> Result<Vec<(String, Vec<usize>)>, SourceError> {
        let mut channels: Vec<(String, Vec<usize>)> = Vec::new();
        for (i, r) in requests.iter().enumerate() {
            let channel = match (r.table(), r.query(), self.notify_channel()) {
                (Some(t), _, _) => notify_channel(t),
                (None, Some(_), Some(c)) => c.to_owned(),
                (None, _, _) => {
                    return Err(SourceError::new(ErrorKind::Config).with_message(
                        "a `query` field is watched through a channel: `DatabaseSource::with_notify_channel(\"...\")`",
                    ));
                }
            };
            match channels.iter_mut().find(|(c, _)| *c == channel) {
                Some((_, positions)) => positions.push(i),
                None => channels.push((channel, vec![i])),
            }
        }
        Ok(channels)
    }

    /// [`Source::watch`](crate::Source::watch) of a PostgreSQL source.
    pub(super) fn watch_postgres(
        &self,
        requests: Vec<FetchRequest>,
    ) -> Result<Changes, SourceError> {
        let Some(DbPool::Postgres(pool)) = self.pool_or_error().ok().cloned() else {
            return Err(SourceError::new(ErrorKind::Config).with_message(
                "only PostgreSQL pools are watched (LISTEN/NOTIFY); others are polled",
            ));
        };
        let channels = self.channels(&requests)?;
        struct S {
            pool: sqlx::PgPool,
            channels: Vec<(String, Vec<usize>)>,
            listener: Option<PgListener>,
            failures: u32,
        }
        let state = S {
            pool,
            channels,
            listener: None,
            failures: 0,
        };
        Ok(futures::stream::unfold(state, |mut s| async move {
            loop {
                let Some(listener) = s.listener.as_mut() else {
                    if s.failures > 0 {
                        tokio::time::sleep(backoff(s.failures - 1)).await;
                    }
                    let channels: Vec<&str> = s.channels.iter().map(|(c, _)| c.as_str()).collect();
                    let connected = async {
                        let mut l = PgListener::connect_with(&s.pool).await?;
                        l.listen_all(channels).await?;
                        Ok::<_, sqlx::Error>(l)
                    }
                    .await;
                    match connected {
                        Ok(l) => {
                            // Listening now: read again what may have changed before
                            // (since the first read, or during an outage).
                            s.listener = Some(l);
                            s.failures = 0;
                            return Some((Ok(Change::All), s));
                        }
                        Err(e) => {
                            s.failures += 1;
                            tracing::debug!(error = %e, "LISTEN failed; backing off");
                        }
                    }
                    continue;
                };
                match listener.try_recv().await {
                    // The requests of the channel notified (another channel: everything).
                    Ok(Some(n)) => {
                        let change = match s.channels.iter().find(|(c, _)| c == n.channel()) {
                            Some((_, positions)) => Change::Changed(positions.clone()),
                            None => Change::All,
                        };
                        return Some((Ok(change), s));
                    }
                    // The connection was lost and sqlx reconnected: notifications may be lost.
                    Ok(None) => return Some((Ok(Change::All), s)),
                    Err(e) => {
                        tracing::debug!(error = %e, "the LISTEN connection failed; reconnecting");
                        s.listener = None;
                        s.failures += 1;
                    }
                }
            }
        })
        .boxed())
    }
}
