// `async_assign` / `future_assign` with a value no field takes: an error naming the
// struct and the type (rustc adds its unsatisfied-bound error for the same call).
use component_model::{AsyncAssign, FutureAssign};

#[derive(AsyncAssign, Default)]
struct AppConfig {
    host: String,
    port: u16,
}

async fn fetch_ratio() -> Result<f64, std::io::Error> {
    Ok(0.5)
}

async fn run() {
    let mut config = AppConfig::default();
    let _ = config.async_assign(vec![1u8]).await;
    let _ = config.future_assign(fetch_ratio()).await;
}

fn main() {
    let _ = run();
}
