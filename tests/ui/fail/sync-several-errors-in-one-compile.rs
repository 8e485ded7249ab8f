use component_model::ComponentModel;

#[derive(ComponentModel, Default)]
struct Config {
    #[component(colour = "red")]
    a: u16,
    #[component(skip, skip)]
    b: String,
    #[component(skip = 1)]
    c: bool,
}

fn main() {}
