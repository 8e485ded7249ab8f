//! An API double of Google Secret Manager (being built: issue 36).

/// An API double of Google Secret Manager (being built).
#[derive(Debug)]
pub struct GcpSecretsDouble {}
