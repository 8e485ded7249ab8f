//! Hostile servers: websocket.
