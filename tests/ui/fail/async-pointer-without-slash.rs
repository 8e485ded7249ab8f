use component_model::AsyncAssign;

#[derive(AsyncAssign)]
struct Config {
    #[component(fetch_from = "env", pointer = "settings.port")]
    port: u16,
}

fn main() {}
