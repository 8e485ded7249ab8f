use component_model::ComponentModel;

#[derive(ComponentModel, Default)]
struct Config {
    #[component]
    port: u16,
}

fn main() {}
