//! Hostile servers for the `aws` secret stores (issue 36; being built).
