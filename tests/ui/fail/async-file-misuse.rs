//! Misuse of the `file` source: every error in one compile.
use component_model::AsyncAssign;

#[derive(AsyncAssign, Default)]
struct Config {
    #[component(fetch_from = "file", pointer = "/port")]
    no_path: u16,
    #[component(fetch_from = "file", path = "app.toml", key = "port")]
    key_on_a_file: u16,
    #[component(fetch_from = "file", path = "app.toml", query = "SELECT 1")]
    query_on_a_file: u16,
}

fn main() {}
