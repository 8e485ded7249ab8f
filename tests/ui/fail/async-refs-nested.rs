use component_model::{AsyncAssign, SecretString};

#[derive(AsyncAssign, Default)]
#[component(nested_only)]
struct Database {
    #[component(fetch_from = "env")]
    host: String,
    #[component(fetch_from = "vault", secret = "app/db")]
    password: SecretString,
}

// A reference into a `nested` struct is checked against that struct's fields at compile
// time (a generated `const` assertion: its message has no suggestion).
#[derive(AsyncAssign, Default)]
struct App {
    #[component(nested)]
    database: Database,
    #[component(fetch_from = "consul", key = "{database.hots}/pool")]
    misspelt: u32,
    #[component(fetch_from = "consul", key = "{database.password}/pool")]
    secret: u32,
    #[component(fetch_from = "consul", key = "{database}/pool")]
    whole: u32,
}

fn main() {}
