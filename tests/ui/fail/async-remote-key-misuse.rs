use component_model::AsyncAssign;

#[derive(AsyncAssign, Debug)]
struct Remote {
    #[component(fetch_from = "vault", secret = "app/db", kv_version = 3)]
    a: String,
    #[component(fetch_from = "vault", secret = "app/db", dc = "eu-1")]
    b: String,
    #[component(fetch_from = "consul", key = "app/port", kv_version = 2)]
    c: u16,
    #[component(fetch_from = "consul", key = "app/port", mount = "kv")]
    d: u16,
}

fn main() {}
