use component_model::AsyncAssign;

#[derive(AsyncAssign)]
enum Config {
    A,
}

fn main() {}
