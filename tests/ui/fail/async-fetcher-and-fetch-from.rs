use component_model::AsyncAssign;

async fn load() -> Result<u16, std::io::Error> {
    Ok(1)
}

#[derive(AsyncAssign)]
struct Config {
    #[component(fetch_from = "env", fetcher = load)]
    port: u16,
}

fn main() {}
