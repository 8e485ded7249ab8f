//! Hostile servers: redis.
