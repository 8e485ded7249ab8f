//! Hostile servers: mqtt.
