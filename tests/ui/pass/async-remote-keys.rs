use component_model::{AsyncAssign, SecretString};

#[derive(AsyncAssign, Debug)]
struct Remote {
    #[component(fetch_from = "consul", key = "app/port", dc = "eu-1")]
    port: u16,
    #[component(fetch_from = "consul", key = "${APP:-app}/name")]
    name: String,
    #[component(fetch_from = "vault", secret = "app/db", field = "password", mount = "kv", kv_version = 1)]
    db_password: SecretString,
    #[component(fetch_from = "vault", secret = "app/api", kv_version = "2")]
    api_key: SecretString,
    #[component(fetch_from = "api", url = "https://flags.internal/v1/flags", pointer = "/beta")]
    beta: bool,
    #[component(fetch_from = "billing_api", path = "/settings", pointer = "/limits/rps", timeout = "2s")]
    rps: u32,
}

fn main() {
    let _ = Remote::fetch_all_components();
}
