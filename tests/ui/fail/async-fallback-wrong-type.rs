use component_model::AsyncAssign;

#[derive(AsyncAssign)]
struct Config {
    #[component(fetch_from = "env", fallback = "eighty")]
    port: u16,
}

fn main() {}
