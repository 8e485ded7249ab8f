//! Built-in backends, one module per backend, each behind its own cargo feature.
//!
//! | `fetch_from` | module | feature |
//! |---|---|---|
//! | `env` | [`env`](mod@env) | always on |
//! | `database`, `database:<name>`, `postgres`, `mysql`, `sqlite` | `database` | `postgres`, `mysql`, `sqlite` |
//! | `api`, `http` | `http` | `http` (planned) |
//! | `consul` | `consul` | `consul` (planned) |
//! | `vault` | `vault` | `vault` (planned) |
//! | `redis` | `redis` | `redis` (planned) |
//!
//! A planned backend's feature can already be enabled; until its module lands, a field that
//! names it needs a source registered under that name with [`Sources::register`](crate::Sources::register).

#[cfg(any(feature = "postgres", feature = "mysql", feature = "sqlite"))]
pub mod database;
pub mod env;
