//! Hostile servers: http.
