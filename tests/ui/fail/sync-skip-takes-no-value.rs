use component_model::ComponentModel;

#[derive(ComponentModel, Default)]
struct Config {
    #[component(skip = true)]
    port: u16,
}

fn main() {}
