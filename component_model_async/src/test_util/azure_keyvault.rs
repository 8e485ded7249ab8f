//! An API double of Azure Key Vault (being built: issue 36).

/// An API double of Azure Key Vault (being built).
#[derive(Debug)]
pub struct AzureKeyVaultDouble {}
