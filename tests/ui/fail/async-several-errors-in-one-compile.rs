use component_model::AsyncAssign;

#[derive(AsyncAssign)]
struct Config {
    #[component(fetch_from = "consul")]
    port: u16,
    #[component(fetch_from = "env", timeout = "5 parsecs")]
    host: String,
    #[component(fetch_from = "env", retry_attempts = "-1")]
    workers: u8,
    #[component(fetch_from = "env", unknown_thing = "x")]
    level: String,
}

fn main() {}
