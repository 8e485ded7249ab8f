//! Hostile servers for the `azure` secret stores (issue 36; being built).
