//! The hostile-server suite: for every backend, a server on 127.0.0.1 that lies about
//! sizes, floods control frames, answers one byte a second or never answers. Each case
//! asserts a typed error naming field, source and key within its deadline, resident-memory
//! growth below a stated bound (measured in this process), no panic, and no canary secret
//! in errors, `Debug` or the logs captured at TRACE for every target.
//!
//! Alone in its binary, and every case holds [`common::serial`]: the peak resident memory
//! (`VmHWM`) is per process, so one case at a time.

mod aws;
mod azure;
#[allow(dead_code)] // shared helpers: not every case uses every one
mod common;
mod etcd;
mod gcp;
mod http;
mod kafka;
mod logs;
mod mqtt;
mod nats;
mod redis;
mod sql;
mod websocket;
