//! The seed's `StreamingConfig`, as written, against tansu and the in-process websocket
//! server, through the process-wide sources.

use std::time::Duration;

use component_model::test_util::WebSocketServer;
use component_model::{AsyncAssign, ConfigUpdate, KafkaSource, Sources, WebSocketSource};
use futures::{Stream, StreamExt};
use serde::Deserialize;

use crate::eventually;
use crate::kafka::{BROKER, admin, produce};

#[derive(Debug, Default, Deserialize)]
struct Settings {
    workers: u32,
}

#[derive(Debug, Default, Deserialize)]
struct FeatureFlags {
    dark_mode: bool,
}

// As in the seed (`../shared/seeds/002_…txt`, "Streaming Components").
#[derive(AsyncAssign)]
struct StreamingConfig {
    #[component(stream_from = "kafka", topic = "config-updates")]
    live_settings: Settings,

    #[component(stream_from = "websocket", url = "ws://config.service")]
    realtime_flags: FeatureFlags,
}

// The seed's `impl StreamingConfig { async fn watch_for_updates(&mut self) -> impl
// Stream<Item = ConfigUpdate> { /* Return stream of configuration updates */ } }` is what
// the derive generates: `config.watch_for_updates().await` is a `Stream` of `ConfigUpdate`.
fn is_update_stream(_: &impl Stream<Item = ConfigUpdate>) {}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seeds_streaming_config_runs_as_written() {
    let Some(admin) = admin(BROKER).await else {
        return;
    };
    // `config-updates` is the seed's topic name: made once on the shared broker, and
    // only ever appended to (each run reads its newest message).
    let _ = admin
        .controller_client()
        .unwrap()
        .create_topic("config-updates", 1, 1, 5_000)
        .await;
    let run = component_model_tests::unique("run");
    let first = format!(r#"{{"workers": 4, "run": "{run}"}}"#);
    produce(&admin, "config-updates", 0, None, Some(&first)).await;

    let flags = WebSocketServer::start().await;
    flags.set(r#"{"dark_mode": false}"#);
    Sources::set_global(
        Sources::new()
            .register("kafka", KafkaSource::new([BROKER]))
            .register(
                "websocket",
                WebSocketSource::new().resolve("config.service", flags.address()),
            ),
    )
    .expect("the only set_global of this test binary");

    let mut config = StreamingConfig {
        live_settings: Settings::default(),
        realtime_flags: FeatureFlags::default(),
    };
    let mut updates = config.watch_for_updates().await;
    is_update_stream(&updates);
    assert_eq!(config.live_settings.workers, 4);
    assert!(!config.realtime_flags.dark_mode);

    // A push on each stream is an update of the struct.
    flags.set(r#"{"dark_mode": true}"#);
    let update = tokio::time::timeout(Duration::from_secs(10), updates.next())
        .await
        .unwrap()
        .unwrap();
    assert!(matches!(update, ConfigUpdate::Applied { .. }), "{update}");
    let live = updates
        .live::<StreamingConfig>()
        .expect("the Live behind the stream");
    assert!(live.get().realtime_flags.dark_mode);

    let next = format!(r#"{{"workers": 8, "run": "{run}"}}"#);
    produce(&admin, "config-updates", 0, None, Some(&next)).await;
    eventually(
        Duration::from_secs(10),
        || live.get().live_settings.workers == 8,
        || "the Kafka update never applied".to_owned(),
    )
    .await;
}
