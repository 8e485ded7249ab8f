//! Misuse of `watch` and `watch_interval`: every error in one compile.
use component_model::AsyncAssign;

#[derive(AsyncAssign, Default)]
#[component(watch_interval = "0s")]
struct Config {
    #[component(watch)]
    no_source: String,
    #[component(watch_interval = "1m")]
    interval_without_source: String,
    #[component(fetch_from = "env", watch_interval = "0ms")]
    zero: String,
    #[component(fetch_from = "env", watch = "sometimes")]
    not_a_bool: String,
    #[component(fetch_from = "env", watch_interval = "often")]
    not_a_duration: String,
}

fn main() {}
