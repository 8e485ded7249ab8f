use component_model::AsyncAssign;

#[derive(AsyncAssign)]
struct Config {
    #[component(fetcher = 42)]
    port: u16,
}

fn main() {}
