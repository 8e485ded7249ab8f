use component_model::AsyncAssign;

// The test package enables every backend feature but `redis`.
#[derive(AsyncAssign)]
struct Config {
    #[component(fetch_from = "redis", key = "app:port")]
    port: u16,
}

fn main() {}
