use component_model::AsyncAssign;

#[derive(AsyncAssign)]
struct Config {
    #[component(fetch_from = "database:main", source = "analytics", query = "SELECT 1")]
    rows: u32,
}

fn main() {}
