//! Hostile servers: kafka.
