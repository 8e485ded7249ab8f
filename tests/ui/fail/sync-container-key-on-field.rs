use component_model::ComponentModel;

#[derive(ComponentModel, Default)]
struct Config {
    #[component(env_prefix = "APP_")]
    port: u16,
}

fn main() {}
