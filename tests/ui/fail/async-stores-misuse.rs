use std::collections::HashMap;

use component_model::AsyncAssign;

// etcd and NATS KV: their rules, all reported in one compile.
#[derive(AsyncAssign, Default)]
struct App {
    #[component(fetch_from = "etcd", key = "/app/port", prefix = "/app/")]
    key_and_prefix: HashMap<String, String>,
    #[component(fetch_from = "etcd", key = "/app/port", bucket = "config")]
    etcd_bucket: u16,
    #[component(fetch_from = "nats_kv", key = "app.port")]
    no_bucket: u16,
    #[component(fetch_from = "nats_kv", bucket = "config", key = "app.port", topic = "app")]
    kv_topic: u16,
    #[component(stream_from = "etcd", key = "/app/port")]
    etcd_stream: u16,
    #[component(stream_from = "nats_kv", bucket = "config", key = "app.port")]
    kv_stream: u16,
}

fn main() {}
