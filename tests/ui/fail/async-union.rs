use component_model::AsyncAssign;

#[derive(AsyncAssign)]
union Config {
    a: u32,
}

fn main() {}
