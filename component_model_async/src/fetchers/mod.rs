//! Built-in backends, one module per backend, each behind its own cargo feature.
//!
//! | `fetch_from` | module | feature |
//! |---|---|---|
//! | `env` | [`env`](mod@env) | always on |
//! | `database`, `database:<name>`, `postgres`, `mysql`, `sqlite` | `database` | `postgres`, `mysql`, `sqlite` |
//! | `api`, `http`, or a registered [`HttpSource`](crate::HttpSource) name | [`http`](mod@http) | `http` |
//! | `consul` | [`consul`](mod@consul) | `consul` |
//! | `vault` | [`vault`](mod@vault) | `vault` |
//! | `redis` | `redis` | `redis` |

#[cfg(feature = "consul")]
pub mod consul;
#[cfg(any(feature = "postgres", feature = "mysql", feature = "sqlite"))]
pub mod database;
pub mod env;
#[cfg(feature = "http")]
pub mod http;
#[cfg(feature = "redis")]
pub mod redis;
#[cfg(any(feature = "http", feature = "consul", feature = "vault"))]
pub mod transport;
#[cfg(feature = "vault")]
pub mod vault;
