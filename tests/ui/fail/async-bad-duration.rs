use component_model::AsyncAssign;

#[derive(AsyncAssign)]
struct Config {
    #[component(fetch_from = "env", timeout = "5 parsecs")]
    port: u16,
}

fn main() {}
