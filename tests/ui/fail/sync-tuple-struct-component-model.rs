use component_model::ComponentModel;

#[derive(ComponentModel)]
struct Pair(u8, String);

fn main() {}
