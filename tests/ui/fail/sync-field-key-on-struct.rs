use component_model::ComponentModel;

#[derive(ComponentModel, Default)]
#[component(skip)]
struct Config {
    port: u16,
}

fn main() {}
