use component_model::ComponentModel;

#[derive(ComponentModel, Default)]
struct Config {
    #[component(frobnicate = "yes")]
    port: u16,
}

fn main() {}
