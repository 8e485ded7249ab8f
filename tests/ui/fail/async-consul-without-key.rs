use component_model::AsyncAssign;

#[derive(AsyncAssign)]
struct Config {
    #[component(fetch_from = "consul")]
    port: u16,
}

fn main() {}
