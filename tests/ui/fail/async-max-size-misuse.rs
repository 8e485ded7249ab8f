use component_model::AsyncAssign;

#[derive(AsyncAssign)]
struct Config {
    #[component(fetch_from = "env", max_size = "lots")]
    a: String,
    #[component(fetch_from = "env", max_size = 0)]
    b: String,
    #[component(max_size = "1KiB")]
    c: String,
}

fn main() {}
