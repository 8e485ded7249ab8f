use component_model::ComponentModel;

#[derive(ComponentModel)]
enum Mode {
    Fast,
    Slow,
}

fn main() {}
