use component_model::AsyncAssign;

#[derive(AsyncAssign, Debug)]
struct Config {
    #[component(fetch_from = "env", max_size = "64KiB")]
    a: String,
    #[component(fetch_from = "env", max_size = 512)]
    b: String,
    #[component(fetch_from = "env", max_size = "2MB")]
    c: String,
}

fn main() {
    let specs = Config::component_sources();
    assert_eq!(specs[0].max_size, Some(64 * 1024));
    assert_eq!(specs[1].max_size, Some(512));
    assert_eq!(specs[2].max_size, Some(2_000_000));
}
