use std::collections::HashMap;

use component_model::{AsyncAssign, SecretString, Sources, Violations};

fn even(n: &u32) -> Result<(), String> {
    if n % 2 == 0 { Ok(()) } else { Err(format!("{n} is odd")) }
}

async fn reachable(host: &String) -> Result<(), std::io::Error> {
    let _ = host;
    Ok(())
}

fn consistent(c: &App, _: &Sources) -> Result<(), Violations> {
    if c.min > c.max {
        return Err(Violations::at("min", "must not exceed `max`"));
    }
    Ok(())
}

async fn unique(_: &App, sources: &Sources) -> Result<(), String> {
    let _ = sources;
    Ok(())
}

const MAX_PORT: u16 = 65535;

#[derive(Debug, PartialEq, serde::Deserialize, Default)]
enum Mode {
    #[default]
    Fast,
    Safe,
    Slow,
}

// Every rule, on every type it applies to, with the struct rules.
#[derive(AsyncAssign, Default)]
#[component(
    validate_with = consistent,
    validate_with_async = unique,
    validate(timeout = "5s"),
    validate_concurrency = 4
)]
struct App {
    #[component(fetch_from = "env", validate(range(min = 1, max = MAX_PORT)))]
    port: u16,
    #[component(fetch_from = "env", validate(range(min = -1.5, max = 2.5)))]
    ratio: f64,
    #[component(fetch_from = "env", validate(range(max = 10), with = even))]
    min: u32,
    #[component(fetch_from = "env", validate(range(min = 0)))]
    max: u32,
    #[component(fetch_from = "env", validate(len(min = 1, max = 64), pattern = "^[a-z][a-z0-9-]*$"))]
    name: String,
    #[component(fetch_from = "env", validate(one_of = ["eu-1", "us-1"]))]
    region: Option<String>,
    #[component(fetch_from = "env", validate(one_of = [80, 443]))]
    listen: u16,
    #[component(fetch_from = "env", validate(non_empty))]
    tags: Vec<String>,
    #[component(fetch_from = "env", validate(non_empty, len(max = 10)))]
    labels: HashMap<String, String>,
    #[component(fetch_from = "env", validate(url))]
    endpoint: String,
    #[component(fetch_from = "env", validate(with_async = reachable, timeout = "2s"))]
    host: String,
    #[component(fetch_from = "env", validate(with_async = reachable))]
    backup: Option<String>,
    #[component(fetch_from = "env", validate(len(min = 12)))]
    token: SecretString,
    #[component(fetch_from = "env", secret, validate(pattern = "^[0-9]+$"))]
    pin: String,
    #[component(fetch_from = "env", validate(with = "even"))]
    as_string_path: u32,
    #[component(fetch_from = "env", validate(one_of = [Mode::Fast, Mode::Safe]))]
    mode: Mode,
    #[component(fetch_from = "env", validate(one_of = [Mode::Safe]))]
    maybe_mode: Option<Mode>,
    #[component(fetch_from = "env", validate(one_of = ['a', 'b']))]
    letter: char,
}

fn main() {
    let _ = App::fetch_all_components();
}
