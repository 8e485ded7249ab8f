// `assign_from`: the fetcher handed over chooses the field, by the source it serves and the
// type it fetches. Two fields of one source (`flags`, different types) and one of another
// (`env`): each call compiles and sets its field. A struct with two `String` fields of one
// source still compiles (only an `assign_from` that would have to choose between them is an
// error); a fetcher of any type (`DatabaseFetcher`) takes the type by turbofish there.
use component_model::resilience::AsyncRetry;
use component_model::{
    AssignFrom, AsyncAssign, ComponentFetcher, DatabaseFetcher, DbPool, EnvSource, FetchRequest,
    SourceFetcher, async_trait, serves_source,
};

/// Fetches a `bool` from the `flags` source.
struct Flag(bool);
serves_source!(Flag => "flags");

#[async_trait]
impl ComponentFetcher<bool> for Flag {
    type Error = std::io::Error;
    async fn fetch_component(&self) -> Result<bool, std::io::Error> {
        Ok(self.0)
    }
}

/// Fetches a `u32` from the `flags` source.
struct Limit(u32);
serves_source!(Limit => "flags");

#[async_trait]
impl ComponentFetcher<u32> for Limit {
    type Error = std::io::Error;
    async fn fetch_component(&self) -> Result<u32, std::io::Error> {
        Ok(self.0)
    }
}

#[derive(AsyncAssign, Default)]
struct AppConfig {
    #[component(fetch_from = "flags", key = "beta")]
    beta: bool,
    #[component(fetch_from = "flags", key = "limit")]
    limit: u32,
    #[component(fetch_from = "env")]
    port: u16,
}

/// Two `String` fields of `database` and one `u16`: compiles; `u16` by turbofish.
#[derive(AsyncAssign, Default)]
struct Urls {
    #[component(
        fetch_from = "database",
        query = "SELECT value FROM config WHERE key = 'primary'"
    )]
    primary_url: String,
    #[component(
        fetch_from = "database",
        query = "SELECT value FROM config WHERE key = 'replica'"
    )]
    replica_url: String,
    #[component(
        fetch_from = "database",
        query = "SELECT value FROM config WHERE key = 'pool'"
    )]
    pool_size: u16,
}

#[allow(dead_code)]
async fn with_database(pool: DbPool) -> Result<(), component_model::ComponentError> {
    let mut urls = Urls::default();
    urls.assign_from::<u16, _>(DatabaseFetcher::new(pool, "SELECT 8"))
        .await?;
    let _ = (&urls.primary_url, &urls.replica_url, urls.pool_size);
    Ok(())
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let mut config = AppConfig::default();
        config.assign_from(Flag(true)).await.expect("beta");
        config.assign_from(Limit(7)).await.expect("limit");
        let env = EnvSource::from_map([("PORT", "8080")]);
        config
            .assign_from(SourceFetcher::new(
                env,
                FetchRequest::for_key("env", "PORT"),
            ))
            .await
            .expect("port");
        assert!(config.beta);
        assert_eq!(config.limit, 7);
        assert_eq!(config.port, 8080);
        // A wrapped fetcher serves what it wraps.
        let retried = AsyncRetry::new(Limit(9), 2, std::time::Duration::from_millis(1));
        config.assign_from(retried).await.expect("limit again");
        assert_eq!(config.limit, 9);
    });
}
