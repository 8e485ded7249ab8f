use component_model::{AsyncAssign, SecretString};

#[derive(AsyncAssign, Default)]
#[component(nested_only)]
struct Database {
    #[component(fetch_from = "env")]
    host: String,
    #[component(fetch_from = "env", key = "{host}_PORT")]
    port: Option<u16>,
}

// References in every place that names one; a secret in `connect`; literal braces.
#[derive(AsyncAssign, Default)]
struct App {
    #[component(fetch_from = "env")]
    region: String,
    #[component(fetch_from = "env")]
    shard: Option<u8>,
    #[component(fetch_from = "vault", secret = "{region}/db")]
    dsn: SecretString,
    #[component(fetch_from = "consul", key = "{region}/{shard}/pool")]
    pool: u32,
    #[component(fetch_from = "database", connect = "{dsn}", query = "select v from t where k = $1", key = "{region}")]
    setting: String,
    #[component(nested)]
    database: Database,
    #[component(fetch_from = "consul", key = "{{literal}}/{database.host}/{database.port}")]
    literal: String,
    #[component(fetch_from = "redis", key = "flags", field = "{region}")]
    flag: bool,
}

fn main() {}
