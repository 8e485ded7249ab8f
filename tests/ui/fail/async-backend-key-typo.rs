use component_model::AsyncAssign;

// A key the field's backend does not read: the error names the backend's keys and
// suggests the closest one (or the derive's own key when that is the near miss).
#[derive(AsyncAssign)]
struct Config {
    #[component(fetch_from = "consul", key = "app/port", dcc = "eu1")]
    port: u16,
    #[component(fetch_from = "vault", secret = "app/db", mont = "kv")]
    password: String,
    #[component(fetch_from = "consul", key = "app/host", retry_atempts = 2)]
    host: String,
}

fn main() {}
