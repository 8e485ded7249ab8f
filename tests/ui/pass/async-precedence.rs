use component_model::{AsyncAssign, Sources};

// The seed's motivating example, verbatim: fields that name no key read their source's
// convention key (a database's `config` table by the field's path, a Redis key).
#[derive(Debug, Default, serde::Deserialize)]
struct CachedSettings {
    #[allow(dead_code)]
    theme: String,
}

#[derive(AsyncAssign)]
struct AppConfig {
  #[component(fetch_from = "database")]
  database_url: String,
  
  #[component(fetch_from = "consul", key = "app/port")]
  port: u16,
  
  #[component(fetch_from = "vault", secret = "app/api-key")]
  api_key: String,
  
  #[component(fetch_from = "redis", ttl = "3600")]
  cached_config: CachedSettings,
}

// Precedence sources on the struct and on fields.
#[derive(AsyncAssign, Debug, Default)]
#[component(
    env_prefix = "APP_",
    overrides = ["args", "env"],
    defaults = ["file@config/{@profile}.toml", "file@config/default.toml"],
    profile_env = "APP_PROFILE",
    key_prefix = "app/{@profile}/",
    table = "settings"
)]
struct App {
    port: u16,
    #[component(env = "LISTEN_HOST")]
    host: String,
    #[component(fetch_from = "consul", fallback_to = "env")]
    workers: u32,
    #[component(overrides = [], defaults = ["database:analytics@settings"])]
    plan: String,
    #[component(overrides = [], defaults = [])]
    untouched: u8,
    #[component(secret, defaults = ["vault@app/{@profile}/secrets"])]
    password: String,
}

fn main() {
    let _ = AppConfig::fetch_all_components_with(&Sources::new());
    let _ = App::fetch_all_components_with(&Sources::new());
}
