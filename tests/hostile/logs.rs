//! Hostile servers: logs.
