use component_model::AsyncAssign;

#[derive(AsyncAssign)]
struct Config {
    #[component(fetch_from = "consul", key = "app/port")]
    port: u16,
    #[component(fetch_from = "vault", secret = "app/api-key")]
    api_key: String,
}

fn main() {}
