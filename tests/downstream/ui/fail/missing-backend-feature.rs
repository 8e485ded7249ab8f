use component_model::AsyncAssign;

// This crate depends on `component_model` with feature `async` only: every built-in
// backend's feature is off, and each names the feature and the crate to add it to.
#[derive(AsyncAssign)]
struct Config {
    #[component(fetch_from = "redis", key = "app:port")]
    port: u16,
    #[component(fetch_from = "consul", key = "app/host")]
    host: String,
    #[component(fetch_from = "database", query = "SELECT 1")]
    one: i32,
}

fn main() {}
