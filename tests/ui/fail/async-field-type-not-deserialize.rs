use component_model::AsyncAssign;

struct Opaque;

#[derive(AsyncAssign)]
struct Config {
    #[component(fetch_from = "env")]
    value: Opaque,
}

fn main() {}
