//! Hostile servers: nats.
