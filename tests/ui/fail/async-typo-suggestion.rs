use component_model::AsyncAssign;

#[derive(AsyncAssign)]
struct Config {
    #[component(fetch_form = "env")]
    port: u16,
}

fn main() {}
