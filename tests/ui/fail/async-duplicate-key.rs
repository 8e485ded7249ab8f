use component_model::AsyncAssign;

#[derive(AsyncAssign)]
struct Config {
    #[component(fetch_from = "env", key = "A", key = "B")]
    port: u16,
}

fn main() {}
