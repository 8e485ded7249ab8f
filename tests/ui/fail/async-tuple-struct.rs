use component_model::AsyncAssign;

#[derive(AsyncAssign)]
struct Config(#[component(fetch_from = "env")] u16);

fn main() {}
