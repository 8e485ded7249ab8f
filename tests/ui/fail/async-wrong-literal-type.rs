use component_model::AsyncAssign;

#[derive(AsyncAssign)]
struct Config {
    #[component(fetch_from = "env", key = 42)]
    port: u16,
}

fn main() {}
