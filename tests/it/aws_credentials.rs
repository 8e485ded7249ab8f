//! Issue 36: `aws_credentials` (being built).
