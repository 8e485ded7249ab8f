//! Misuse of the cache, circuit breaker and concurrency keys: every error in one compile.
use component_model::AsyncAssign;

#[derive(AsyncAssign, Default)]
struct Config {
    #[component(cache_for = "1h")]
    no_source: String,
    #[component(fetch_from = "env", cache_for = "0s")]
    zero: String,
    #[component(fetch_from = "env", ttl = "60", cache_for = "1m")]
    both: String,
    #[component(fetch_from = "env", stale_for = "10m")]
    stale_without_cache: String,
    #[component(fetch_from = "env", max_concurrency = 0)]
    no_permits: String,
    #[component(fetch_from = "env", retry_backoff = "100ms")]
    backoff_without_retries: String,
    #[component(fetcher = async { Ok::<String, std::io::Error>(String::new()) }, circuit_breaker = true)]
    typed: String,
    #[component(fetch_from = "env", circuit_breaker = "maybe")]
    not_a_bool: String,
    #[component(fetch_from = "env", cache_for = "soon")]
    not_a_duration: String,
}

fn main() {}
