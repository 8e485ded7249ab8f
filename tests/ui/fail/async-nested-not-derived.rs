use component_model::AsyncAssign;

/// Derives `Deserialize`, not `AsyncAssign`.
#[derive(serde::Deserialize, Debug, Default)]
struct Db {
    host: String,
}

#[derive(AsyncAssign, Debug, Default)]
struct Config {
    #[component(nested)]
    database: Db,
    #[component(nested)]
    replica: Option<Db>,
}

fn main() {}
