//! Hostile servers for the `gcp` secret stores (issue 36; being built).
