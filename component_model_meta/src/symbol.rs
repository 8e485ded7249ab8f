//! The names of every `#[component(...)]` key, in one place.

/// The attribute every derive of this crate reads.
pub const COMPONENT: &str = "component";

// Field keys understood by the sync derives.
pub const SKIP: &str = "skip";

// Field keys of `#[derive(AsyncAssign)]` (from the specification). A key the derive does
// not know, `name = <literal>`, is a parameter of the field's source: the backend's rules
// check it by name (`query`, `url`, `path`, `mount`, `kv_version`, `dc`, `table`, `topic`
// and any key a backend declares are such parameters).
pub const FETCH_FROM: &str = "fetch_from";
pub const KEY: &str = "key";
pub const SECRET: &str = "secret";
pub const SECRET_FILE: &str = "secret_file";
pub const FIELD: &str = "field";
pub const POINTER: &str = "pointer";
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
pub const TIMEOUT: &str = "timeout";
pub const MAX_SIZE: &str = "max_size";
pub const FETCHER: &str = "fetcher";
pub const NESTED: &str = "nested";
pub const KEY_PREFIX: &str = "key_prefix";
pub const WATCH: &str = "watch";
pub const WATCH_INTERVAL: &str = "watch_interval";
pub const CONNECT: &str = "connect";

// Container keys.
pub const CRATE: &str = "crate";
pub const ENV_PREFIX: &str = "env_prefix";
pub const NESTED_ONLY: &str = "nested_only";
pub const OVERRIDES: &str = "overrides";
pub const DEFAULTS: &str = "defaults";
pub const ENV: &str = "env";
pub const PROFILE_ENV: &str = "profile_env";
pub const TABLE: &str = "table";
pub const VALIDATE: &str = "validate";
pub const VALIDATE_WITH: &str = "validate_with";
pub const VALIDATE_WITH_ASYNC: &str = "validate_with_async";
pub const VALIDATE_CONCURRENCY: &str = "validate_concurrency";

/// Every key allowed on a field, for "unknown key" messages and suggestions.
pub const FIELD_KEYS: &[&str] = &[
    SKIP,
    FETCH_FROM,
    KEY,
    SECRET,
    SECRET_FILE,
    FIELD,
    POINTER,
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
    TIMEOUT,
    MAX_SIZE,
    FETCHER,
    NESTED,
    ENV_PREFIX,
    KEY_PREFIX,
    WATCH,
    WATCH_INTERVAL,
    OVERRIDES,
    DEFAULTS,
    ENV,
    VALIDATE,
    CONNECT,
];

/// Every key allowed on the struct itself.
pub const CONTAINER_KEYS: &[&str] = &[
    CRATE,
    TIMEOUT,
    ENV_PREFIX,
    WATCH,
    WATCH_INTERVAL,
    NESTED_ONLY,
    OVERRIDES,
    DEFAULTS,
    PROFILE_ENV,
    KEY_PREFIX,
    TABLE,
    VALIDATE,
    VALIDATE_WITH,
    VALIDATE_WITH_ASYNC,
    VALIDATE_CONCURRENCY,
];

/// Returns the known key closest to `unknown`, when one is close enough to be a typo.
pub fn suggest<'k>(unknown: &str, known: &[&'k str]) -> Option<&'k str> {
    suggest_within(unknown, known, |k| 2.max(k.len() / 4))
}

/// Like [`suggest`], but only a near miss (one edit, or a quarter of a long key): for a
/// name that may well be a source's own key rather than a misspelt derive key (`path` is
/// two edits from `watch`).
pub fn suggest_close<'k>(unknown: &str, known: &[&'k str]) -> Option<&'k str> {
    suggest_within(unknown, known, |k| 1.max(k.len() / 4))
}

/// Like [`suggest`], but a key of up to three letters only for one edit (`ns` is not a
/// misspelt `dc`): for a backend's keys, which are often short.
pub fn suggest_among_short<'k>(unknown: &str, known: &[&'k str]) -> Option<&'k str> {
    suggest_within(unknown, known, |k| {
        if k.chars().count() <= 3 {
            1
        } else {
            2.max(k.len() / 4)
        }
    })
}

fn suggest_within<'k>(
    unknown: &str,
    known: &[&'k str],
    limit: impl Fn(&str) -> usize,
) -> Option<&'k str> {
    known
        .iter()
        .filter(|k| **k != unknown)
        .map(|k| (strsim::levenshtein(unknown, k), *k))
        .filter(|(d, k)| *d <= limit(k))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}
