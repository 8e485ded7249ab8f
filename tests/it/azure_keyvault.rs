//! Issue 36: `azure_keyvault` (being built).
