use component_model::AsyncAssign;

// A nests B and B nests A: rustc's own "infinite size" error, no overflow, no hang.
#[derive(AsyncAssign, Debug, Default)]
struct A {
    #[component(fetch_from = "env")]
    name: String,
    #[component(nested)]
    b: B,
}

#[derive(AsyncAssign, Debug, Default)]
struct B {
    #[component(nested)]
    a: Option<A>,
}

fn main() {}
