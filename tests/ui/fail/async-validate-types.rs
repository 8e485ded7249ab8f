use component_model::AsyncAssign;

// A rule that does not apply to its field's type is an error at the rule, with the
// struct's other errors.
#[derive(AsyncAssign, Default)]
struct App {
    #[component(fetch_from = "env", validate(range(min = 1, max = 10)))]
    name: String,
    #[component(fetch_from = "env", validate(pattern = "^[0-9]+$"))]
    port: u16,
    #[component(fetch_from = "env", validate(len(max = 3)))]
    count: u32,
    #[component(fetch_from = "env", validate(range(min = 0.5)))]
    workers: u32,
    #[component(fetch_from = "env", unknown_key = 1)]
    other_error: u8,
}

fn main() {}
