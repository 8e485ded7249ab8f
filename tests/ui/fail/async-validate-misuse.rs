use component_model::{AsyncAssign, Sources, Violations};

fn check(_: &u16) -> Result<(), String> {
    Ok(())
}

fn whole(_: &App, _: &Sources) -> Result<(), Violations> {
    Ok(())
}

#[derive(AsyncAssign, Default)]
#[component(validate_with = whole)]
struct Inner {
    #[component(fetch_from = "env")]
    size: u16,
}

// Every misuse of validation rules, reported in one compile.
#[derive(AsyncAssign, Default)]
#[component(validate(range(min = 1)))]
#[component(validate_concurrency = 0)]
struct App {
    #[component(fetch_from = "env", validate(ranges(min = 1)))]
    unknown_rule: u16,
    #[component(fetch_from = "env", validate(pattern = "^[a-z"))]
    malformed_pattern: String,
    #[component(fetch_from = "env", validate(range(min = 10, max = 1)))]
    empty_range: u16,
    #[component(fetch_from = "env", validate(range()))]
    no_bounds: u16,
    #[component(fetch_from = "env", validate(len(min = "3")))]
    len_not_a_number: String,
    #[component(fetch_from = "env", validate(one_of = []))]
    empty_one_of: String,
    #[component(fetch_from = "env", validate(one_of = ["a", 1]))]
    mixed_one_of: String,
    #[component(fetch_from = "env", validate(with = check, timeout = "1s"))]
    timeout_without_async: u16,
    #[component(skip, validate(non_empty))]
    skipped: String,
    #[component(nested, validate(with = check))]
    inner: Inner,
    #[component(validate(non_empty))]
    no_source: String,
    #[component(fetch_from = "env", validate_with = whole)]
    struct_key_on_field: u16,
    // Every bad rule of one attribute is reported, and the keys after it still read.
    #[component(validate(range(min = 5, max = 1), len(min = 3, max = 1)), fetch_from = "env")]
    two_bad_rules: u16,
    #[component(fetch_from = "env", validate(range(min = 10.5, max = 1.0)))]
    empty_float_range: f64,
    #[component(fetch_from = "env", validate(pattern = "\\w{1000}\\w{1000}\\w{1000}"))]
    pattern_too_large: String,
    #[component(fetch_from = "env", validate(non_empty), validate(non_empty))]
    duplicate_rule: String,
    #[component(fetch_from = "env", validate())]
    no_rules: String,
}

#[derive(AsyncAssign, Default)]
#[component(nested_only, validate_concurrency = 4)]
struct OnlyNested {
    #[component(fetch_from = "env")]
    a: u16,
}

#[derive(AsyncAssign, Default)]
#[component(validate(timeout = "5s"))]
struct TimeoutWithoutAsyncRule {
    #[component(fetch_from = "env")]
    a: u16,
}

fn main() {}
