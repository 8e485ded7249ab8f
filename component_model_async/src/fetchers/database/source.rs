//! The `database` backend's implementation (see the module above for what it declares).

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use futures::TryStreamExt;
use sqlx::AssertSqlSafe;

use super::decode;

use crate::convert::subtree::{self, Subtree};
use crate::error::{ErrorKind, SourceError};
use crate::source::{FetchRequest, RawValue, Source};
use crate::source_support::{coalesce, redact_url};

/// How long a fetch waits for a pooled connection (or to connect) before reporting
/// `unavailable`, for pools this module creates.
pub const DEFAULT_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

/// A connection pool of one of the enabled drivers.
#[derive(Clone)]
#[non_exhaustive]
pub enum DbPool {
    /// PostgreSQL.
    #[cfg(feature = "postgres")]
    Postgres(sqlx::PgPool),
    /// MariaDB / MySQL.
    #[cfg(feature = "mysql")]
    MySql(sqlx::MySqlPool),
    /// SQLite.
    #[cfg(feature = "sqlite")]
    Sqlite(sqlx::SqlitePool),
}

impl fmt::Debug for DbPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DbPool({})", self.driver())
    }
}

#[cfg(feature = "postgres")]
impl From<sqlx::PgPool> for DbPool {
    fn from(p: sqlx::PgPool) -> Self {
        DbPool::Postgres(p)
    }
}
#[cfg(feature = "mysql")]
impl From<sqlx::MySqlPool> for DbPool {
    fn from(p: sqlx::MySqlPool) -> Self {
        DbPool::MySql(p)
    }
}
#[cfg(feature = "sqlite")]
impl From<sqlx::SqlitePool> for DbPool {
    fn from(p: sqlx::SqlitePool) -> Self {
        DbPool::Sqlite(p)
    }
}

/// Runs `$body` with `$p` bound to the driver's pool, `$col` to its column decoder and
/// `$dialect` to its SQL dialect.
macro_rules! with_pool {
    ($pool:expr, |$p:ident, $col:ident, $dialect:ident| $body:expr) => {
        match $pool {
            #[cfg(feature = "postgres")]
            DbPool::Postgres($p) => {
                let $col = decode::pg_column;
                let $dialect = Dialect::Postgres;
                $body
            }
            #[cfg(feature = "mysql")]
            DbPool::MySql($p) => {
                let $col = decode::mysql_column;
                let $dialect = Dialect::MySql;
                $body
            }
            #[cfg(feature = "sqlite")]
            DbPool::Sqlite($p) => {
                let $col = decode::sqlite_column;
                let $dialect = Dialect::Sqlite;
                $body
            }
        }
    };
}

#[derive(Clone, Copy)]
enum Dialect {
    #[cfg(feature = "postgres")]
    Postgres,
    #[cfg(feature = "mysql")]
    MySql,
    #[cfg(feature = "sqlite")]
    Sqlite,
}

impl Dialect {
    fn quote(self, ident: &str) -> String {
        match self {
            #[cfg(feature = "mysql")]
            Dialect::MySql => format!("`{ident}`"),
            #[allow(unreachable_patterns)]
            _ => format!("\"{ident}\""),
        }
    }

    /// How this dialect passes a list of keys.
    fn key_list(self, n: usize) -> KeyList {
        match self {
            #[cfg(feature = "postgres")]
            Dialect::Postgres => KeyList::Array("$1".to_owned()),
            #[allow(unreachable_patterns)]
            _ => KeyList::Placeholders(
                (1..=n)
                    .map(|i| self.placeholder(i))
                    .collect::<Vec<_>>()
                    .join(", "),
            ),
        }
    }

    /// `ESCAPE '\'` as this dialect writes a one-backslash string (MySQL reads `\` in a
    /// string literal as an escape, so it is doubled there).
    fn like_escape(self) -> &'static str {
        match self {
            #[cfg(feature = "mysql")]
            Dialect::MySql => r"ESCAPE '\\'",
            #[allow(unreachable_patterns)]
            _ => r"ESCAPE '\'",
        }
    }

    fn placeholder(self, n: usize) -> String {
        match self {
            #[cfg(feature = "postgres")]
            Dialect::Postgres => format!("${n}"),
            #[allow(unreachable_patterns)]
            _ => {
                let _ = n;
                "?".to_owned()
            }
        }
    }
}

/// Binds a list of keys the way the dialect's SQL (see [`Dialect::key_list`]) expects.
trait BindKeys: Sized {
    fn bind_keys(self, keys: &[&str]) -> Self;
}

#[cfg(feature = "postgres")]
impl<'q> BindKeys
    for sqlx::query::Query<'q, sqlx::Postgres, <sqlx::Postgres as sqlx::Database>::Arguments>
{
    fn bind_keys(self, keys: &[&str]) -> Self {
        self.bind(
            keys.iter()
                .map(|k| (*k).to_owned())
                .collect::<Vec<String>>(),
        )
    }
}

#[cfg(feature = "mysql")]
impl<'q> BindKeys
    for sqlx::query::Query<'q, sqlx::MySql, <sqlx::MySql as sqlx::Database>::Arguments>
{
    fn bind_keys(self, keys: &[&str]) -> Self {
        keys.iter().fold(self, |q, k| q.bind((*k).to_owned()))
    }
}

#[cfg(feature = "sqlite")]
impl<'q> BindKeys
    for sqlx::query::Query<'q, sqlx::Sqlite, <sqlx::Sqlite as sqlx::Database>::Arguments>
{
    fn bind_keys(self, keys: &[&str]) -> Self {
        keys.iter().fold(self, |q, k| q.bind((*k).to_owned()))
    }
}

enum KeyList {
    /// One array parameter (`= ANY($1)`).
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    Array(String),
    /// `IN (?, ?, ...)`.
    #[cfg_attr(not(any(feature = "mysql", feature = "sqlite")), allow(dead_code))]
    Placeholders(String),
}

/// Whether `table` is `name` or `schema.name` made of plain identifiers.
pub(super) fn valid_table(table: &str) -> bool {
    !table.is_empty()
        && table.split('.').all(|part| {
            let mut chars = part.chars();
            chars
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        })
}

impl DbPool {
    /// The driver name: `postgres`, `mysql` or `sqlite`.
    pub fn driver(&self) -> &'static str {
        with_pool!(self, |_p, _c, d| match d {
            #[cfg(feature = "postgres")]
            Dialect::Postgres => "postgres",
            #[cfg(feature = "mysql")]
            Dialect::MySql => "mysql",
            #[cfg(feature = "sqlite")]
            Dialect::Sqlite => "sqlite",
        })
    }

    /// Connects now; the URL's scheme picks the driver (`postgres://`, `postgresql://`,
    /// `mysql://`, `mariadb://`, `sqlite:`). Fails with `unavailable` within
    /// [`DEFAULT_ACQUIRE_TIMEOUT`] when the server can't be reached; the error never
    /// contains the URL's password.
    ///
    /// On Unix, a PostgreSQL or MySQL server reached over TCP is read through a local relay
    /// that bounds each answer to [`DEFAULT_MAX_RESPONSE`] (see
    /// [`DatabaseSource::with_max_response`]).
    pub async fn connect(url: &str) -> Result<Self, SourceError> {
        Planned::of(url)?.connect(url).await
    }

    /// Like [`DbPool::connect`] but connects on first use (for `Sources::from_env`).
    pub fn connect_lazy(url: &str) -> Result<Self, SourceError> {
        Planned::of(url)?.connect_lazy(url)
    }

    /// The relay under this pool's connections, if this module made it.
    pub(super) fn relay(&self) -> Option<Arc<RelayGuard>> {
        #[cfg(all(unix, any(feature = "postgres", feature = "mysql")))]
        match self {
            #[cfg(feature = "postgres")]
            DbPool::Postgres(p) => p
                .connect_options()
                .get_socket()
                .and_then(|s| relay::relay_of(s)),
            #[cfg(feature = "mysql")]
            DbPool::MySql(p) => p
                .connect_options()
                .get_socket()
                .and_then(|s| relay::relay_of(s)),
            #[allow(unreachable_patterns)]
            _ => None,
        }
        #[cfg(not(all(unix, any(feature = "postgres", feature = "mysql"))))]
        None
    }
}

#[cfg(all(unix, any(feature = "postgres", feature = "mysql")))]
use super::relay::{self, RelayGuard};

/// Without Unix sockets (or without a network driver) there is no relay: a pool's answers
/// are bounded only by the row limit.
#[cfg(not(all(unix, any(feature = "postgres", feature = "mysql"))))]
#[derive(Debug)]
pub(super) enum RelayGuard {}

#[cfg(not(all(unix, any(feature = "postgres", feature = "mysql"))))]
impl RelayGuard {
    pub(super) fn ensure_running(&self) {
        match *self {}
    }
    pub(super) fn budget(&self) -> &NoBudget {
        match *self {}
    }
}

/// The budget of a relay that cannot exist (see [`RelayGuard`]).
#[cfg(not(all(unix, any(feature = "postgres", feature = "mysql"))))]
pub(super) enum NoBudget {}

#[cfg(not(all(unix, any(feature = "postgres", feature = "mysql"))))]
impl NoBudget {
    pub(super) fn limit(&self) -> usize {
        match *self {}
    }
    pub(super) fn set_limit(&self, _bytes: usize) {
        match *self {}
    }
    pub(super) fn overflows(&self) -> u64 {
        match *self {}
    }
    pub(super) fn upstream_error(&self) -> Option<String> {
        match *self {}
    }
}

/// A pool about to be made from a URL: its options, and the relay its connections go
/// through (PostgreSQL and MySQL over TCP, on Unix).
struct Planned {
    pool: PlannedPool,
    relay: Option<Arc<RelayGuard>>,
}

enum PlannedPool {
    #[cfg(feature = "postgres")]
    Postgres(
        sqlx::postgres::PgPoolOptions,
        sqlx::postgres::PgConnectOptions,
    ),
    #[cfg(feature = "mysql")]
    MySql(
        sqlx::mysql::MySqlPoolOptions,
        sqlx::mysql::MySqlConnectOptions,
    ),
    #[cfg(feature = "sqlite")]
    Sqlite(sqlx::sqlite::SqlitePoolOptions),
}

/// Keeps the relay as long as the pool lives (the pool keeps its `after_connect` hook).
#[cfg(any(feature = "postgres", feature = "mysql"))]
macro_rules! keep_alive {
    ($options:expr, $relay:expr) => {
        match $relay.clone() {
            Some(relay) => $options.after_connect(move |_conn, _meta| {
                let _relay = &relay;
                Box::pin(async { Ok(()) })
            }),
            None => $options,
        }
    };
}

impl Planned {
    fn of(url: &str) -> Result<Self, SourceError> {
        let location = location_of(url);
        let t = DEFAULT_ACQUIRE_TIMEOUT;
        let fail = |e: sqlx::Error| map_error(e, &location);
        let _ = &fail;
        Ok(match Scheme::of(url)? {
            #[cfg(feature = "postgres")]
            Scheme::Postgres => {
                let mut options: sqlx::postgres::PgConnectOptions = url.parse().map_err(fail)?;
                let port = options.get_port();
                // sqlx connects to `<dir>/.s.PGSQL.<port>` for the socket directory `dir`.
                let relay = relayed(
                    options.get_socket().is_some(),
                    options.get_host(),
                    port,
                    &format!(".s.PGSQL.{port}"),
                )?;
                if let Some((dir, _)) = &relay {
                    options = options.socket(dir);
                }
                let relay = relay.map(|(_, guard)| guard);
                let pool = sqlx::postgres::PgPoolOptions::new().acquire_timeout(t);
                Planned {
                    pool: PlannedPool::Postgres(keep_alive!(pool, relay), options),
                    relay,
                }
            }
            #[cfg(feature = "mysql")]
            Scheme::MySql => {
                let mut options: sqlx::mysql::MySqlConnectOptions =
                    mysql_url(url).parse().map_err(fail)?;
                let relay = relayed(
                    options.get_socket().is_some(),
                    options.get_host(),
                    options.get_port(),
                    "mysql.sock",
                )?;
                if let Some((dir, _)) = &relay {
                    options = options.socket(dir.join("mysql.sock"));
                }
                let relay = relay.map(|(_, guard)| guard);
                let pool = sqlx::mysql::MySqlPoolOptions::new().acquire_timeout(t);
                Planned {
                    pool: PlannedPool::MySql(keep_alive!(pool, relay), options),
                    relay,
                }
            }
            #[cfg(feature = "sqlite")]
            Scheme::Sqlite => Planned {
                pool: PlannedPool::Sqlite(
                    sqlx::sqlite::SqlitePoolOptions::new().acquire_timeout(t),
                ),
                relay: None,
            },
        })
    }

    async fn connect(self, url: &str) -> Result<DbPool, SourceError> {
        let location = location_of(url);
        let t = DEFAULT_ACQUIRE_TIMEOUT;
        let pool = match self.pool {
            #[cfg(feature = "postgres")]
            PlannedPool::Postgres(pool, options) => {
                bounded(t, pool.connect_with(options), &location)
                    .await?
                    .map(DbPool::Postgres)
            }
            #[cfg(feature = "mysql")]
            PlannedPool::MySql(pool, options) => bounded(t, pool.connect_with(options), &location)
                .await?
                .map(DbPool::MySql),
            #[cfg(feature = "sqlite")]
            PlannedPool::Sqlite(pool) => bounded(t, pool.connect(url), &location)
                .await?
                .map(DbPool::Sqlite),
        };
        pool.map_err(|e| connect_error(map_error(e, &location), self.relay.as_deref()))
    }

    fn connect_lazy(self, url: &str) -> Result<DbPool, SourceError> {
        let pool = match self.pool {
            #[cfg(feature = "postgres")]
            PlannedPool::Postgres(pool, options) => {
                DbPool::Postgres(pool.connect_lazy_with(options))
            }
            #[cfg(feature = "mysql")]
            PlannedPool::MySql(pool, options) => DbPool::MySql(pool.connect_lazy_with(options)),
            #[cfg(feature = "sqlite")]
            PlannedPool::Sqlite(pool) => DbPool::Sqlite(
                pool.connect_lazy(url)
                    .map_err(|e| map_error(e, &location_of(url)))?,
            ),
        };
        let _ = url;
        Ok(pool)
    }
}

/// Starts a relay to `host:port` unless the URL names a Unix socket (`socket`, or a host
/// that is a path); returns its directory and guard.
#[cfg(all(unix, any(feature = "postgres", feature = "mysql")))]
fn relayed(
    has_socket: bool,
    host: &str,
    port: u16,
    socket_name: &str,
) -> Result<Option<(std::path::PathBuf, Arc<RelayGuard>)>, SourceError> {
    if has_socket || host.starts_with('/') {
        return Ok(None);
    }
    relay::start(
        relay::Upstream::new(host, port),
        socket_name,
        DEFAULT_MAX_RESPONSE,
    )
    .map(Some)
    .map_err(|e| {
        SourceError::new(ErrorKind::Unavailable)
            .with_message(format!(
                "cannot open the local socket that bounds the server's answers (in {})",
                std::env::temp_dir().display()
            ))
            .with_cause(e)
    })
}

#[cfg(all(not(unix), any(feature = "postgres", feature = "mysql")))]
fn relayed(
    _has_socket: bool,
    _host: &str,
    _port: u16,
    _socket_name: &str,
) -> Result<Option<(std::path::PathBuf, Arc<RelayGuard>)>, SourceError> {
    Ok(None)
}

/// A connection error, with why the relay could not reach the server (sqlx only sees the
/// relay close the connection) when it could not.
pub(super) fn connect_error(e: SourceError, relay: Option<&RelayGuard>) -> SourceError {
    match relay.and_then(|r| r.budget().upstream_error()) {
        Some(why) if e.kind() == ErrorKind::Unavailable => {
            let message = e.message().map_or_else(|| e.to_string(), str::to_owned);
            SourceError::new(ErrorKind::Unavailable)
                .with_message(format!("{message} (connecting to the server: {why})"))
        }
        _ => e,
    }
}

#[cfg(feature = "mysql")]
fn mysql_url(url: &str) -> String {
    url.replacen("mariadb://", "mysql://", 1)
}

/// The driver a URL asks for, when its feature is enabled.
enum Scheme {
    #[cfg(feature = "postgres")]
    Postgres,
    #[cfg(feature = "mysql")]
    MySql,
    #[cfg(feature = "sqlite")]
    Sqlite,
}

impl Scheme {
    fn of(url: &str) -> Result<Self, SourceError> {
        let scheme = url.split(':').next().unwrap_or("").to_ascii_lowercase();
        let feature = match scheme.as_str() {
            "postgres" | "postgresql" => "postgres",
            "mysql" | "mariadb" => "mysql",
            "sqlite" => "sqlite",
            _ => {
                return Err(SourceError::new(ErrorKind::Config).with_message(format!(
                    "unsupported database URL scheme `{scheme}`; expected postgres://, mysql:// or sqlite:"
                )));
            }
        };
        match feature {
            #[cfg(feature = "postgres")]
            "postgres" => Ok(Scheme::Postgres),
            #[cfg(feature = "mysql")]
            "mysql" => Ok(Scheme::MySql),
            #[cfg(feature = "sqlite")]
            "sqlite" => Ok(Scheme::Sqlite),
            _ => Err(SourceError::new(ErrorKind::Config).with_message(format!(
                "database URL scheme `{scheme}` needs cargo feature `{feature}` of component_model_async"
            ))),
        }
    }
}

async fn bounded<T>(
    limit: Duration,
    fut: impl Future<Output = Result<T, sqlx::Error>>,
    location: &str,
) -> Result<Result<T, sqlx::Error>, SourceError> {
    tokio::time::timeout(limit, fut).await.map_err(|_| {
        SourceError::new(ErrorKind::Unavailable)
            .with_message(format!("could not connect to {location} within {limit:?}"))
    })
}

/// `postgres://127.0.0.1:5432/test` from a URL, without credentials or parameters.
pub(super) fn location_of(url: &str) -> String {
    // The URL without user, password or options: `postgres://db:5432/test`.
    let url = url.split('?').next().unwrap_or(url);
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let rest = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
            format!("{scheme}://{rest}")
        }
        None => redact_url(url),
    }
}

/// Maps a driver error to a [`SourceError`] kind; messages never contain credentials.
/// (The location is part of every field error's provenance, so messages do not repeat it.)
pub(super) fn map_error(e: sqlx::Error, _location: &str) -> SourceError {
    use sqlx::Error as E;
    match e {
        E::RowNotFound => SourceError::not_found(),
        E::PoolTimedOut => SourceError::new(ErrorKind::Unavailable).with_message(
            "no connection could be opened within the pool's acquire timeout (is the server up and reachable?)",
        ),
        E::Io(io) => SourceError::new(ErrorKind::Unavailable)
            .with_message("cannot connect")
            .with_cause(io),
        E::Tls(_) | E::Protocol(_) | E::PoolClosed | E::WorkerCrashed => {
            SourceError::new(ErrorKind::Unavailable).with_message(e.to_string())
        }
        E::Database(db) => {
            let code = db.code().map(|c| c.into_owned()).unwrap_or_default();
            let kind = if code.starts_with("28") {
                ErrorKind::Unauthorized
            } else {
                ErrorKind::Config
            };
            SourceError::new(kind).with_message(format!("{} (SQLSTATE {code})", db.message()))
        }
        E::ColumnDecode { .. }
        | E::Decode(_)
        | E::TypeNotFound { .. }
        | E::ColumnNotFound(_)
        | E::ColumnIndexOutOfBounds { .. } => {
            SourceError::new(ErrorKind::Decode).with_message(e.to_string())
        }
        E::Configuration(_) => SourceError::new(ErrorKind::Config)
            .with_message("invalid database URL or connection options"),
        other => SourceError::new(ErrorKind::Unavailable).with_message(other.to_string()),
    }
}

/// The `database` source: a pool and where it points. Register it under `database` (the
/// default pool), `database:<name>` for another pool, or any name.
///
/// ```no_run
/// use component_model_async::{AsyncAssign, Sources};
/// use component_model_async::fetchers::database::DatabaseSource;
///
/// #[derive(AsyncAssign, Debug)]
/// struct Config {
///     #[component(fetch_from = "database", table = "config", key = "db_url")]
///     db_url: String,
///     #[component(fetch_from = "database:analytics", query = "SELECT max_rows FROM limits WHERE tier = $1", key = "gold")]
///     max_rows: u32,
/// }
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let sources = Sources::new()
///     .register("database", DatabaseSource::connect("postgres://app@127.0.0.1/app").await?)
///     .register("database:analytics", DatabaseSource::connect("mysql://ro@127.0.0.1/analytics").await?);
/// let config = Config::fetch_all_components_with(&sources).await.map_err(component_model_async::ComponentError::from)?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct DatabaseSource {
    pool: Result<DbPool, String>,
    location: String,
    queries: std::sync::Arc<std::sync::atomic::AtomicU64>,
    /// The NOTIFY channel of `query` fields (see the `watch` module).
    notify_channel: Option<String>,
    /// The relay that bounds the pool's answers (see the `relay` module), if any.
    relay: Option<Arc<RelayGuard>>,
    /// The most rows a `table` read takes.
    max_rows: usize,
}

impl fmt::Debug for DatabaseSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DatabaseSource")
            .field("location", &self.location)
            .field("max_response", &self.max_response())
            .field("max_rows", &self.max_rows)
            .finish_non_exhaustive()
    }
}

/// The most bytes a server may send in answer to one request of a pool this module made
/// from a URL, by default: 16 MiB (see [`DatabaseSource::with_max_response`]).
pub const DEFAULT_MAX_RESPONSE: usize = 16 * 1024 * 1024;

/// The most rows a `table` read takes, by default: 10,000 (see
/// [`DatabaseSource::with_max_rows`]).
pub const DEFAULT_MAX_ROWS: usize = 10_000;

impl DatabaseSource {
    fn with_pool(pool: Result<DbPool, String>, location: String) -> Self {
        let relay = pool.as_ref().ok().and_then(DbPool::relay);
        DatabaseSource {
            pool,
            location,
            queries: Default::default(),
            notify_channel: None,
            relay,
            max_rows: DEFAULT_MAX_ROWS,
        }
    }

    /// A source over an existing pool (its limits and timeouts apply). Its answers are
    /// bounded in bytes only if the pool was made by [`DbPool::connect`] or
    /// [`DbPool::connect_lazy`] (see [`DatabaseSource::with_max_response`]); `table`
    /// reads are bounded in rows whatever the pool.
    pub fn new(pool: impl Into<DbPool>) -> Self {
        let pool = pool.into();
        let location = pool.driver().to_owned();
        Self::with_pool(Ok(pool), location)
    }

    /// Connects now (see [`DbPool::connect`]).
    pub async fn connect(url: &str) -> Result<Self, SourceError> {
        let pool = DbPool::connect(url).await?;
        Ok(Self::with_pool(Ok(pool), location_of(url)))
    }

    /// Connects on first use. A bad URL is not an error here: every fetch from this source
    /// reports it, naming the field.
    pub fn lazy(url: &str) -> Self {
        // The message alone: the kind is added once, when the error reaches a field.
        let pool = DbPool::connect_lazy(url)
            .map_err(|e| e.message().map_or_else(|| e.to_string(), str::to_owned));
        Self::with_pool(pool, location_of(url))
    }

    /// Accepts answers of at most `bytes` from the server to each request (default
    /// [`DEFAULT_MAX_RESPONSE`], 16 MiB): once a server sends more (a huge value, endless
    /// rows or notices), the connection is closed and the read fails its fields with
    /// [`ErrorKind::TooLarge`] — what sqlx buffered is at most this much, whatever size
    /// the server announced.
    ///
    /// The limit is counted on the connection's socket, through a local relay (a Unix
    /// socket in a private directory) that the pool's connections take to the server: it
    /// applies to PostgreSQL and MySQL pools made from a URL ([`DatabaseSource::connect`],
    /// [`DatabaseSource::lazy`], `Sources::from_env`, [`DbPool::connect`]) on Unix, over
    /// TCP, with or without TLS; it is shared by the clones of this source and every
    /// source over the same pool. A pool you built yourself is not relayed: this setting
    /// does nothing for it.
    ///
    /// ```
    /// use component_model_async::fetchers::database::DatabaseSource;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let source = DatabaseSource::lazy("postgres://app@db.internal/app")
    ///     .with_max_response(1024 * 1024)
    ///     .with_max_rows(500);
    /// assert_eq!(source.max_response(), Some(1024 * 1024));
    /// # }
    /// ```
    #[must_use]
    pub fn with_max_response(self, bytes: usize) -> Self {
        if let Some(relay) = &self.relay {
            relay.budget().set_limit(bytes);
        }
        self
    }

    /// The limit of [`DatabaseSource::with_max_response`], if this source's answers are
    /// counted (`None` for a pool that is not relayed, such as SQLite or one you built).
    pub fn max_response(&self) -> Option<usize> {
        self.relay.as_ref().map(|r| r.budget().limit())
    }

    /// Takes at most `rows` rows from a `table` read (default [`DEFAULT_MAX_ROWS`]): a
    /// server that sends more fails the read's fields with [`ErrorKind::TooLarge`] and
    /// its connection is closed. (A `query` read takes at most two rows: one is the
    /// answer, a second is an error.)
    #[must_use]
    pub fn with_max_rows(mut self, rows: usize) -> Self {
        self.max_rows = rows;
        self
    }

    /// Watches `query = "..."` fields on this NOTIFY channel (PostgreSQL): a `Live` reads
    /// them again when your application or trigger sends `NOTIFY <channel>`. (`table`
    /// fields are watched on their table's channel, see
    /// [`notify_trigger_sql`](crate::fetchers::database::notify_trigger_sql).)
    #[must_use]
    pub fn with_notify_channel(mut self, channel: impl Into<String>) -> Self {
        self.notify_channel = Some(channel.into());
        self
    }

    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    pub(super) fn notify_channel(&self) -> Option<&str> {
        self.notify_channel.as_deref()
    }

    /// How many queries (round trips) this source and its clones have sent so far.
    pub fn queries_run(&self) -> u64 {
        self.queries.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn count_query(&self) {
        self.queries
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        crate::metrics::round_trip();
    }

    /// The pool, if the source was configured correctly.
    pub fn pool(&self) -> Option<&DbPool> {
        self.pool.as_ref().ok()
    }

    /// The pool, with its relay running (it starts on first use when the source was made
    /// outside a runtime).
    pub(super) fn pool_or_error(&self) -> Result<&DbPool, SourceError> {
        if let Some(relay) = &self.relay {
            relay.ensure_running();
        }
        self.pool
            .as_ref()
            .map_err(|msg| SourceError::new(ErrorKind::Config).with_message(msg.clone()))
    }

    /// Where this source's relay stands, to tell later whether it closed a connection
    /// for its size meanwhile (see [`DatabaseSource::sql_error`]).
    pub(super) fn overflows(&self) -> u64 {
        self.relay.as_ref().map_or(0, |r| r.budget().overflows())
    }

    /// A driver error of a read that started when [`DatabaseSource::overflows`] was
    /// `before`: [`ErrorKind::TooLarge`] when the connection ended (an I/O or protocol
    /// error: the driver only sees the connection end) and the relay closed a connection
    /// of this pool for its size since.
    pub(super) fn sql_error(&self, e: sqlx::Error, before: u64) -> SourceError {
        let ended = matches!(e, sqlx::Error::Io(_) | sqlx::Error::Protocol(_));
        if let Some(relay) = self.relay.as_ref().filter(|_| ended) {
            let budget = relay.budget();
            if budget.overflows() > before {
                return SourceError::new(ErrorKind::TooLarge).with_message(format!(
                    "the server's answer exceeded {}; the connection was closed (raise the limit with `DatabaseSource::with_max_response`)",
                    crate::error::bytes(budget.limit() as u64)
                ));
            }
        }
        connect_error(map_error(e, &self.location), self.relay.as_deref())
    }

    /// Runs `sql` (binding `key` as its parameter when given) and returns the one row's value.
    pub(crate) async fn query_one(
        &self,
        sql: &str,
        key: Option<&str>,
    ) -> Result<RawValue, SourceError> {
        let pool = self.pool_or_error()?;
        self.count_query();
        let before = self.overflows();
        let fail = |e| self.sql_error(e, before);
        with_pool!(pool, |p, col, _d| {
            let mut conn = Checkout::new(p.acquire().await.map_err(fail)?);
            let mut q = sqlx::query(AssertSqlSafe(sql.to_owned()));
            if let Some(k) = key {
                q = q.bind(k.to_owned());
            }
            let mut rows = q.fetch(conn.connection());
            let first = rows.try_next().await.map_err(fail)?;
            let Some(first) = first else {
                drop(rows);
                conn.finished();
                return Err(SourceError::not_found().with_message("the query returned no rows"));
            };
            tokio::task::consume_budget().await;
            if rows.try_next().await.map_err(fail)?.is_some() {
                // The rest of the answer is left unread: the connection is closed.
                return Err(SourceError::new(ErrorKind::Decode)
                    .with_message("the query returned more than one row where one was expected (add a WHERE clause or LIMIT 1)"));
            }
            drop(rows);
            conn.finished();
            decode::row_value(&first, col)
        })
    }

    /// One `SELECT key, value FROM table WHERE key IN (...)` for all `keys`, streamed: at
    /// most [`DatabaseSource::with_max_rows`] rows, only the requested keys kept.
    async fn table_values(
        &self,
        table: &str,
        keys: &[&str],
    ) -> Result<HashMap<String, Result<RawValue, SourceError>>, SourceError> {
        if !valid_table(table) {
            return Err(SourceError::new(ErrorKind::Config).with_message(format!(
                "`{table}` is not a plain table name (letters, digits, `_`, one optional `schema.`)"
            )));
        }
        let pool = self.pool_or_error()?;
        self.count_query();
        let before = self.overflows();
        let fail = |e| self.sql_error(e, before);
        let max_rows = self.max_rows;
        with_pool!(pool, |p, col, d| {
            let table_sql = table
                .split('.')
                .map(|part| d.quote(part))
                .collect::<Vec<_>>()
                .join(".");
            let (k, v) = (d.quote("key"), d.quote("value"));
            let list = match d.key_list(keys.len()) {
                KeyList::Array(param) => format!("= ANY({param})"),
                KeyList::Placeholders(list) => format!("IN ({list})"),
            };
            let sql = format!("SELECT {k}, {v} FROM {table_sql} WHERE {k} {list}");
            let mut conn = Checkout::new(p.acquire().await.map_err(fail)?);
            let q = BindKeys::bind_keys(sqlx::query(AssertSqlSafe(sql)), keys);
            let mut rows = q.fetch(conn.connection());
            let mut out: HashMap<String, Result<RawValue, SourceError>> =
                HashMap::with_capacity(keys.len());
            let mut taken = 0usize;
            while let Some(row) = rows.try_next().await.map_err(fail)? {
                taken += 1;
                if taken > max_rows {
                    // The rest of the answer is left unread: the connection is closed.
                    return Err(SourceError::new(ErrorKind::TooLarge).with_message(format!(
                        "table `{table}` returned more than {max_rows} rows for {} key(s); the read stopped there (raise the limit with `DatabaseSource::with_max_rows`)",
                        keys.len()
                    )));
                }
                // A long answer must not keep the worker from its timers.
                tokio::task::consume_budget().await;
                let key = match sqlx::Row::try_get::<String, _>(&row, 0) {
                    Ok(k) => k,
                    Err(e) => return Err(fail(e)),
                };
                if !keys.contains(&key.as_str()) {
                    continue;
                }
                let value = col(&row, 1);
                match out.entry(key) {
                    std::collections::hash_map::Entry::Occupied(mut seen) => {
                        let _previous = seen
                            .insert(Err(SourceError::new(ErrorKind::Decode).with_message(
                                format!("table `{table}` has more than one row for this key"),
                            )));
                    }
                    std::collections::hash_map::Entry::Vacant(slot) => {
                        slot.insert(value);
                    }
                }
            }
            drop(rows);
            conn.finished();
            Ok(out)
        })
    }
}

/// `prefix` as a `LIKE` pattern matching every text that starts with it: `%`, `_` and
/// `\` escaped with `\` (the query says `ESCAPE '\'`), then `%`.
fn like_prefix(prefix: &str) -> String {
    let mut pattern = String::with_capacity(prefix.len() + 2);
    for c in prefix.chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

impl DatabaseSource {
    /// A subtree read (`table = "t", prefix = "app."`): ONE
    /// `SELECT key, value FROM t WHERE key LIKE <prefix>% ESCAPE '\' LIMIT max_keys + 1`,
    /// the prefix bound as a parameter (its `%`, `_` and `\` escaped), the rows streamed:
    /// past `max_keys` rows or the field's `max_size` bytes (keys and values) the read stops with
    /// `too large` (the rest of the answer unread: the connection is closed).
    async fn table_prefix(
        &self,
        table: &str,
        request: &FetchRequest,
    ) -> Result<RawValue, SourceError> {
        let mut tree = match Subtree::of(request) {
            Some(tree) => tree?,
            None => return Err(SourceError::new(ErrorKind::Config).with_message("no `prefix`")),
        };
        if !valid_table(table) {
            return Err(SourceError::new(ErrorKind::Config).with_message(format!(
                "`{table}` is not a plain table name (letters, digits, `_`, one optional `schema.`)"
            )));
        }
        let pool = self.pool_or_error()?;
        self.count_query();
        let before = self.overflows();
        let fail = |e| self.sql_error(e, before);
        let prefix = tree.prefix();
        let pattern = like_prefix(prefix);
        let limit = tree.max_keys().saturating_add(1);
        with_pool!(pool, |p, col, d| {
            let table_sql = table
                .split('.')
                .map(|part| d.quote(part))
                .collect::<Vec<_>>()
                .join(".");
            let (k, v) = (d.quote("key"), d.quote("value"));
            let sql = format!(
                "SELECT {k}, {v} FROM {table_sql} WHERE {k} LIKE {} {} LIMIT {limit}",
                d.placeholder(1),
                d.like_escape()
            );
            let mut conn = Checkout::new(p.acquire().await.map_err(fail)?);
            let q = sqlx::query(AssertSqlSafe(sql)).bind(pattern);
            let mut rows = q.fetch(conn.connection());
            let mut taken = 0usize;
            while let Some(row) = rows.try_next().await.map_err(fail)? {
                taken += 1;
                // Past `max_keys`: the rest of the answer is left unread.
                tree.admit(taken)?;
                tokio::task::consume_budget().await;
                let key = sqlx::Row::try_get::<String, _>(&row, 0).map_err(fail)?;
                // A case-insensitive collation (MySQL) may match other cases: only keys
                // that start with the prefix byte for byte are taken.
                let Some(name) = key.strip_prefix(prefix).filter(|n| !n.is_empty()) else {
                    continue;
                };
                if tree.contains(name) {
                    return Err(SourceError::new(ErrorKind::Decode).with_message(format!(
                        "table `{table}` has more than one row for key `{key}`"
                    )));
                }
                tree.insert(name, col(&row, 1)?)?;
            }
            drop(rows);
            conn.finished();
            Ok(tree.finish())
        })
    }
}

/// A connection taken from the pool for one read: closed when dropped, unless the read
/// took its whole answer ([`Checkout::finished`]). A read that failed, stopped early or
/// was cancelled by its field's timeout leaves a connection with an answer pending: given
/// back to the pool, sqlx would read that answer to its end in a task of its own (however
/// long the server keeps sending), so it is closed instead.
pub(super) struct Checkout<DB: sqlx::Database> {
    conn: sqlx::pool::PoolConnection<DB>,
    finished: bool,
}

impl<DB: sqlx::Database> Checkout<DB> {
    pub(super) fn new(conn: sqlx::pool::PoolConnection<DB>) -> Self {
        Checkout {
            conn,
            finished: false,
        }
    }

    pub(super) fn connection(&mut self) -> &mut DB::Connection {
        &mut self.conn
    }

    /// The answer was read to its end: the connection goes back to the pool.
    pub(super) fn finished(&mut self) {
        self.finished = true;
    }
}

impl<DB: sqlx::Database> Drop for Checkout<DB> {
    fn drop(&mut self) {
        if !self.finished {
            self.conn.close_on_drop();
        }
    }
}

#[async_trait::async_trait]
impl Source for DatabaseSource {
    async fn fetch(&self, request: &FetchRequest) -> Result<RawValue, SourceError> {
        let mut answers = self.fetch_many(&[request]).await;
        answers
            .pop()
            .unwrap_or_else(|| Err(SourceError::new(ErrorKind::Unavailable)))
    }

    /// Table reads of one table become one query; identical queries run once; all groups
    /// run concurrently on the pool.
    async fn fetch_many(&self, requests: &[&FetchRequest]) -> Vec<Result<RawValue, SourceError>> {
        coalesce(
            requests,
            |unique| async move { self.grouped(&unique).await },
        )
        .await
    }

    /// The row `key = <path>` (`db.port`) of the key/value table the argument names
    /// (`database@settings`), else the struct's `table` (default `config`): columns `key`
    /// and `value`, the key bound as a parameter.
    fn convention(
        &self,
        request: FetchRequest,
        field: &crate::FieldPath<'_>,
    ) -> Result<FetchRequest, String> {
        if Subtree::is_subtree(&request) && request.table().is_some() {
            // A subtree read names its keys itself.
            return Ok(request);
        }
        let table = field
            .argument
            .filter(|a| !a.is_empty())
            .or(request.table())
            .unwrap_or(field.table)
            .to_owned();
        let table = table.as_str();
        if !valid_table(table) {
            return Err(format!(
                "the table must be a plain SQL identifier (letters, digits, `_`, `.`), found {table:?}"
            ));
        }
        Ok(request
            .with_table(table.to_owned())
            .with_key(format!("{}{}", field.key_prefix, field.path)))
    }

    fn location(&self) -> Option<String> {
        Some(self.location.clone())
    }

    /// PostgreSQL: LISTEN/NOTIFY on each table's channel and the source's channel for
    /// queries (see the `watch` module); other databases are polled.
    fn watch(&self, requests: Vec<FetchRequest>) -> Result<crate::Changes, SourceError> {
        #[cfg(feature = "postgres")]
        return self.watch_postgres(requests);
        #[cfg(not(feature = "postgres"))]
        {
            let _ = requests;
            Err(SourceError::new(ErrorKind::Config).with_message(
                "only PostgreSQL pools are watched (LISTEN/NOTIFY); others are polled",
            ))
        }
    }

    /// PREPARE and a row count for a query, the keys of a table, the rows under a
    /// prefix: no value crosses the wire (see the `preflight` module).
    fn preflight(&self, requests: Vec<FetchRequest>) -> crate::source::Preflighting<'_> {
        Box::pin(async move { self.preflight_all(&requests).await })
    }

    /// The query (its bound key is shown after it), or `table.key`.
    fn native_key(&self, request: &FetchRequest) -> Option<(&'static str, String)> {
        match (request.query(), request.table()) {
            (None, Some(t)) if Subtree::is_subtree(request) => subtree::native_key(request)
                .map(|(label, prefix)| (label, format!("{t}.{prefix}*"))),
            (Some(q), _) => Some(("query", q.to_owned())),
            (None, Some(t)) => Some(("key", format!("{t}.{}", request.key().unwrap_or("")))),
            _ => request.native_key(),
        }
    }
}

enum Grouped {
    Table(Result<HashMap<String, Result<RawValue, SourceError>>, SourceError>),
    Query(Result<RawValue, SourceError>),
}

impl DatabaseSource {
    /// Distinct requests grouped: one query per table, one per distinct query.
    async fn grouped(&self, requests: &[&FetchRequest]) -> Vec<Result<RawValue, SourceError>> {
        let mut tables: HashMap<&str, Vec<usize>> = HashMap::new();
        let mut queries: HashMap<(&str, Option<&str>), Vec<usize>> = HashMap::new();
        let mut results: Vec<Option<Result<RawValue, SourceError>>> =
            (0..requests.len()).map(|_| None).collect();
        let mut trees: Vec<(usize, &str)> = Vec::new();
        for (i, r) in requests.iter().enumerate() {
            match (r.query(), r.table(), r.key()) {
                (None, Some(t), _) if Subtree::is_subtree(r) => trees.push((i, t)),
                (Some(q), _, key) => queries.entry((q, key)).or_default().push(i),
                (None, Some(t), Some(_)) => tables.entry(t).or_default().push(i),
                _ => {
                    results[i] = Some(Err(SourceError::new(ErrorKind::Config)
                        .with_message("a database field needs `query`, or `table` with `key`")))
                }
            }
        }

        let table_jobs = tables.into_iter().map(|(table, members)| async move {
            let keys: Vec<&str> = members.iter().filter_map(|&i| requests[i].key()).collect();
            (
                members,
                Grouped::Table(self.table_values(table, &keys).await),
            )
        });
        let query_jobs = queries.into_iter().map(|((sql, key), members)| async move {
            (members, Grouped::Query(self.query_one(sql, key).await))
        });
        // A subtree read is one query of its own (identical ones were merged before).
        let tree_jobs = trees.into_iter().map(|(i, table)| async move {
            (
                vec![i],
                Grouped::Query(self.table_prefix(table, requests[i]).await),
            )
        });
        let (tables_done, queries_done, trees_done) = futures::future::join3(
            futures::future::join_all(table_jobs),
            futures::future::join_all(query_jobs),
            futures::future::join_all(tree_jobs),
        )
        .await;

        for (members, outcome) in tables_done
            .into_iter()
            .chain(queries_done)
            .chain(trees_done)
        {
            match outcome {
                Grouped::Table(Ok(mut values)) => {
                    for i in members {
                        let key = requests[i].key().unwrap_or("");
                        results[i] = Some(match values.get(key) {
                            Some(Ok(v)) => Ok(v.clone()),
                            Some(Err(e)) => Err(e.clone()),
                            None => Err(SourceError::not_found()),
                        });
                    }
                    values.clear();
                }
                Grouped::Table(Err(e)) | Grouped::Query(Err(e)) => {
                    // The first field keeps the original (with its cause), the others a copy.
                    let mut members = members.into_iter();
                    let first = members.next();
                    for i in members {
                        results[i] = Some(Err(e.clone()));
                    }
                    if let Some(i) = first {
                        results[i] = Some(Err(e));
                    }
                }
                Grouped::Query(Ok(v)) => {
                    for i in members {
                        results[i] = Some(Ok(v.clone()));
                    }
                }
            }
        }
        results
            .into_iter()
            .map(|r| r.unwrap_or_else(|| Err(SourceError::new(ErrorKind::Unavailable))))
            .collect()
    }
}

#[path = "preflight.rs"]
mod preflight;

#[cfg(all(test, feature = "sqlite"))]
mod tests {
    use super::*;

    async fn table_with(rows: usize) -> DatabaseSource {
        let pool = sqlx::sqlite::SqlitePoolOptions::new()
            .max_connections(1)
            .connect("sqlite::memory:")
            .await
            .unwrap();
        sqlx::query("CREATE TABLE config (key TEXT, value TEXT)")
            .execute(&pool)
            .await
            .unwrap();
        for i in 0..rows {
            sqlx::query("INSERT INTO config VALUES ('k', ?)")
                .bind(i.to_string())
                .execute(&pool)
                .await
                .unwrap();
        }
        DatabaseSource::new(pool)
    }

    #[tokio::test]
    async fn a_table_read_stops_at_the_row_limit() {
        let source = table_with(5).await.with_max_rows(3);
        let err = source.table_values("config", &["k"]).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::TooLarge, "{err}");
        assert!(err.to_string().contains("more than 3 rows"), "{err}");
        // Under the limit, the duplicate is reported for its key.
        let source = table_with(2).await.with_max_rows(3);
        let values = source.table_values("config", &["k"]).await.unwrap();
        assert_eq!(values["k"].as_ref().unwrap_err().kind(), ErrorKind::Decode);
    }

    #[tokio::test]
    async fn a_pool_not_made_from_a_url_has_no_response_limit() {
        let source = table_with(0).await.with_max_response(10);
        assert_eq!(source.max_response(), None);
    }
}
