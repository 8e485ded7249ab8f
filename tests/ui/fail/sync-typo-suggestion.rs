use component_model::ComponentModel;

#[derive(ComponentModel, Default)]
struct Config {
    #[component(skp)]
    port: u16,
}

fn main() {}
