//! The Google Secret Manager double for `tests/clients/conformance.py` (issue 36): the
//! official `google-cloud-secret-manager` client (REST transport, `AnonymousCredentials`,
//! `api_endpoint` the double's `http://` URL) checks it, unmodified, in
//! `tests/clients/gcp_checks.py`.

use component_model::test_util::GcpSecretsDouble;

/// Starts the double (no authentication: the client's anonymous credentials send none)
/// and says where: `"gcp_secrets": "http://127.0.0.1:PORT"`.
pub async fn serve() -> Vec<(&'static str, serde_json::Value)> {
    let gcp = GcpSecretsDouble::start().await;
    let url = gcp.url();
    // Served until the process is killed.
    std::mem::forget(gcp);
    vec![("gcp_secrets", serde_json::Value::String(url))]
}
