//! Issue 36: `gcp_secrets` (being built).
