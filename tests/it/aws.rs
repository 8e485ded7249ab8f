//! Issue 36: `aws` (being built).
