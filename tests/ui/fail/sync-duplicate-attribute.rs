use component_model::ComponentModel;

#[derive(ComponentModel, Default)]
struct Config {
    #[component(skip, skip)]
    port: u16,
}

fn main() {}
