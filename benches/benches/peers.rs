//! On the peers' own ground: 16 fields, 8 from a TOML file and 8 from environment
//! variables, read in one process by
//!
//! * `ours`: `#[derive(AsyncAssign)]` with `fetch_from = "file"` (a [`FileSource`] on a
//!   temporary directory) and `fetch_from = "env"`;
//! * `figment`: a `Toml` provider and an `Env` provider, `extract` into a serde struct;
//! * `config_rs`: a `File` source and an `Environment` source, `try_deserialize` into the
//!   same serde struct.
//!
//! `ours` runs on a multi-threaded tokio runtime (what `#[tokio::main]` gives, where a
//! file read may move to a blocking thread), `ours_current_thread` on a current-thread one.
//!
//! Every iteration reads the file and the environment again (nobody answers from a value
//! read before):
//!
//! * `peers_warm/*`: what can be built once is built once and reused — our `Sources`
//!   (with the plans it keeps, and the `FileSource`'s document of the file, answered again
//!   after one `stat` says the file is unchanged), config-rs's builder (`build_cloned`,
//!   which reads and parses the file again); figment keeps nothing between reads (its
//!   providers are consumed), so its warm read is its cold one;
//! * `peers_cold/*`: the first fetch — a new `Sources`, a new figment, a new config-rs
//!   builder every iteration.
//!
//! * `peers_first/*` (only when asked: `-- peers_first`): the first read in a fresh
//!   process, each reader in 30 processes of its own (see [`peers_first`]).
//!
//! The 8 variables (`CMPEERS_F8`..`CMPEERS_F15`) are set by the benchmark itself: without
//! them it runs itself again with them set (the workspace forbids `unsafe`, so it cannot
//! `set_var`), and the peers scan the whole environment for their prefix as they would in
//! an application.
//!
//! Ratios: `python3 scripts/bench_ratios.py`.

#![allow(missing_docs)]

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use component_model::{AsyncAssign, FileSource, Sources};
use criterion::Criterion;

/// The variables, with values every reader parses into the same struct.
const VARS: [(&str, &str); 8] = [
    ("CMPEERS_F8", "1008"),
    ("CMPEERS_F9", "-1009"),
    ("CMPEERS_F10", "host-ten"),
    ("CMPEERS_F11", "true"),
    ("CMPEERS_F12", "1012"),
    ("CMPEERS_F13", "-1013"),
    ("CMPEERS_F14", "host-fourteen"),
    ("CMPEERS_F15", "false"),
];

const TOML: &str = r#"f0 = 1000
f1 = 1001
f2 = "name-two"
f3 = true
f4 = 1004
f5 = 1005
f6 = "name-six"
f7 = false
"#;

#[derive(AsyncAssign, Debug)]
#[allow(dead_code)] // the values are only produced, through black_box
struct Ours {
    #[component(fetch_from = "file", path = "peers.toml", pointer = "/f0")]
    f0: u16,
    #[component(fetch_from = "file", path = "peers.toml", pointer = "/f1")]
    f1: u32,
    #[component(fetch_from = "file", path = "peers.toml", pointer = "/f2")]
    f2: String,
    #[component(fetch_from = "file", path = "peers.toml", pointer = "/f3")]
    f3: bool,
    #[component(fetch_from = "file", path = "peers.toml", pointer = "/f4")]
    f4: u16,
    #[component(fetch_from = "file", path = "peers.toml", pointer = "/f5")]
    f5: u64,
    #[component(fetch_from = "file", path = "peers.toml", pointer = "/f6")]
    f6: String,
    #[component(fetch_from = "file", path = "peers.toml", pointer = "/f7")]
    f7: bool,
    #[component(fetch_from = "env", key = "CMPEERS_F8")]
    f8: u16,
    #[component(fetch_from = "env", key = "CMPEERS_F9")]
    f9: i32,
    #[component(fetch_from = "env", key = "CMPEERS_F10")]
    f10: String,
    #[component(fetch_from = "env", key = "CMPEERS_F11")]
    f11: bool,
    #[component(fetch_from = "env", key = "CMPEERS_F12")]
    f12: u16,
    #[component(fetch_from = "env", key = "CMPEERS_F13")]
    f13: i64,
    #[component(fetch_from = "env", key = "CMPEERS_F14")]
    f14: String,
    #[component(fetch_from = "env", key = "CMPEERS_F15")]
    f15: bool,
}

/// The same 16 fields for figment and config-rs.
#[derive(serde::Deserialize, Debug)]
#[allow(dead_code)] // the values are only produced, through black_box
struct Peer {
    f0: u16,
    f1: u32,
    f2: String,
    f3: bool,
    f4: u16,
    f5: u64,
    f6: String,
    f7: bool,
    f8: u16,
    f9: i32,
    f10: String,
    f11: bool,
    f12: u16,
    f13: i64,
    f14: String,
    f15: bool,
}

fn ours_sources(dir: &Path) -> Sources {
    Sources::new().register("file", FileSource::new().with_base_dir(dir))
}

async fn ours(sources: &Sources) -> Ours {
    Ours::fetch_all_components_with(sources)
        .await
        .expect("ours")
}

fn figment_toml(file: &Path) -> figment::providers::Data<figment::providers::Toml> {
    use figment::providers::Format;
    figment::providers::Toml::file(file)
}

fn figment_env() -> figment::providers::Env {
    figment::providers::Env::prefixed("CMPEERS_")
}

fn config_builder(file: &Path) -> config::ConfigBuilder<config::builder::DefaultState> {
    config::Config::builder()
        .add_source(config::File::from(file.to_path_buf()))
        .add_source(config::Environment::with_prefix("CMPEERS"))
}

/// Every reader reads the same values.
fn check(dir: &Path, file: &Path, rt: &tokio::runtime::Runtime) {
    let o = rt.block_on(ours(&ours_sources(dir)));
    let f: Peer = figment::Figment::new()
        .merge(figment_toml(file))
        .merge(figment_env())
        .extract()
        .expect("figment");
    let c: Peer = config_builder(file)
        .build()
        .expect("config-rs")
        .try_deserialize()
        .expect("config-rs");
    let ours = format!("{o:?}").replace("Ours", "");
    assert_eq!(
        ours,
        format!("{f:?}").replace("Peer", ""),
        "ours vs figment"
    );
    assert_eq!(
        ours,
        format!("{c:?}").replace("Peer", ""),
        "ours vs config-rs"
    );
}

fn peers(c: &mut Criterion, dir: &Path) {
    let file: PathBuf = dir.join("peers.toml");
    // What `#[tokio::main]` gives; and a current-thread runtime (file reads inline).
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let rt1 = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    check(dir, &file, &rt);

    let mut g = c.benchmark_group("peers_warm");
    let sources = ours_sources(dir);
    g.bench_function("ours", |b| {
        b.to_async(&rt)
            .iter(|| async { black_box(ours(&sources).await) })
    });
    g.bench_function("ours_current_thread", |b| {
        b.to_async(&rt1)
            .iter(|| async { black_box(ours(&sources).await) })
    });
    // figment keeps nothing between reads (its providers are values it consumes, and
    // cheap to make): warm is cold for it.
    g.bench_function("figment", |b| {
        b.iter(|| {
            let f: Peer = figment::Figment::new()
                .merge(figment_toml(&file))
                .merge(figment_env())
                .extract()
                .expect("figment");
            black_box(f)
        })
    });
    let builder = config_builder(&file);
    g.bench_function("config_rs", |b| {
        b.iter(|| {
            let c: Peer = builder
                .build_cloned()
                .expect("config-rs")
                .try_deserialize()
                .expect("config-rs");
            black_box(c)
        })
    });
    g.finish();

    let mut g = c.benchmark_group("peers_cold");
    g.bench_function("ours", |b| {
        b.to_async(&rt)
            .iter(|| async { black_box(ours(&ours_sources(dir)).await) })
    });
    g.bench_function("ours_current_thread", |b| {
        b.to_async(&rt1)
            .iter(|| async { black_box(ours(&ours_sources(dir)).await) })
    });
    g.bench_function("figment", |b| {
        b.iter(|| {
            let f: Peer = figment::Figment::new()
                .merge(figment_toml(&file))
                .merge(figment_env())
                .extract()
                .expect("figment");
            black_box(f)
        })
    });
    g.bench_function("config_rs", |b| {
        b.iter(|| {
            let c: Peer = config_builder(&file)
                .build()
                .expect("config-rs")
                .try_deserialize()
                .expect("config-rs");
            black_box(c)
        })
    });
    g.finish();
}

/// The readers of `peers_first`.
const READERS: [&str; 3] = ["ours", "figment", "config_rs"];

/// How many fresh processes `peers_first` times for each reader.
const FIRST_ROUNDS: usize = 30;

/// One first read in this process (fresh): what `reader` takes from nothing to the value.
/// The tokio runtime an application has anyway is built before the clock starts.
fn first_read(reader: &str, dir: &Path) -> Duration {
    let file = dir.join("peers.toml");
    match reader {
        "ours" => {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .expect("runtime");
            let t = Instant::now();
            black_box(rt.block_on(ours(&ours_sources(dir))));
            t.elapsed()
        }
        "figment" => {
            let t = Instant::now();
            let f: Peer = figment::Figment::new()
                .merge(figment_toml(&file))
                .merge(figment_env())
                .extract()
                .expect("figment");
            black_box(f);
            t.elapsed()
        }
        _ => {
            let t = Instant::now();
            let c: Peer = config_builder(&file)
                .build()
                .expect("config-rs")
                .try_deserialize()
                .expect("config-rs");
            black_box(c);
            t.elapsed()
        }
    }
}

/// `peers_first/*`: the first read in a fresh process (lazy initialisation, first
/// allocations, a first blocking thread — everything a program pays once), each reader
/// in `FIRST_ROUNDS` processes of its own, taken in turn. Not criterion's: the estimates
/// (mean, median, in ns) go where criterion's would, for `scripts/bench_ratios.py`.
fn peers_first(dir: &Path) {
    let exe = std::env::current_exe().expect("the benchmark's own path");
    let mut times: Vec<Vec<f64>> = vec![Vec::new(); READERS.len()];
    for _ in 0..FIRST_ROUNDS {
        for (i, reader) in READERS.iter().enumerate() {
            let out = std::process::Command::new(&exe)
                .env("CMPEERS_FIRST", reader)
                .env("CMPEERS_DIR", dir)
                .output()
                .expect("a first-read process");
            let ns: f64 = String::from_utf8_lossy(&out.stdout)
                .trim()
                .parse()
                .expect("the first read's time in ns");
            times[i].push(ns);
        }
    }
    let target = exe
        .ancestors()
        .nth(3)
        .expect("target/<profile>/deps/<exe>")
        .join("criterion")
        .join("peers_first");
    for (reader, mut t) in READERS.iter().zip(times) {
        t.sort_by(f64::total_cmp);
        let mean = t.iter().sum::<f64>() / t.len() as f64;
        let median = t[t.len() / 2];
        println!(
            "peers_first/{reader:<10} mean {:9.1} µs  median {:9.1} µs  min {:9.1} µs  ({} processes)",
            mean / 1e3,
            median / 1e3,
            t[0] / 1e3,
            t.len()
        );
        let out = target.join(reader).join("new");
        std::fs::create_dir_all(&out).expect("the estimates' directory");
        std::fs::write(
            out.join("estimates.json"),
            format!(
                r#"{{"mean":{{"point_estimate":{mean}}},"median":{{"point_estimate":{median}}}}}"#
            ),
        )
        .expect("the estimates");
    }
}

fn main() {
    if let (Ok(reader), Ok(dir)) = (std::env::var("CMPEERS_FIRST"), std::env::var("CMPEERS_DIR")) {
        // A first-read process of `peers_first`.
        println!("{}", first_read(&reader, Path::new(&dir)).as_nanos());
        return;
    }
    if VARS
        .iter()
        .any(|(k, v)| std::env::var(k).as_deref() != Ok(*v))
    {
        // Run again with the variables set (see the module docs).
        let exe = std::env::current_exe().expect("the benchmark's own path");
        let status = std::process::Command::new(exe)
            .args(std::env::args_os().skip(1))
            .envs(VARS)
            .status()
            .expect("running the benchmark with its variables");
        std::process::exit(status.code().unwrap_or(1));
    }
    let dir = std::env::temp_dir().join(format!("cm-bench-peers-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temporary directory");
    std::fs::write(dir.join("peers.toml"), TOML).expect("the TOML file");
    // A configuration file is usually older than the process reading it: past the two
    // seconds after which a `FileSource` keeps a file's document while its `stat` holds.
    std::thread::sleep(std::time::Duration::from_millis(2500));
    if std::env::args().any(|a| a == "peers_first") {
        peers_first(&dir);
    } else {
        let mut c = Criterion::default().configure_from_args();
        peers(&mut c, &dir);
        c.final_summary();
    }
    let _ = std::fs::remove_dir_all(&dir);
}
