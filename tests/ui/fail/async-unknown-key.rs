use component_model::AsyncAssign;

#[derive(AsyncAssign)]
struct Config {
    #[component(fetch_from = "env", colour = "blue")]
    port: u16,
}

fn main() {}
