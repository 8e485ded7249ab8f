use component_model::AsyncAssign;

#[derive(AsyncAssign)]
struct Config {
    #[component(fetch_from = "env", cache_for = "1h")]
    port: u16,
}

fn main() {}
