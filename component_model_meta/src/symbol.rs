//! The names of every `#[component(...)]` key, in one place.

/// The attribute every derive of this crate reads.
pub const COMPONENT: &str = "component";

// Field keys understood by the sync derives.
pub const SKIP: &str = "skip";

// Field keys of `#[derive(AsyncAssign)]` (from the specification).
pub const FETCH_FROM: &str = "fetch_from";
pub const KEY: &str = "key";
pub const QUERY: &str = "query";
pub const SECRET: &str = "secret";
pub const SECRET_FILE: &str = "secret_file";
pub const FIELD: &str = "field";
pub const URL: &str = "url";
pub const PATH: &str = "path";
pub const POINTER: &str = "pointer";
pub const MOUNT: &str = "mount";
pub const KV_VERSION: &str = "kv_version";
pub const DC: &str = "dc";
pub const TABLE: &str = "table";
pub const SOURCE: &str = "source";
pub const FALLBACK: &str = "fallback";
pub const TTL: &str = "ttl";
pub const CACHE_FOR: &str = "cache_for";
pub const RETRY_ATTEMPTS: &str = "retry_attempts";
pub const CIRCUIT_BREAKER: &str = "circuit_breaker";
pub const STALE_FOR: &str = "stale_for";
pub const RETRY_BACKOFF: &str = "retry_backoff";
pub const MAX_CONCURRENCY: &str = "max_concurrency";
pub const FALLBACK_TO: &str = "fallback_to";
pub const STREAM_FROM: &str = "stream_from";
pub const TOPIC: &str = "topic";
pub const TIMEOUT: &str = "timeout";
pub const MAX_SIZE: &str = "max_size";
pub const FETCHER: &str = "fetcher";
pub const NESTED: &str = "nested";
pub const KEY_PREFIX: &str = "key_prefix";
pub const WATCH: &str = "watch";
pub const WATCH_INTERVAL: &str = "watch_interval";

// Container keys.
pub const CRATE: &str = "crate";
pub const ENV_PREFIX: &str = "env_prefix";
pub const NESTED_ONLY: &str = "nested_only";

/// Every key allowed on a field, for "unknown key" messages and suggestions.
pub const FIELD_KEYS: &[&str] = &[
    SKIP,
    FETCH_FROM,
    KEY,
    QUERY,
    SECRET,
    SECRET_FILE,
    FIELD,
    URL,
    PATH,
    POINTER,
    MOUNT,
    KV_VERSION,
    DC,
    TABLE,
    SOURCE,
    FALLBACK,
    TTL,
    CACHE_FOR,
    RETRY_ATTEMPTS,
    RETRY_BACKOFF,
    STALE_FOR,
    MAX_CONCURRENCY,
    CIRCUIT_BREAKER,
    FALLBACK_TO,
    STREAM_FROM,
    TOPIC,
    TIMEOUT,
    MAX_SIZE,
    FETCHER,
    NESTED,
    ENV_PREFIX,
    KEY_PREFIX,
    WATCH,
    WATCH_INTERVAL,
];

/// Every key allowed on the struct itself.
pub const CONTAINER_KEYS: &[&str] = &[
    CRATE,
    TIMEOUT,
    ENV_PREFIX,
    WATCH,
    WATCH_INTERVAL,
    NESTED_ONLY,
];

/// Returns the known key closest to `unknown`, when one is close enough to be a typo.
pub fn suggest(unknown: &str, known: &[&'static str]) -> Option<&'static str> {
    known
        .iter()
        .map(|k| (edit_distance(unknown, k), *k))
        .filter(|(d, k)| *d <= 2.max(k.len() / 4))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}
