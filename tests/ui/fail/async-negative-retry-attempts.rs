use component_model::AsyncAssign;

#[derive(AsyncAssign)]
struct Config {
    #[component(fetch_from = "env", retry_attempts = "-1")]
    port: u16,
}

fn main() {}
