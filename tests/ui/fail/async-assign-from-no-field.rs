// `assign_from` with a fetcher of a source no field reads, and with a fetcher that does
// not say which source it serves.
use component_model::{AssignFrom, AsyncAssign, ComponentFetcher, async_trait, serves_source};

struct Flag;
serves_source!(Flag => "flags");

#[async_trait]
impl ComponentFetcher<bool> for Flag {
    type Error = std::io::Error;
    async fn fetch_component(&self) -> Result<bool, std::io::Error> {
        Ok(true)
    }
}

struct Anonymous;

#[async_trait]
impl ComponentFetcher<bool> for Anonymous {
    type Error = std::io::Error;
    async fn fetch_component(&self) -> Result<bool, std::io::Error> {
        Ok(true)
    }
}

#[derive(AsyncAssign, Default)]
struct AppConfig {
    #[component(fetch_from = "env")]
    beta: bool,
}

async fn run() {
    let mut config = AppConfig::default();
    let _ = config.assign_from(Flag).await;
    let _ = config.assign_from(Anonymous).await;
}

fn main() {
    let _ = run();
}
