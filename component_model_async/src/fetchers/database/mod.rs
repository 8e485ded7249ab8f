//! The `database` source on sqlx: PostgreSQL, MariaDB/MySQL and SQLite, each behind its
//! cargo feature (`postgres`, `mysql`, `sqlite`).
//!
//! A field reads either a query (`query = "SELECT value FROM config WHERE key = $1"`,
//! optionally with `key` bound as the one parameter) or a key of a key/value table
//! (`table = "config", key = "db_url"`: columns `key` and `value`). Nothing is ever
//! interpolated into SQL text: keys are bound parameters and table names are checked to be
//! plain identifiers.
//!
//! One `fetch_all_components` hands the source all of its requests at once: requests for
//! keys of the same table become ONE `SELECT key, value FROM t WHERE key IN (...)`, and
//! identical queries run once. Connections come from the sqlx pool, so concurrent fetches
//! never open more connections than the pool's maximum.
//!
//! Bounded: a server's answer to each request is at most [`DEFAULT_MAX_RESPONSE`] bytes
//! ([`DatabaseSource::with_max_response`]), counted on the connection's socket before sqlx
//! buffers it (through a local relay, for PostgreSQL and MySQL pools made from a URL, on
//! Unix); a `table` read takes at most [`DEFAULT_MAX_ROWS`] rows
//! ([`DatabaseSource::with_max_rows`]), streamed. Either limit exceeded fails the fields
//! with `too large`; a read that failed, stopped early or timed out closes its connection
//! rather than giving it back to the pool with an answer still pending.
//!
//! A subtree, `table = "config", prefix = "app."`: every row whose key starts with the
//! prefix, as ONE JSON object of the keys relative to the prefix (`{"port": "8080", ..}`,
//! for a `HashMap<String, T>`, a `BTreeMap` or a struct; each value converts as the field's
//! type asks). ONE query per subtree field:
//! `SELECT key, value FROM config WHERE key LIKE $1 ESCAPE '\' LIMIT <max_keys + 1>`
//! (`?` for MySQL and SQLite), the prefix BOUND as the parameter with its `%`, `_` and `\`
//! escaped (a key `a_b` never matches the prefix `a%`); `prefix = ""` reads the whole
//! table. Past `max_keys = N` rows (default 10 000) or the field's `max_size` bytes (keys and
//! values) the read stops with `too large`. (With a case-insensitive collation, MySQL's
//! `LIKE` also matches other cases; only keys that start with the prefix byte for byte
//! are taken, but the others count toward `max_keys`.)
//!
//! PostgreSQL is watched (for a [`Live`](crate::Live)) with LISTEN/NOTIFY: a table's
//! fields on the channel [`notify_channel`]`(table)`, notified by the trigger
//! [`notify_trigger_sql`] makes; `query` fields on the channel of
//! [`DatabaseSource::with_notify_channel`]. MariaDB and SQLite are polled.
//!
//! ## Preflight
//!
//! [`Source::preflight`](crate::Source::preflight) reads no value: a `query` is PREPARED
//! (a syntax error, a missing table or column is [`Access::Invalid`](crate::Access) with
//! the database's message), then `SELECT COUNT(*) FROM (SELECT 1 FROM (<query>) AS q
//! LIMIT 2) AS c` with its key bound says whether it returns a row (`Readable`), none
//! (`Missing`) or several (`Invalid`) — only a number crosses the wire; the keys of a
//! `table` are looked up in one query per table that returns the keys alone; a `prefix`
//! counts its rows. A privilege refused (PostgreSQL 42501, MySQL 1142/1143/1044) is
//! `Denied`, credentials refused (SQLSTATE 28xxx, MySQL 1045) `Unauthenticated`, no
//! connection `Unreachable`. Keys are bound, never written into SQL; the message of a
//! data error raised while a check runs (which may quote a value) is not shown.
//!
//! ## What this module declares
//!
//! * names `database`, `database:<pool>`, `postgres`, `mysql`, `sqlite`; cargo features
//!   `postgres`, `mysql`, `sqlite`; [`Sources::from_env`](crate::Sources::from_env)
//!   registers `DATABASE_URL` as `database` and under its driver's name;
//! * attribute keys: `query`, or `table` with `key` (or with `prefix`, and `max_keys`, a
//!   subtree; `prefix` with `key` or `query` is a compile error); `key` alone binds the
//!   query's one parameter; `source = "pool"` names a pool;
//! * key label `query` (with its bound key) or `key` (`table.key`); values are not secret;
//!   coalescing: one `IN (...)` query per table, identical queries once.

#[cfg(any(feature = "postgres", feature = "mysql"))]
mod binary;
#[cfg(any(feature = "postgres", feature = "mysql", feature = "sqlite"))]
mod decode;
#[cfg(any(feature = "postgres", feature = "mysql", feature = "sqlite"))]
mod fetcher;
#[cfg(all(unix, any(feature = "postgres", feature = "mysql")))]
mod relay;
#[cfg(any(feature = "postgres", feature = "mysql", feature = "sqlite"))]
mod source;
#[cfg(any(feature = "postgres", feature = "mysql", feature = "sqlite"))]
pub use fetcher::{DatabaseFetcher, FromDbRow, Row};
#[cfg(any(feature = "postgres", feature = "mysql", feature = "sqlite"))]
pub use source::*;
#[cfg(feature = "postgres")]
mod watch;
#[cfg(feature = "postgres")]
pub use watch::{notify_channel, notify_trigger_sql};

use crate::fetchers::Builtin;

pub(crate) const BUILTIN: Builtin = Builtin {
    names: &["database", "postgres", "mysql", "sqlite"],
    hint: "`Sources::from_env()` registers it when DATABASE_URL is set; a named pool is registered with `DatabaseSource::new(pool)`",
    from_env: |env| {
        #[cfg(any(feature = "postgres", feature = "mysql", feature = "sqlite"))]
        if let Some(url) = env.get("DATABASE_URL") {
            let db = DatabaseSource::lazy(&url);
            let driver = db.pool().map(|p| p.driver());
            let db: std::sync::Arc<dyn crate::Source> = std::sync::Arc::new(db);
            let mut registered = vec![("database", db.clone())];
            registered.extend(driver.map(|driver| (driver, db)));
            return registered;
        }
        let _ = env;
        Vec::new()
    },
};

/// Compile-time rules of `fetch_from = "database"` and the driver names (see
/// `fetchers/mod.rs`).
#[doc(hidden)]
#[macro_export]
macro_rules! __component_model_rules_database {
    // `@sql <name> [<query> <table> <key> <prefix>] <names>`: which of the four the field has.
    (@sql $name:tt [$q:tt $t:tt $k:tt $p:tt] query $($rest:ident)*) => {
        $crate::__component_model_rules_database! { @sql $name [1 $t $k $p] $($rest)* }
    };
    (@sql $name:tt [$q:tt $t:tt $k:tt $p:tt] table $($rest:ident)*) => {
        $crate::__component_model_rules_database! { @sql $name [$q 1 $k $p] $($rest)* }
    };
    (@sql $name:tt [$q:tt $t:tt $k:tt $p:tt] key $($rest:ident)*) => {
        $crate::__component_model_rules_database! { @sql $name [$q $t 1 $p] $($rest)* }
    };
    (@sql $name:tt [$q:tt $t:tt $k:tt $p:tt] prefix $($rest:ident)*) => {
        $crate::__component_model_rules_database! { @sql $name [$q $t $k 1] $($rest)* }
    };
    (@sql $name:tt $qtkp:tt $other:ident $($rest:ident)*) => {
        $crate::__component_model_rules_database! { @sql $name $qtkp $($rest)* }
    };
    // Neither: the convention's row `key = <path>` of the struct's `table` (`config`).
    (@sql $name:tt [0 0 0 0]) => {};
    (@sql $name:tt [$q:tt $t:tt 1 1]) => {
        ::core::compile_error!("a field reads either one key (`key = \"...\"`) or every key under a prefix (`prefix = \"...\"`), not both");
    };
    (@sql $name:tt [1 $t:tt $k:tt 1]) => {
        ::core::compile_error!("`prefix` reads the keys of a key/value `table`, not a `query`");
    };
    (@sql $name:tt [0 0 0 1]) => {
        ::core::compile_error!(::core::concat!(
            "the `",
            $name,
            "` source reads `prefix` from a key/value table: add `table = \"...\"` (columns `key` and `value`)"
        ));
    };
    (@sql $name:tt [0 0 1 $p:tt]) => {
        ::core::compile_error!(::core::concat!(
            "the `",
            $name,
            "` source binds `key` into a query: add `query = \"SELECT ...\"`, or `table = \"...\"` (a key/value table), or leave both out to read the row named by the field's path from the struct's `table` (default `config`)"
        ));
    };
    (@sql $name:tt [1 1 $k:tt $p:tt]) => {
        ::core::compile_error!("use either `query` or `table`, not both");
    };
    (@sql $name:tt $qtkp:tt) => {};
    ($name:tt $entry:tt has [$($names:ident)*]) => {
        $crate::__component_model_feature_database! { $name $entry }
        $crate::__component_model_rules_database! { @sql $name [0 0 0 0] $($names)* }
    };
    ($name:tt $entry:tt param key) => {};
    ($name:tt $entry:tt param query) => {};
    ($name:tt $entry:tt param table) => {};
    ($name:tt $entry:tt param source) => {};
    ($name:tt $entry:tt param prefix) => {};
    ($name:tt $entry:tt param max_keys) => {};
    ($name:tt $entry:tt param $other:ident) => {
        $crate::fetchers::__unknown_backend_key! { $other $name [key query table source prefix max_keys] }
    };
}

/// The cargo feature each database name needs.
#[doc(hidden)]
#[macro_export]
macro_rules! __component_model_feature_database {
    ("database" $entry:tt) => {
        $crate::__component_model_feature_any_sql! { $entry }
    };
    ("postgres" $entry:tt) => {
        $crate::__component_model_feature_postgres! { $entry }
    };
    ("mysql" $entry:tt) => {
        $crate::__component_model_feature_mysql! { $entry }
    };
    ("sqlite" $entry:tt) => {
        $crate::__component_model_feature_sqlite! { $entry }
    };
}

#[cfg(any(feature = "postgres", feature = "mysql", feature = "sqlite"))]
#[doc(hidden)]
#[macro_export]
macro_rules! __component_model_feature_any_sql {
    ($entry:tt) => {};
}
#[cfg(not(any(feature = "postgres", feature = "mysql", feature = "sqlite")))]
#[doc(hidden)]
#[macro_export]
macro_rules! __component_model_feature_any_sql {
    (facade) => {
        ::core::compile_error!("backend `database` needs a cargo feature (`postgres`, `mysql` or `sqlite`) of component_model");
    };
    (direct) => {
        ::core::compile_error!("backend `database` needs a cargo feature (`postgres`, `mysql` or `sqlite`) of component_model_async");
    };
}

#[cfg(feature = "postgres")]
#[doc(hidden)]
#[macro_export]
macro_rules! __component_model_feature_postgres {
    ($entry:tt) => {};
}
#[cfg(not(feature = "postgres"))]
#[doc(hidden)]
#[macro_export]
macro_rules! __component_model_feature_postgres {
    (facade) => {
        ::core::compile_error!(
            "backend `postgres` needs cargo feature `postgres` of component_model"
        );
    };
    (direct) => {
        ::core::compile_error!(
            "backend `postgres` needs cargo feature `postgres` of component_model_async"
        );
    };
}

#[cfg(feature = "mysql")]
#[doc(hidden)]
#[macro_export]
macro_rules! __component_model_feature_mysql {
    ($entry:tt) => {};
}
#[cfg(not(feature = "mysql"))]
#[doc(hidden)]
#[macro_export]
macro_rules! __component_model_feature_mysql {
    (facade) => {
        ::core::compile_error!("backend `mysql` needs cargo feature `mysql` of component_model");
    };
    (direct) => {
        ::core::compile_error!(
            "backend `mysql` needs cargo feature `mysql` of component_model_async"
        );
    };
}

#[cfg(feature = "sqlite")]
#[doc(hidden)]
#[macro_export]
macro_rules! __component_model_feature_sqlite {
    ($entry:tt) => {};
}
#[cfg(not(feature = "sqlite"))]
#[doc(hidden)]
#[macro_export]
macro_rules! __component_model_feature_sqlite {
    (facade) => {
        ::core::compile_error!("backend `sqlite` needs cargo feature `sqlite` of component_model");
    };
    (direct) => {
        ::core::compile_error!(
            "backend `sqlite` needs cargo feature `sqlite` of component_model_async"
        );
    };
}
