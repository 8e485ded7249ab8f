use component_model::Assign;

#[derive(Assign)]
union Bits {
    a: u32,
    b: f32,
}

fn main() {}
