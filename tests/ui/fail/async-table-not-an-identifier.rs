use component_model::AsyncAssign;

#[derive(AsyncAssign)]
struct Config {
    #[component(fetch_from = "database", table = "config; DROP TABLE x", key = "k")]
    url: String,
}

fn main() {}
