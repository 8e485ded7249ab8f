use component_model::AsyncAssign;

#[derive(AsyncAssign)]
struct Config {
    #[component(fetch_from = "my source!")]
    port: u16,
}

fn main() {}
