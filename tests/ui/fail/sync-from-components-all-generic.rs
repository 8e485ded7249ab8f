use component_model::FromComponents;

#[derive(FromComponents)]
struct Wrapper<T> {
    inner: T,
}

fn main() {}
