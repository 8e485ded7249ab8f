//! `nested` on plain, optional and generic sub-structs, with prefixes; every generated
//! method exists with the documented signature.
use component_model::{AsyncAssign, ComponentError, ComponentSource, Partial, Sources};

#[derive(AsyncAssign, Debug, Default)]
#[component(env_prefix = "DB_")]
struct Db {
    #[component(fetch_from = "env")]
    host: String,
    #[component(fetch_from = "env", fallback = "5432")]
    port: u16,
}

#[derive(AsyncAssign, Debug, Default)]
struct Pool<T: serde::de::DeserializeOwned + Send + Default + 'static> {
    #[component(fetch_from = "env")]
    size: T,
}

/// Fetched only as part of `App`: no fetch methods of its own.
#[derive(AsyncAssign, Debug, Default)]
#[component(nested_only, watch)]
struct Tls {
    #[component(fetch_from = "env")]
    cert: String,
}

#[derive(AsyncAssign, Debug, Default)]
#[component(env_prefix = "APP_", timeout = "5s")]
struct App {
    #[component(nested)]
    tls: Tls,
    #[component(nested)]
    database: Db,
    #[component(nested, env_prefix = "RO_", key_prefix = "replica/")]
    replica: Option<Db>,
    #[component(nested)]
    pool: Pool<u32>,
    #[component(fetch_from = "env")]
    name: String,
    untouched: u8,
}

#[allow(dead_code)]
async fn all(sources: &Sources) {
    let _: Result<App, Vec<ComponentError>> = App::fetch_all_components_with(sources).await;
    let _: Result<Partial<App>, Vec<ComponentError>> =
        App::fetch_available_components_with(sources).await;
    let _: Result<App, ComponentError> = App::fetch_with_resilience_with(sources).await;
    let _: Result<Db, ComponentError> = App::fetch_database_with(sources).await;
    let _: Result<Option<Db>, ComponentError> = App::fetch_replica_with(sources).await;
    let _: Result<String, ComponentError> = App::fetch_name_with(sources).await;
    let _: Result<Tls, ComponentError> = App::fetch_tls_with(sources).await;
    let _: Vec<ComponentSource> = App::component_sources_with(sources);
    assert_eq!(App::component_sources().len(), 1);
}

fn main() {}
