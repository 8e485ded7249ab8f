use component_model::AsyncAssign;

// Four mistakes against the backends' own rules: all four are reported in one compile.
#[derive(AsyncAssign)]
struct Config {
    #[component(fetch_from = "consul", source = "x")]
    a: u16,
    #[component(fetch_from = "vault", key = "k")]
    b: String,
}

fn main() {}
