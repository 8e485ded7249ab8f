use component_model::AsyncAssign;

#[derive(AsyncAssign)]
#[component(env_prefix = "APP-")]
struct Config {
    #[component(fetch_from = "env")]
    port: u16,
}

fn main() {}
