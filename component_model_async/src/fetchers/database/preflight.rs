//! [`Source::preflight`](crate::Source::preflight) of the `database` source: each request
//! checked without a value crossing the wire.
//!
//! * a `query` is PREPARED first (not executed): a syntax error, a missing table or
//!   column is [`Access::Invalid`] with the database's message; then
//!   `SELECT COUNT(*) FROM (SELECT 1 FROM (<query>) AS q LIMIT 2) AS c`, with the field's
//!   key bound as fetch binds it, says whether it returns a row ([`Access::Readable`]),
//!   none ([`Access::Missing`]) or more than one ([`Access::Invalid`]): only a number
//!   comes back;
//! * the keys of a key/value `table`, one query per table as fetch does:
//!   `SELECT key FROM (SELECT key, value FROM t WHERE key IN (...)) AS q` (the value
//!   column is named, so a privilege on it is checked, but only keys come back);
//! * a subtree (`prefix`): the number of rows under the prefix (`COUNT(*)`, at most
//!   `max_keys + 1`);
//! * a refused privilege (PostgreSQL 42501, MySQL 1142/1143/1044) is [`Access::Denied`],
//!   refused credentials (SQLSTATE 28xxx, MySQL 1045) [`Access::Unauthenticated`], no
//!   connection [`Access::Unreachable`].
//!
//! The text of a database error raised while a check RUNS (not while it is prepared) is
//! shown only for the classes that cannot quote a value (syntax and access rules,
//! authorization, connection): a data error (`invalid input syntax for type integer:
//! "<value>"`) is named by its SQLSTATE alone.

use super::*;
use crate::source::{Access, Probe};

/// Where a check was when the database refused it: a prepared statement sees no data, a
/// running one may quote it in its errors.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Phase {
    Prepare,
    Run,
}

/// The SQL dialect's own numbering of an error (MySQL's error number), if any.
fn error_number(db: &dyn sqlx::error::DatabaseError) -> Option<u16> {
    #[cfg(feature = "mysql")]
    if let Some(my) = db.try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>() {
        return Some(my.number());
    }
    let _ = db;
    None
}

/// What a database error means for a request, and whether its message may be shown when
/// the check was running (it cannot quote a value).
fn classify(dialect: Dialect, code: &str, number: Option<u16>) -> (Access, bool) {
    match (dialect, number) {
        #[cfg(feature = "mysql")]
        (Dialect::MySql, Some(n)) => {
            return match n {
                1045 | 1698 => (Access::Unauthenticated, true),
                1044 | 1142 | 1143 | 1227 | 1370 | 1130 => (Access::Denied, true),
                1040 | 1203 | 1053 => (Access::Unreachable, true),
                // No such database, table or column; syntax; a derived table's names.
                1049 | 1146 | 1054 | 1064 | 1060 | 1248 | 1109 => (Access::Invalid, true),
                _ => (Access::Invalid, false),
            };
        }
        #[cfg(feature = "sqlite")]
        (Dialect::Sqlite, _) => {
            // SQLite's messages name tables and columns, never values.
            return match code {
                "14" => (Access::Unreachable, true),
                "23" => (Access::Denied, true),
                _ => (Access::Invalid, true),
            };
        }
        #[allow(unreachable_patterns)]
        _ => {}
    }
    let class = code.get(..2).unwrap_or("");
    match (code, class) {
        ("42501", _) => (Access::Denied, true),
        (_, "28") => (Access::Unauthenticated, true),
        (_, "08" | "53" | "57") => (Access::Unreachable, true),
        // Syntax and access rules, no such database, schema.
        (_, "42" | "3D" | "3F") => (Access::Invalid, true),
        _ => (Access::Invalid, false),
    }
}

/// A distinct query of a preflight: its SQL and its bound key.
type QueryKey<'r> = (&'r str, Option<&'r str>);

impl DatabaseSource {
    /// What a driver error means for the requests of one check.
    fn probe_of(&self, dialect: Dialect, e: sqlx::Error, phase: Phase, before: u64) -> Probe {
        if let sqlx::Error::Database(db) = &e {
            let code = db.code().map(|c| c.into_owned()).unwrap_or_default();
            let number = error_number(db.as_ref());
            let (access, safe) = classify(dialect, &code, number);
            let code = match number {
                Some(n) => format!("error {n}, SQLSTATE {code}"),
                None => format!("SQLSTATE {code}"),
            };
            let detail = if safe || phase == Phase::Prepare {
                format!("{} ({code})", db.message())
            } else {
                format!(
                    "the database refused the check ({code}); its message is not shown, as it may quote a value"
                )
            };
            return Probe::new(access).with_detail(detail);
        }
        Probe::from_error(&self.sql_error(e, before))
    }

    /// One [`Probe`] per request, in order (see the module docs).
    pub(super) async fn preflight_all(&self, requests: &[FetchRequest]) -> Vec<Probe> {
        let pool = match self.pool_or_error() {
            Ok(pool) => pool,
            Err(e) => return requests.iter().map(|_| Probe::from_error(&e)).collect(),
        };
        let mut probes: Vec<Option<Probe>> = requests.iter().map(|_| None).collect();
        let mut tables: Vec<(&str, Vec<usize>)> = Vec::new();
        // Each distinct (query, bound key) once, with the requests that ask it.
        let mut queries: Vec<(QueryKey<'_>, Vec<usize>)> = Vec::new();
        let mut trees: Vec<(usize, &str)> = Vec::new();
        for (i, r) in requests.iter().enumerate() {
            match (r.query(), r.table(), r.key()) {
                (None, Some(t), _) if Subtree::is_subtree(r) => trees.push((i, t)),
                (Some(q), _, key) => match queries.iter_mut().find(|(k, _)| *k == (q, key)) {
                    Some((_, members)) => members.push(i),
                    None => queries.push(((q, key), vec![i])),
                },
                (None, Some(t), Some(_)) => match tables.iter_mut().find(|(k, _)| *k == t) {
                    Some((_, members)) => members.push(i),
                    None => tables.push((t, vec![i])),
                },
                _ => {
                    probes[i] = Some(
                        Probe::new(Access::Invalid)
                            .with_detail("a database field needs `query`, or `table` with `key`"),
                    );
                }
            }
        }
        let table_jobs = tables.into_iter().map(|(table, members)| async move {
            let keys: Vec<&str> = members.iter().filter_map(|&i| requests[i].key()).collect();
            let found = self.check_table(pool, table, &keys).await;
            members
                .iter()
                .map(|&i| {
                    let key = requests[i].key().unwrap_or("");
                    let probe = match &found {
                        Err(probe) => probe.clone(),
                        Ok(rows) => match rows.get(key).copied().unwrap_or(0) {
                            0 => Probe::missing()
                                .with_detail(format!("no row with key `{key}` in table `{table}`")),
                            1 => Probe::readable(),
                            _ => Probe::new(Access::Invalid).with_detail(format!(
                                "table `{table}` has more than one row for key `{key}`"
                            )),
                        },
                    };
                    (i, probe)
                })
                .collect::<Vec<_>>()
        });
        let query_jobs = queries.into_iter().map(|((sql, key), members)| async move {
            let probe = self.check_query(pool, sql, key).await;
            members
                .into_iter()
                .map(|i| (i, probe.clone()))
                .collect::<Vec<_>>()
        });
        let tree_jobs = trees.into_iter().map(|(i, table)| async move {
            vec![(i, self.check_prefix(pool, table, &requests[i]).await)]
        });
        let (a, b, c) = futures::future::join3(
            futures::future::join_all(table_jobs),
            futures::future::join_all(query_jobs),
            futures::future::join_all(tree_jobs),
        )
        .await;
        for (i, probe) in a.into_iter().chain(b).chain(c).flatten() {
            probes[i] = Some(probe);
        }
        probes
            .into_iter()
            .map(|p| p.unwrap_or_else(|| Probe::unchecked("not checked")))
            .collect()
    }

    /// A `query` field: PREPARE, then the number of rows it returns (at most 2) with its
    /// key bound.
    async fn check_query(&self, pool: &DbPool, sql: &str, key: Option<&str>) -> Probe {
        let body = sql.trim().trim_end_matches(';').trim_end();
        with_pool!(pool, |p, _col, d| {
            let before = self.overflows();
            let mut conn = match p.acquire().await {
                Ok(conn) => Checkout::new(conn),
                Err(e) => return self.probe_of(d, e, Phase::Prepare, before),
            };
            self.count_query();
            let prepared = sqlx::Executor::prepare(
                conn.connection(),
                sqlx::SqlSafeStr::into_sql_str(AssertSqlSafe(body.to_owned())),
            )
            .await;
            if let Err(e) = prepared {
                answered(&mut conn, &e);
                return self.probe_of(d, e, Phase::Prepare, before);
            }
            let counting =
                format!("SELECT COUNT(*) FROM (SELECT 1 FROM ({body}) AS q LIMIT 2) AS c");
            let mut q = sqlx::query_scalar::<_, i64>(AssertSqlSafe(counting));
            if let Some(k) = key {
                q = q.bind(k.to_owned());
            }
            self.count_query();
            let counted = q.fetch_one(conn.connection()).await;
            match counted {
                Ok(n) => {
                    conn.finished();
                    match n {
                        0 => Probe::missing().with_detail("the query prepares and returns no row"),
                        1 => Probe::readable().with_detail("the query prepares and returns one row"),
                        _ => Probe::new(Access::Invalid).with_detail(
                            "the query returns more than one row where one is read (add a WHERE clause or LIMIT 1)",
                        ),
                    }
                }
                Err(e) => {
                    answered(&mut conn, &e);
                    let around = wraps_badly(d, &e);
                    let probe = self.probe_of(d, e, Phase::Run, before);
                    match probe.access {
                        // The query prepared: what failed is the subquery around it
                        // (a statement that cannot be one, or columns of one name). A
                        // data error stays invalid: the fetch would fail alike.
                        Access::Invalid if around => Probe::unchecked(format!(
                            "the query prepares; whether it returns a row was not checked: {}",
                            probe.detail.unwrap_or_default()
                        )),
                        _ => probe,
                    }
                }
            }
        })
    }

    /// The keys of `keys` present in `table` (how many rows each), as fetch reads them:
    /// one query, only the keys coming back.
    async fn check_table(
        &self,
        pool: &DbPool,
        table: &str,
        keys: &[&str],
    ) -> Result<HashMap<String, usize>, Probe> {
        if !valid_table(table) {
            return Err(Probe::new(Access::Invalid).with_detail(format!(
                "`{table}` is not a plain table name (letters, digits, `_`, one optional `schema.`)"
            )));
        }
        let max_rows = self.max_rows;
        with_pool!(pool, |p, _col, d| {
            let before = self.overflows();
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
            let sql =
                format!("SELECT {k} FROM (SELECT {k}, {v} FROM {table_sql} WHERE {k} {list}) AS q");
            let mut conn = match p.acquire().await {
                Ok(conn) => Checkout::new(conn),
                Err(e) => return Err(self.probe_of(d, e, Phase::Run, before)),
            };
            self.count_query();
            let q = BindKeys::bind_keys(sqlx::query(AssertSqlSafe(sql)), keys);
            let mut rows = q.fetch(conn.connection());
            let mut found: HashMap<String, usize> = HashMap::new();
            let mut taken = 0usize;
            loop {
                let row = match rows.try_next().await {
                    Ok(Some(row)) => row,
                    Ok(None) => break,
                    Err(e) => {
                        drop(rows);
                        answered(&mut conn, &e);
                        return Err(self.probe_of(d, e, Phase::Run, before));
                    }
                };
                taken += 1;
                if taken > max_rows {
                    return Err(Probe::new(Access::Invalid).with_detail(format!(
                        "table `{table}` has more than {max_rows} rows for {} key(s) (see `DatabaseSource::with_max_rows`)",
                        keys.len()
                    )));
                }
                match sqlx::Row::try_get::<String, _>(&row, 0) {
                    Ok(key) => *found.entry(key).or_default() += 1,
                    Err(e) => return Err(self.probe_of(d, e, Phase::Run, before)),
                }
            }
            drop(rows);
            conn.finished();
            Ok(found)
        })
    }

    /// A subtree read: how many rows are under the prefix (at most `max_keys + 1`).
    async fn check_prefix(&self, pool: &DbPool, table: &str, request: &FetchRequest) -> Probe {
        let tree = match Subtree::of(request) {
            Some(Ok(tree)) => tree,
            Some(Err(e)) => return Probe::from_error(&e),
            None => return Probe::new(Access::Invalid).with_detail("no `prefix`"),
        };
        if !valid_table(table) {
            return Probe::new(Access::Invalid).with_detail(format!(
                "`{table}` is not a plain table name (letters, digits, `_`, one optional `schema.`)"
            ));
        }
        let prefix = tree.prefix();
        let max_keys = tree.max_keys();
        let limit = max_keys.saturating_add(1);
        with_pool!(pool, |p, _col, d| {
            let before = self.overflows();
            let table_sql = table
                .split('.')
                .map(|part| d.quote(part))
                .collect::<Vec<_>>()
                .join(".");
            let (k, v) = (d.quote("key"), d.quote("value"));
            let sql = format!(
                "SELECT COUNT(*) FROM (SELECT {k}, {v} FROM {table_sql} WHERE {k} LIKE {} {} LIMIT {limit}) AS q",
                d.placeholder(1),
                d.like_escape()
            );
            let mut conn = match p.acquire().await {
                Ok(conn) => Checkout::new(conn),
                Err(e) => return self.probe_of(d, e, Phase::Run, before),
            };
            self.count_query();
            let counted = sqlx::query_scalar::<_, i64>(AssertSqlSafe(sql))
                .bind(like_prefix(prefix))
                .fetch_one(conn.connection())
                .await;
            match counted {
                Ok(n) => {
                    conn.finished();
                    let n = usize::try_from(n).unwrap_or(0);
                    if n > max_keys {
                        Probe::new(Access::Invalid).with_detail(format!(
                            "more than {max_keys} rows under prefix `{prefix}` in table `{table}` (`max_keys`)"
                        ))
                    } else if n == 0 {
                        Probe::readable().with_detail(format!(
                            "no row under prefix `{prefix}` in table `{table}`: the field reads an empty table"
                        ))
                    } else {
                        Probe::readable().with_detail(format!(
                            "{n} row{} under prefix `{prefix}` in table `{table}`",
                            if n == 1 { "" } else { "s" }
                        ))
                    }
                }
                Err(e) => {
                    answered(&mut conn, &e);
                    self.probe_of(d, e, Phase::Run, before)
                }
            }
        })
    }
}

/// Whether `e`, raised by the row count around a query that prepared, is the database
/// refusing the count's SQL (syntax and naming rules: a statement that cannot be a
/// subquery, columns of one name) rather than the query's own run (a data error).
fn wraps_badly(dialect: Dialect, e: &sqlx::Error) -> bool {
    let sqlx::Error::Database(db) = e else {
        return false;
    };
    let code = db.code().unwrap_or_default();
    match (dialect, error_number(db.as_ref())) {
        #[cfg(feature = "mysql")]
        (Dialect::MySql, Some(n)) => matches!(n, 1060 | 1064 | 1248 | 1221 | 1235),
        #[cfg(feature = "sqlite")]
        (Dialect::Sqlite, _) => code == "1",
        #[allow(unreachable_patterns)]
        _ => code.starts_with("42"),
    }
}

/// After an error the database itself answered (a statement refused), the connection
/// has no answer pending: it goes back to the pool (an in-memory SQLite database lives
/// in its connection). After any other error it is closed.
fn answered<DB: sqlx::Database>(conn: &mut Checkout<DB>, e: &sqlx::Error) {
    if matches!(e, sqlx::Error::Database(_)) {
        conn.finished();
    }
}
