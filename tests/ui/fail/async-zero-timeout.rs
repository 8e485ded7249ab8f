use component_model::AsyncAssign;

#[derive(AsyncAssign)]
#[component(timeout = "0s")]
struct Config {
    #[component(fetch_from = "env")]
    port: u16,
}

fn main() {}
