use component_model::AsyncAssign;

#[derive(AsyncAssign)]
struct Config {
    // Two sources for one field.
    #[component(stream_from = "kafka", fetch_from = "consul", topic = "t")]
    both: String,
    // Kafka and NATS read a topic; a websocket reads a URL.
    #[component(stream_from = "kafka", key = "app")]
    no_topic: String,
    #[component(stream_from = "websocket")]
    no_url: String,
    #[component(stream_from = "nats", topic = "config.app", url = "nats://x")]
    nats_url: String,
    // A stream is always watched.
    #[component(stream_from = "nats", topic = "config.app", watch = false)]
    unwatched: String,
    // `topic` belongs to push sources, and needs one.
    #[component(fetch_from = "consul", key = "app/port", topic = "t")]
    consul_topic: u16,
    #[component(topic = "t")]
    no_source: u16,
    // A Redis field reads a key or a stream, not both.
    #[component(stream_from = "redis", key = "k", topic = "s")]
    redis_both: String,
    // Consul is read (and watched with `watch`), not streamed.
    #[component(stream_from = "consul", key = "app/port")]
    consul_stream: u16,
}

fn main() {}
