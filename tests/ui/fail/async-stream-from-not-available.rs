use component_model::AsyncAssign;

#[derive(AsyncAssign)]
struct Config {
    #[component(stream_from = "kafka", topic = "config-updates")]
    live: String,
}

fn main() {}
