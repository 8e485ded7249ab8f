use component_model::AsyncAssign;

#[derive(AsyncAssign)]
struct Secrets {
    // `secret_file` names the whole source: another source or key is an error, each spanned.
    #[component(secret_file = "/run/secrets/api_key", fetch_from = "env")]
    api_key: String,
    #[component(secret_file = "/run/secrets/token", key = "TOKEN")]
    token: String,
    #[component(secret_file = "/run/secrets/db", secret = "app/db")]
    db: String,
    // A backend key the file source does not read.
    #[component(secret_file = "/run/secrets/port", query = "SELECT 1")]
    port: u16,
    // `fetch_from = "secret_file"` needs the file as `key`.
    #[component(fetch_from = "secret_file")]
    other: String,
}

fn main() {}
