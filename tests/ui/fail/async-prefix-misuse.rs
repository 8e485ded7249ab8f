use std::collections::HashMap;

use component_model::AsyncAssign;

// Subtree reads: where `prefix` and `max_keys` apply, all reported in one compile.
#[derive(AsyncAssign, Default)]
struct App {
    #[component(fetch_from = "consul", key = "app/port", prefix = "app/")]
    key_and_prefix: HashMap<String, String>,
    #[component(fetch_from = "database", prefix = "ui.")]
    no_table: HashMap<String, String>,
    #[component(fetch_from = "vault", secret = "app/api", prefix = "app/")]
    vault_prefix: HashMap<String, String>,
    #[component(fetch_from = "env", prefix = "APP_")]
    env_prefix: HashMap<String, String>,
}

fn main() {}
