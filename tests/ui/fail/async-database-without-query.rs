use component_model::AsyncAssign;

#[derive(AsyncAssign)]
struct Config {
    #[component(fetch_from = "database")]
    url: String,
}

fn main() {}
