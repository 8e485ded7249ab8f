use component_model::AsyncAssign;

#[derive(AsyncAssign, Debug, Default)]
struct Db {
    #[component(fetch_from = "env")]
    host: String,
}

#[derive(AsyncAssign, Debug, Default)]
struct Config {
    // `nested` names no source and no key: its struct's fields do.
    #[component(nested, fetch_from = "env")]
    a: Db,
    #[component(nested, key = "db/host", fallback = "x")]
    b: Db,
    // Prefixes only place a nested struct.
    #[component(fetch_from = "env", env_prefix = "X_")]
    c: String,
    #[component(fetch_from = "consul", key = "c", key_prefix = "x/")]
    d: String,
    // A skipped field is never fetched.
    #[component(nested, skip)]
    e: Db,
    #[component(nested, env_prefix = "no-dashes")]
    f: Db,
}

#[derive(AsyncAssign, Debug, Default)]
struct Recursive {
    #[component(fetch_from = "env")]
    name: String,
    #[component(nested)]
    next: Option<Box<Recursive>>,
}

fn main() {}
