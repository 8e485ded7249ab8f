use component_model::AsyncAssign;

struct NoDefault;

#[derive(AsyncAssign)]
struct Config {
    #[component(fetch_from = "env")]
    port: u16,
    handle: NoDefault,
}

fn main() {}
