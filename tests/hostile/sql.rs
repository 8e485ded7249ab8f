//! Hostile servers: sql.
