//! [`DatabaseFetcher`]: one query as a [`ComponentFetcher`], as the specification sketches it.

use std::fmt;

use serde::de::DeserializeOwned;

use super::source::{Checkout, DatabaseSource, DbPool};
use crate::convert::{self, Target};
use crate::error::{ComponentError, ErrorKind, Provenance, SourceError};
use crate::fetcher::ComponentFetcher;
use crate::source::FieldSpec;

/// Runs one query and converts its result.
///
/// * `ComponentFetcher<T>` for any `serde::Deserialize` type: the first column of the one
///   row for a scalar (`String`, `u16`, `bool`, ...), a JSON/JSONB/TEXT column holding a
///   document for a struct, or a multi-column row read as an object keyed by column name.
/// * `ComponentFetcher<Row<T>>` for any `T` implementing `sqlx::FromRow` for the enabled
///   drivers' rows (e.g. `#[derive(sqlx::FromRow)]`).
///
/// Zero rows is `not found`; more than one row is an error.
///
/// ```no_run
/// use component_model_async::ComponentFetcher;
/// use component_model_async::fetchers::database::DatabaseFetcher;
///
/// # async fn run() -> Result<(), component_model_async::ComponentError> {
/// let fetcher = DatabaseFetcher::from_url("postgres://app@127.0.0.1/app", "SELECT value FROM config WHERE key = $1")
///     .await?
///     .with_key("db_url");
/// let url: String = fetcher.fetch_component().await?;
/// # Ok(()) }
/// ```
pub struct DatabaseFetcher {
    source: DatabaseSource,
    query: String,
    key: Option<String>,
}

impl fmt::Debug for DatabaseFetcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DatabaseFetcher")
            .field("source", &self.source)
            .field("query", &self.query)
            .field("key", &self.key)
            .finish()
    }
}

impl DatabaseFetcher {
    /// A fetcher running `query` on `pool` (a `PgPool`, `MySqlPool`, `SqlitePool` or [`DbPool`]).
    pub fn new(pool: impl Into<DbPool>, query: impl Into<String>) -> Self {
        DatabaseFetcher {
            source: DatabaseSource::new(pool),
            query: query.into(),
            key: None,
        }
    }

    /// Connects to `url` (see [`DbPool::connect`]) and returns a fetcher running `query`.
    pub async fn from_url(url: &str, query: impl Into<String>) -> Result<Self, ComponentError> {
        let query = query.into();
        match DatabaseSource::connect(url).await {
            Ok(source) => Ok(DatabaseFetcher {
                source,
                query,
                key: None,
            }),
            Err(e) => Err(source_error(
                e,
                &query,
                Some(super::source::location_of(url)),
            )),
        }
    }

    /// Binds `key` as the query's one parameter (`$1` / `?`).
    #[must_use]
    pub fn with_key(mut self, key: impl Into<String>) -> Self {
        self.key = Some(key.into());
        self
    }

    fn provenance(&self) -> Provenance {
        Provenance {
            owner: None,
            field: None,
            source: Some("database".into()),
            key_label: "query".into(),
            key: Some(self.query.clone()),
            bound_key: self.key.clone(),
            location: sqlx_location(&self.source),
        }
    }
}

fn sqlx_location(source: &DatabaseSource) -> Option<String> {
    crate::source::Source::location(source)
}

fn source_error(e: SourceError, query: &str, location: Option<String>) -> ComponentError {
    let kind = e.kind();
    let b = ComponentError::field(kind).provenance(Provenance {
        source: Some("database".into()),
        key_label: "query".into(),
        key: Some(query.to_owned()),
        location,
        ..Provenance::default()
    });
    e.into_field_error(b)
}

#[async_trait::async_trait]
impl<T: DeserializeOwned + Send + 'static> ComponentFetcher<T> for DatabaseFetcher {
    type Error = ComponentError;

    async fn fetch_component(&self) -> Result<T, ComponentError> {
        let raw = self
            .source
            .query_one(&self.query, self.key.as_deref())
            .await
            .map_err(|e| source_error(e, &self.query, sqlx_location(&self.source)))?;
        let spec = FieldSpec::new(
            "DatabaseFetcher",
            "value",
            std::any::type_name::<T>(),
            "database",
        );
        let provenance = || self.provenance();
        let target = Target::new(&spec, &provenance, convert::is_secret_type::<T>());
        match convert::decode::<T>(raw, &target) {
            Err(e) if e.kind() == ErrorKind::Decode || e.kind() == ErrorKind::NotFound => {
                match convert::absent::<T>() {
                    Some(none) if e.kind() == ErrorKind::NotFound => Ok(none),
                    _ => Err(e),
                }
            }
            other => other,
        }
    }
}

/// A value read with `sqlx::FromRow` instead of serde: `let Row(cfg): Row<MyRow> = fetcher.fetch_component().await?`.
#[derive(Debug, Clone, PartialEq)]
pub struct Row<T>(pub T);

/// `sqlx::FromRow` for the row type of every enabled driver.
pub trait FromDbRow: Sized + Send + Unpin + 'static {
    #[doc(hidden)]
    fn from_db_row(row: DbRow<'_>) -> Result<Self, sqlx::Error>;
}

/// A row of one of the enabled drivers.
#[doc(hidden)]
#[non_exhaustive]
pub enum DbRow<'r> {
    #[cfg(feature = "postgres")]
    Postgres(&'r sqlx::postgres::PgRow),
    #[cfg(feature = "mysql")]
    MySql(&'r sqlx::mysql::MySqlRow),
    #[cfg(feature = "sqlite")]
    Sqlite(&'r sqlx::sqlite::SqliteRow),
}

#[cfg(feature = "postgres")]
#[doc(hidden)]
pub trait FromPg: for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow> {}
#[cfg(feature = "postgres")]
impl<T: for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow>> FromPg for T {}
#[cfg(not(feature = "postgres"))]
#[doc(hidden)]
pub trait FromPg {}
#[cfg(not(feature = "postgres"))]
impl<T> FromPg for T {}

#[cfg(feature = "mysql")]
#[doc(hidden)]
pub trait FromMySql: for<'r> sqlx::FromRow<'r, sqlx::mysql::MySqlRow> {}
#[cfg(feature = "mysql")]
impl<T: for<'r> sqlx::FromRow<'r, sqlx::mysql::MySqlRow>> FromMySql for T {}
#[cfg(not(feature = "mysql"))]
#[doc(hidden)]
pub trait FromMySql {}
#[cfg(not(feature = "mysql"))]
impl<T> FromMySql for T {}

#[cfg(feature = "sqlite")]
#[doc(hidden)]
pub trait FromSqlite: for<'r> sqlx::FromRow<'r, sqlx::sqlite::SqliteRow> {}
#[cfg(feature = "sqlite")]
impl<T: for<'r> sqlx::FromRow<'r, sqlx::sqlite::SqliteRow>> FromSqlite for T {}
#[cfg(not(feature = "sqlite"))]
#[doc(hidden)]
pub trait FromSqlite {}
#[cfg(not(feature = "sqlite"))]
impl<T> FromSqlite for T {}

impl<T: FromPg + FromMySql + FromSqlite + Send + Unpin + 'static> FromDbRow for T {
    fn from_db_row(row: DbRow<'_>) -> Result<Self, sqlx::Error> {
        match row {
            #[cfg(feature = "postgres")]
            DbRow::Postgres(r) => <T as sqlx::FromRow<'_, _>>::from_row(r),
            #[cfg(feature = "mysql")]
            DbRow::MySql(r) => <T as sqlx::FromRow<'_, _>>::from_row(r),
            #[cfg(feature = "sqlite")]
            DbRow::Sqlite(r) => <T as sqlx::FromRow<'_, _>>::from_row(r),
        }
    }
}

#[async_trait::async_trait]
impl<T: FromDbRow> ComponentFetcher<Row<T>> for DatabaseFetcher {
    type Error = ComponentError;

    async fn fetch_component(&self) -> Result<Row<T>, ComponentError> {
        let before = self.source.overflows();
        let location = sqlx_location(&self.source);
        let fail = |e: sqlx::Error| {
            source_error(
                self.source.sql_error(e, before),
                &self.query,
                location.clone(),
            )
        };
        let pool = self
            .source
            .pool_or_error()
            .map_err(|e| source_error(e, &self.query, None))?;
        with_rows(pool, &self.query, self.key.as_deref())
            .await
            .map_err(fail)
            .and_then(|rows| {
                let mut rows = rows.into_iter();
                match (rows.next(), rows.next()) {
                    (None, _) => Err(source_error(
                        SourceError::not_found().with_message("the query returned no rows"),
                        &self.query,
                        None,
                    )),
                    (Some(_), Some(_)) => Err(source_error(
                        SourceError::new(ErrorKind::Decode).with_message(
                            "the query returned more than one row where one was expected",
                        ),
                        &self.query,
                        None,
                    )),
                    (Some(row), None) => row.decode::<T>().map(Row).map_err(fail),
                }
            })
    }
}

/// Rows of one driver, fetched for `FromRow` decoding.
enum Rows {
    #[cfg(feature = "postgres")]
    Postgres(sqlx::postgres::PgRow),
    #[cfg(feature = "mysql")]
    MySql(sqlx::mysql::MySqlRow),
    #[cfg(feature = "sqlite")]
    Sqlite(sqlx::sqlite::SqliteRow),
}

impl Rows {
    fn decode<T: FromDbRow>(&self) -> Result<T, sqlx::Error> {
        match self {
            #[cfg(feature = "postgres")]
            Rows::Postgres(r) => T::from_db_row(DbRow::Postgres(r)),
            #[cfg(feature = "mysql")]
            Rows::MySql(r) => T::from_db_row(DbRow::MySql(r)),
            #[cfg(feature = "sqlite")]
            Rows::Sqlite(r) => T::from_db_row(DbRow::Sqlite(r)),
        }
    }
}

/// At most two rows (enough to tell "exactly one"), on a connection that is closed unless
/// the answer was read to its end (see [`Checkout`]).
async fn with_rows(pool: &DbPool, sql: &str, key: Option<&str>) -> Result<Vec<Rows>, sqlx::Error> {
    use futures::TryStreamExt;
    macro_rules! two {
        ($p:expr, $variant:ident) => {{
            let mut conn = Checkout::new($p.acquire().await?);
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()));
            if let Some(k) = key {
                q = q.bind(k.to_owned());
            }
            let mut stream = q.fetch(conn.connection());
            let mut out = Vec::new();
            let mut ended = false;
            while out.len() < 2 {
                match stream.try_next().await? {
                    Some(r) => out.push(Rows::$variant(r)),
                    None => {
                        ended = true;
                        break;
                    }
                }
                tokio::task::consume_budget().await;
            }
            drop(stream);
            if ended {
                conn.finished();
            }
            Ok(out)
        }};
    }
    match pool {
        #[cfg(feature = "postgres")]
        DbPool::Postgres(p) => two!(p, Postgres),
        #[cfg(feature = "mysql")]
        DbPool::MySql(p) => two!(p, MySql),
        #[cfg(feature = "sqlite")]
        DbPool::Sqlite(p) => two!(p, Sqlite),
    }
}
