use component_model::Assign;

#[derive(Assign)]
struct Nothing;

fn main() {}
