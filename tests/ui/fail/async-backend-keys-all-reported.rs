use component_model::AsyncAssign;

// Every mistake about a source's own keys, in one compile: unknown keys on two fields
// (one of them twice), a required key missing, and a source's key on a field that names
// no source.
#[derive(AsyncAssign)]
struct Config {
    #[component(fetch_from = "consul", bucket = "cfg", prefix = "app/")]
    a: u16,
    #[component(fetch_from = "file", topic = "t")]
    b: String,
    #[component(fetch_from = "redis", key = "k", mount = "kv")]
    c: String,
    #[component(bucket = "cfg")]
    d: String,
}

fn main() {}
