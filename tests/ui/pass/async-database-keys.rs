use component_model::AsyncAssign;

#[derive(AsyncAssign, Debug)]
struct Config {
    #[component(fetch_from = "database", query = "SELECT value FROM config WHERE key = 'db_url'")]
    database_url: String,
    #[component(fetch_from = "database", table = "config", key = "port")]
    port: u16,
    #[component(fetch_from = "database", query = "SELECT v FROM t WHERE k = $1", key = "${REGION:-eu}")]
    regional: String,
    #[component(fetch_from = "database:analytics", table = "public.limits", key = "gold")]
    gold: u32,
    #[component(fetch_from = "database", source = "analytics", table = "limits", key = "silver")]
    silver: u32,
}

fn main() {
    let _ = Config::fetch_all_components();
}
