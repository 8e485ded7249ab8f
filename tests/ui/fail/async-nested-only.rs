use component_model::AsyncAssign;

// A `nested_only` struct has no fetch methods: its parents fetch it.
#[derive(AsyncAssign, Debug, Default)]
#[component(nested_only)]
struct Db {
    #[component(fetch_from = "env")]
    host: String,
}

// Its `timeout` would bound a method it does not have.
#[derive(AsyncAssign, Debug, Default)]
#[component(nested_only, timeout = "5s")]
struct Cache {
    #[component(fetch_from = "env")]
    url: String,
}

#[derive(AsyncAssign, Debug, Default)]
struct App {
    #[component(nested)]
    db: Db,
    #[component(nested)]
    cache: Cache,
    // `nested_only` belongs on the sub-struct.
    #[component(nested, nested_only)]
    other: Db,
}

#[allow(dead_code)]
async fn use_it(sources: &component_model::Sources) {
    let _ = App::fetch_db_with(sources).await;
    let _ = Db::fetch_all_components_with(sources).await;
    let _ = Db::fetch_host_with(sources).await;
}

fn main() {}
