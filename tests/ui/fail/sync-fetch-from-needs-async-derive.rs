use component_model::ComponentModel;

#[derive(ComponentModel, Default)]
struct Config {
    #[component(fetch_from = "env")]
    port: u16,
}

fn main() {}
