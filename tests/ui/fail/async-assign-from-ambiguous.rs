// `assign_from` with a fetcher whose source and type fit two fields: an error at the call
// naming both fields and their `fetch_<field>` methods, with a note at the second field.
// The struct itself compiles; so does an `assign_from` of a type only one field has.
use component_model::{AssignFrom, AsyncAssign, DatabaseFetcher, DbPool};

#[derive(AsyncAssign, Default)]
struct AppConfig {
    #[component(
        fetch_from = "database",
        query = "SELECT value FROM config WHERE key = 'primary'"
    )]
    database_url: String,
    #[component(
        fetch_from = "database:replica",
        query = "SELECT value FROM config WHERE key = 'replica'"
    )]
    replica_url: String,
    #[component(
        fetch_from = "database",
        query = "SELECT value FROM config WHERE key = 'pool'"
    )]
    pool_size: u16,
}

async fn run(pool: DbPool) {
    let mut config = AppConfig::default();
    let _ = config
        .assign_from::<String, _>(DatabaseFetcher::new(pool.clone(), "SELECT 'x'"))
        .await;
    let _ = config
        .assign_from::<u16, _>(DatabaseFetcher::new(pool, "SELECT 8"))
        .await;
}

fn main() {
    let _ = run;
}
