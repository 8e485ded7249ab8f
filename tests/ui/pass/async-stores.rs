use std::collections::HashMap;

use component_model::AsyncAssign;

// etcd and NATS KV fields as the README shows them.
#[derive(AsyncAssign, Debug)]
#[allow(dead_code)]
struct App {
    #[component(fetch_from = "etcd", key = "/app/port", fallback = "8080")]
    port: u16,
    #[component(fetch_from = "etcd", prefix = "/app/features/", max_keys = 100)]
    features: HashMap<String, bool>,
    #[component(fetch_from = "nats_kv", bucket = "config", key = "app.workers", watch)]
    workers: u8,
    #[component(fetch_from = "nats_kv", bucket = "config", key = "app.region")]
    region: Option<String>,
}

fn main() {}
