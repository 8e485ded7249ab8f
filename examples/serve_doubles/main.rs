//! Serves the Consul and Vault API doubles on 127.0.0.1 until killed, for checking them
//! with third-party clients (`tests/clients/conformance.py`, run by `.ci/run`).
//!
//! Prints one JSON line with the addresses, then waits:
//! `{"consul": "127.0.0.1:PORT", "consul_acl": "...", "vault": "http://...", "vault_ns": "http://...", "vault_v1_mount": "kv"}`
//!
//! * `consul`: no ACLs; `consul_acl`: ACL token `secret-token`, anonymous denied, the prefix
//!   `private/` denied to the token;
//! * `vault`: token `root`, KV v2 at `secret/`, KV v1 at `kv/`, an AppRole role (role id
//!   `conformance-role`, secret id `conformance-secret`) and a Kubernetes role (`app`,
//!   JWT `conformance.jwt`) issuing tokens of 1h renewable up to 2h; `vault_scoped` and
//!   `vault_scoped_no_default`: tokens that may read only `secret/data/app/*`, with and
//!   without the default policy; `vault_ns`: the KV v2 mount in namespace `ns1`.

use component_model::test_util::{ConsulDouble, VaultDouble};

mod azure;
mod gcp;

#[tokio::main]
async fn main() {
    let consul = ConsulDouble::start().await;
    let consul_acl = ConsulDouble::builder()
        .acl_token("secret-token")
        .deny_prefix("private/")
        .datacenter("dc2")
        .start()
        .await;
    // Keys the token may not read, for listings that must leave them out.
    consul_acl.put("private/hidden", "not for this token");
    consul_acl.put("pub/visible", "yes");
    let vault = VaultDouble::builder()
        .kv_v2("secret")
        .kv_v1("kv")
        .approle("conformance-role", "conformance-secret")
        .kubernetes("app", "conformance.jwt")
        .token_ttl(std::time::Duration::from_secs(3600))
        .token_max_ttl(std::time::Duration::from_secs(7200))
        .start()
        .await;
    // Tokens that may read only `secret/data/app/*`, with and without the default policy.
    let hour = std::time::Duration::from_secs(3600);
    let scoped = vault.issue_scoped_token(hour, &["secret/data/app/"], true);
    let scoped_no_default = vault.issue_scoped_token(hour, &["secret/data/app/"], false);
    let vault_ns = VaultDouble::builder()
        .kv_v2("secret")
        .namespace("ns1")
        .start()
        .await;
    // The cloud stores' doubles: each module adds its own addresses (issue 36).
    let azure = azure::serve().await;
    let gcp = gcp::serve().await;
    let mut addresses = serde_json::json!({
            "consul": consul.address(),
            "consul_acl": consul_acl.address(),
            "vault": vault.url(),
            "vault_ns": vault_ns.url(),
            "vault_v1_mount": "kv",
            "vault_scoped": scoped,
            "vault_scoped_no_default": scoped_no_default,
    });
    for (key, value) in azure.into_iter().chain(gcp) {
        addresses[key] = value;
    }
    println!("{addresses}");
    // Until killed.
    std::future::pending::<()>().await;
}
