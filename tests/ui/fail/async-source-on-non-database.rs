use component_model::AsyncAssign;

#[derive(AsyncAssign)]
struct Config {
    #[component(fetch_from = "env", source = "analytics")]
    port: u16,
}

fn main() {}
