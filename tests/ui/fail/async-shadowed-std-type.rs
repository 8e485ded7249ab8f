use component_model::AsyncAssign;

mod m {
    // A local type named like a standard one: the derive takes `String` for the standard
    // type (no probe) and the bound says so, rather than misjudging it.
    #[derive(serde::Deserialize, Debug, Default)]
    pub struct String(pub std::string::String);
}
use m::String;

#[derive(AsyncAssign, Debug, Default)]
struct Cfg {
    #[component(fetch_from = "env")]
    token: String,
    // Its path makes the derive check it like any other type.
    #[component(fetch_from = "env")]
    other: m::String,
}

fn main() {}
