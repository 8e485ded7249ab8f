use component_model::AsyncAssign;

// Every misuse of precedence sources and profiles, reported in one compile.
#[derive(AsyncAssign, Default)]
#[component(
    overrides = ["env", "file@", "@nothing"],
    defaults = ["file@config/{@env}.toml", "file@config/{@profile.toml"],
    profile_env = "APP PROFILE",
    table = "config; drop table x",
    key_prefix = "app/{@region}/"
)]
struct App {
    port: u16,
    #[component(env = "PORT")]
    listen_port: u16,
    #[component(fetch_from = "env", key = "HOST", env = "HOST_NAME")]
    host: String,
    #[component(skip, overrides = ["env"])]
    skipped: u8,
    #[component(nested, defaults = [])]
    inner: Inner,
    #[component(overrides = "env")]
    not_a_list: u8,
    #[component(defaults = [1])]
    not_a_string: u8,
    #[component(fetch_from = "consul", key = "app/{@zone}/port")]
    zoned: u16,
    // No source of its own: read from the precedence sources by convention, so keys of a
    // source and layers of one have nothing to apply to.
    #[component(fallback_to = "consul", cache_for = "1m", timeout = "1s")]
    orphan: u16,
}

#[derive(AsyncAssign, Default)]
#[component(nested_only)]
struct Inner {
    #[component(fetch_from = "env")]
    a: u8,
}

fn main() {}
