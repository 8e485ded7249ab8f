use component_model::AsyncAssign;

#[derive(AsyncAssign)]
struct Config {
    #[component(key = "app/port")]
    port: u16,
}

fn main() {}
