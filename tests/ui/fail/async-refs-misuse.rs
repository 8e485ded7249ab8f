use component_model::{AsyncAssign, SecretString};

// Every misuse of `{field}` references, reported in one compile.
#[derive(AsyncAssign, Default)]
struct App {
    #[component(fetch_from = "env")]
    region: String,
    #[component(fetch_from = "vault", secret = "app/db")]
    dsn: SecretString,
    #[component(fetch_from = "env")]
    hosts: Vec<String>,
    #[component(fetch_from = "consul", key = "{regoin}/pool")]
    unknown: u32,
    #[component(fetch_from = "consul", key = "{b}/a")]
    a: String,
    #[component(fetch_from = "consul", key = "{a}/b")]
    b: String,
    #[component(fetch_from = "consul", key = "{me}")]
    me: String,
    #[component(fetch_from = "consul", key = "db/{dsn}")]
    secret_in_key: String,
    #[component(fetch_from = "consul", key = "{hosts}/x")]
    not_text: String,
    #[component(fetch_from = "consul", key = "json{ \"a\": 1 }")]
    lone_brace: String,
    #[component(fetch_from = "consul", key = "a}b")]
    lone_closing: String,
    #[component(fetch_from = "consul", key = "{region.code}")]
    not_nested: String,
    #[component(fetch_from = "database", connect = "postgres://localhost/db", query = "select 1")]
    connect_without_reference: String,
    #[component(skip)]
    skipped: String,
    #[component(fetch_from = "consul", key = "{skipped}")]
    reads_skipped: String,
}

fn main() {}
