use component_model::{AsyncAssign, ComponentFetcher, async_trait};

struct Flags;
#[async_trait]
impl ComponentFetcher<bool> for Flags {
    type Error = std::io::Error;
    async fn fetch_component(&self) -> Result<bool, Self::Error> {
        Ok(true)
    }
}

fn sync_port() -> Result<u16, std::io::Error> {
    Ok(1)
}

#[derive(AsyncAssign, Debug)]
#[component(timeout = "10s", env_prefix = "APP_")]
struct AllKeys {
    #[component(fetch_from = "env", key = "HOST_${REGION:-eu}", fallback = "localhost", secret)]
    host: String,
    #[component(fetch_from = "remote", path = "/settings", pointer = "/port", timeout = "250ms", retry_attempts = 3, fallback_to = "local")]
    port: u16,
    #[component(fetch_from = "vaultish", field = "user", url = "https://x", mount = "secret")]
    user: String,
    #[component(fetcher = Flags)]
    beta: bool,
    #[component(fetcher = sync_port)]
    admin_port: u16,
    #[component(skip)]
    ignored: Vec<u8>,
    plain: Option<String>,
}

fn main() {
    let _ = AllKeys::fetch_all_components();
    let _ = AllKeys::fetch_port();
}
