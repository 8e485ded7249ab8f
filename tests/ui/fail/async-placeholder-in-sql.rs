use component_model::AsyncAssign;

#[derive(AsyncAssign)]
struct Config {
    #[component(fetch_from = "database", query = "SELECT v FROM ${TABLE}")]
    url: String,
}

fn main() {}
