//! Integration tests of the component_model workspace, one module per capability.

mod args_dotenv;
mod async_assign;
mod async_errors;
mod async_fetch;
mod cache;
mod consul;
mod conversion;
mod database;
mod engine_regressions;
mod file;
mod fleet;
mod http;
mod layers;
mod live;
mod metrics;
mod nested;
mod openbao;
mod redis;
mod report;
mod secret_files;
mod sync_model;
mod tls;
mod vault;
mod vault_auth;
mod vocabulary;
mod watch_values;
