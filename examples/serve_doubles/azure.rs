//! The Azure Key Vault double for `tests/clients/conformance.py` (issue 36): the double
//! behind a TLS front (the SDK sends bearer tokens over HTTPS only), with a CA of its own.
//!
//! Adds `azure_keyvault` (`https://127.0.0.1:PORT`, the vault URL), `azure_ca` (the CA's
//! PEM file, for `connection_verify`) and `azure_tenant` (the tenant its challenge names).

use component_model::test_util::AzureKeyVaultDouble;
use component_model_tests::tls::{Pki, tls_front};

/// Starts the double(s) and says where: `(key, value)` pairs added to the printed JSON line.
pub async fn serve() -> Vec<(&'static str, serde_json::Value)> {
    // The conformance script's stub credential hands out `stub-token`.
    let double = AzureKeyVaultDouble::builder()
        .accept_token("stub-token")
        .start()
        .await;
    // Both live until the process is killed.
    let pki: &'static Pki = Box::leak(Box::new(Pki::new("azure_keyvault")));
    let cert = pki.server("kv", &["127.0.0.1", "localhost"], false);
    let front = tls_front(double.address(), &cert, None).await;
    let tenant = double.tenant();
    Box::leak(Box::new(double));
    vec![
        (
            "azure_keyvault",
            serde_json::json!(format!("https://127.0.0.1:{}", front.port())),
        ),
        (
            "azure_ca",
            serde_json::json!(pki.ca_file.display().to_string()),
        ),
        ("azure_tenant", serde_json::json!(tenant)),
    ]
}
