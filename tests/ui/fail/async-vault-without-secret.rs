use component_model::AsyncAssign;

#[derive(AsyncAssign)]
struct Config {
    #[component(fetch_from = "vault", field = "password")]
    password: String,
}

fn main() {}
