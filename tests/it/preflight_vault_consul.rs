//! Preflight of the `vault` and `consul` sources: what a token may read and whether each
//! key exists, without reading a value.
//!
//! * Vault: against the in-process double and against real OpenBao (`scripts/services.sh`;
//!   see `openbao.rs` for how a test reaches it and when it skips), whose own audit log
//!   shows that no request read a data path;
//! * Consul: against the double with ACL tokens of `key_prefix` rules, and a closed port.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use component_model::test_util::{ConsulDouble, VaultDouble};
use component_model::{
    Access, AsyncAssign, ConsulSource, FetchRequest, Probe, SecretString, Source, Sources,
    VaultSource,
};
use component_model_tests::{CapturedLogs, capture, unique};
use serde_json::{Value, json};

fn secret(path: &str) -> FetchRequest {
    FetchRequest::for_source("vault").with_secret_path(path.to_owned())
}

fn key(key: &str) -> FetchRequest {
    FetchRequest::for_key("consul", key.to_owned())
}

fn prefix(prefix: &str) -> FetchRequest {
    FetchRequest::for_source("consul").with_param("prefix", prefix.to_owned())
}

fn accesses(probes: &[Probe]) -> Vec<Access> {
    probes.iter().map(|p| p.access).collect()
}

fn detail(p: &Probe) -> &str {
    p.detail.as_deref().unwrap_or("")
}

// ---------------------------------------------------------------------------------------
// Vault double

#[tokio::test]
async fn vault_double_readable_denied_missing_without_a_data_read() {
    const CANARY: &str = "pf-vault-double-canary-7f3a";
    let vault = VaultDouble::start().await;
    vault.put("secret", "app/db", json!({ "password": CANARY }));
    vault.put("secret", "other/db", json!({ "password": CANARY }));
    // Reads and lists under app/ (data and metadata), nothing else.
    let token = vault.issue_scoped_token(
        Duration::from_secs(3600),
        &["secret/data/app/", "secret/metadata/app/"],
        true,
    );
    let source = VaultSource::new(vault.url())
        .with_token(&token)
        .with_kv_version("secret", 2);
    let logs = CapturedLogs::default();
    let probes = {
        let _guard = capture(&logs);
        source
            .preflight(vec![
                secret("app/db"),
                secret("other/db"),
                secret("app/none"),
            ])
            .await
    };
    assert_eq!(
        accesses(&probes),
        [Access::Readable, Access::Denied, Access::Missing],
        "{probes:?}"
    );
    assert!(
        detail(&probes[1]).contains("secret/data/other/db: deny"),
        "{probes:?}"
    );
    assert!(detail(&probes[0]).contains("token ttl "), "{probes:?}");
    // One capabilities call, one lookup, metadata only: the data path is never requested.
    assert_eq!(vault.requests_to("/v1/secret/data/").len(), 0);
    assert_eq!(vault.requests_to("/v1/sys/capabilities-self").len(), 1);
    assert_eq!(vault.requests_to("/v1/auth/token/lookup-self").len(), 1);
    let text = logs.text();
    assert!(
        !text.contains(CANARY),
        "the secret value is in the TRACE log"
    );
    assert!(!text.contains(&token), "the token is in the TRACE log");

    // Without read on metadata, existence is not checked: readable, saying so.
    let data_only =
        vault.issue_scoped_token(Duration::from_secs(3600), &["secret/data/app/"], true);
    let probes = VaultSource::new(vault.url())
        .with_token(&data_only)
        .preflight(vec![secret("app/none")])
        .await;
    assert_eq!(accesses(&probes), [Access::Readable], "{probes:?}");
    assert!(
        detail(&probes[0]).contains("existence not checked"),
        "{probes:?}"
    );

    // The root token never expires; a bogus or revoked token is unauthenticated.
    let probes = VaultSource::new(vault.url())
        .with_token("root")
        .preflight(vec![secret("app/db")])
        .await;
    assert_eq!(accesses(&probes), [Access::Readable]);
    assert!(
        detail(&probes[0]).contains("token never expires"),
        "{probes:?}"
    );
    vault.revoke_token(&token);
    for bad in ["bogus", token.as_str()] {
        let probes = VaultSource::new(vault.url())
            .with_token(bad)
            .preflight(vec![secret("app/db"), secret("other/db")])
            .await;
        assert_eq!(
            accesses(&probes),
            [Access::Unauthenticated, Access::Unauthenticated],
            "{probes:?}"
        );
    }
    assert_eq!(vault.requests_to("/v1/secret/data/").len(), 0);
}

#[tokio::test]
async fn vault_double_kv_v1_lists_the_folder_and_a_token_without_default_is_unchecked() {
    let vault = VaultDouble::builder().kv_v1("kv").start().await;
    vault.put("kv", "app/a", json!({ "k": "v" }));
    let source = VaultSource::new(vault.url()).with_token("root");
    let probes = source
        .preflight(vec![
            secret("app/a").with_mount("kv".to_owned()),
            secret("app/none").with_mount("kv".to_owned()),
            secret("none").with_mount("kv".to_owned()),
        ])
        .await;
    assert_eq!(
        accesses(&probes),
        [Access::Readable, Access::Missing, Access::Missing],
        "{probes:?}"
    );
    // A LIST of the folder, never a read of the secret.
    assert!(vault.requests().iter().all(|r| r.path != "/v1/kv/app/a"));

    // No `default` policy: no lookup, no capabilities: nothing can be told.
    let bare = vault.issue_scoped_token(Duration::from_secs(3600), &["kv/app/"], false);
    let probes = VaultSource::new(vault.url())
        .with_token(&bare)
        .with_kv_version("kv", 1)
        .preflight(vec![secret("app/a").with_mount("kv".to_owned())])
        .await;
    assert_eq!(accesses(&probes), [Access::Unchecked], "{probes:?}");
}

#[tokio::test]
async fn vault_logins_sealed_and_unreachable() {
    let vault = VaultDouble::builder()
        .approle("role-1", "secret-1")
        .start()
        .await;
    vault.put("secret", "app/db", json!({ "password": "x" }));
    // A login the source makes itself reads as a static token does.
    let probes = VaultSource::new(vault.url())
        .with_approle("role-1", "secret-1")
        .preflight(vec![secret("app/db"), secret("app/none")])
        .await;
    assert_eq!(
        accesses(&probes),
        [Access::Readable, Access::Missing],
        "{probes:?}"
    );
    // A login the server refuses: unauthenticated, saying which login.
    let probes = VaultSource::new(vault.url())
        .with_approle("role-1", "wrong-secret")
        .preflight(vec![secret("app/db")])
        .await;
    assert_eq!(accesses(&probes), [Access::Unauthenticated], "{probes:?}");
    assert!(detail(&probes[0]).contains("AppRole"), "{probes:?}");
    assert!(!detail(&probes[0]).contains("wrong-secret"), "{probes:?}");
    // Sealed: unreachable.
    vault.seal();
    let probes = VaultSource::new(vault.url())
        .with_token("root")
        .preflight(vec![secret("app/db")])
        .await;
    assert_eq!(accesses(&probes), [Access::Unreachable], "{probes:?}");
    assert_eq!(vault.requests_to("/v1/secret/data/").len(), 0);
    // Nothing listening: unreachable within the source's timeout.
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let started = Instant::now();
    let probes = VaultSource::new(format!("http://127.0.0.1:{port}"))
        .with_token("root")
        .with_timeout(Duration::from_secs(2))
        .preflight(vec![secret("app/db"), secret("app/other")])
        .await;
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        accesses(&probes),
        [Access::Unreachable, Access::Unreachable],
        "{probes:?}"
    );
}

// ---------------------------------------------------------------------------------------
// OpenBao

/// The HMAC OpenBao's audit device `audit` writes for `token`.
async fn audit_hash(bao: &crate::openbao::Bao, audit: &str, token: &str) -> String {
    bao.ok(
        "POST",
        &format!("sys/audit-hash/{audit}"),
        Some(json!({ "input": token })),
    )
    .await["data"]["hash"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn openbao_readable_denied_missing_and_the_audit_log_shows_no_data_read() {
    let Some(bao) = crate::openbao::bao().await else {
        return;
    };
    const CANARY: &str = "pf-openbao-canary-91c2";
    let name = unique("cm-pf").replace('_', "-");
    let (v2, v1, policy, audit) = (
        format!("{name}-kv2"),
        format!("{name}-kv1"),
        format!("{name}-policy"),
        format!("{name}-audit"),
    );
    let audit_file = std::env::temp_dir().join(format!("{audit}.log"));
    bao.ok(
        "POST",
        &format!("sys/mounts/{v2}"),
        Some(json!({"type": "kv", "options": {"version": "2"}})),
    )
    .await;
    bao.ok(
        "POST",
        &format!("sys/mounts/{v1}"),
        Some(json!({"type": "kv", "options": {"version": "1"}})),
    )
    .await;
    for p in ["app/db", "other/db"] {
        bao.ok(
            "POST",
            &format!("{v2}/data/{p}"),
            Some(json!({"data": {"password": CANARY}})),
        )
        .await;
    }
    bao.ok(
        "POST",
        &format!("{v1}/app/a"),
        Some(json!({"password": CANARY})),
    )
    .await;
    let rules = format!(
        "path \"{v2}/data/app/*\" {{ capabilities = [\"read\"] }}\n\
         path \"{v2}/metadata/app/*\" {{ capabilities = [\"read\"] }}\n\
         path \"{v1}/app/*\" {{ capabilities = [\"read\"] }}\n\
         path \"{v1}/app/\" {{ capabilities = [\"list\"] }}\n"
    );
    bao.ok(
        "PUT",
        &format!("sys/policy/{policy}"),
        Some(json!({ "policy": rules })),
    )
    .await;
    let token = bao
        .ok(
            "POST",
            "auth/token/create",
            Some(json!({"policies": [policy], "ttl": "1h"})),
        )
        .await["auth"]["client_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let revoked = bao
        .ok(
            "POST",
            "auth/token/create",
            Some(json!({"policies": [policy], "ttl": "1h"})),
        )
        .await["auth"]["client_token"]
        .as_str()
        .unwrap()
        .to_owned();
    bao.ok(
        "POST",
        "auth/token/revoke",
        Some(json!({ "token": revoked })),
    )
    .await;
    bao.ok(
        "PUT",
        &format!("sys/audit/{audit}"),
        Some(json!({"type": "file", "options": {"file_path": audit_file.to_str().unwrap(), "hmac_accessor": "false"}})),
    )
    .await;

    let source = VaultSource::new(&bao.addr).with_token(&token);
    let requests = vec![
        secret("app/db").with_mount(v2.clone()),
        secret("other/db").with_mount(v2.clone()),
        secret("app/none").with_mount(v2.clone()),
        secret("app/a").with_mount(v1.clone()),
        secret("app/none").with_mount(v1.clone()),
    ];
    let logs = CapturedLogs::default();
    let started = Instant::now();
    let probes = {
        let _guard = capture(&logs);
        source.preflight(requests.clone()).await
    };
    let took = started.elapsed();
    let bogus = VaultSource::new(&bao.addr)
        .with_token("s.bogus-token")
        .preflight(requests.clone())
        .await;
    let after_revocation = VaultSource::new(&bao.addr)
        .with_token(&revoked)
        .preflight(requests.clone())
        .await;
    // A preflight of 50 paths (one capabilities call, one lookup, 50 metadata reads).
    let many: Vec<FetchRequest> = (0..50)
        .map(|i| secret(&format!("app/s{i}")).with_mount(v2.clone()))
        .collect();
    let started = Instant::now();
    let fifty = source.preflight(many).await;
    let took_fifty = started.elapsed();
    eprintln!(
        "openbao preflight: 5 paths in {took:?}, 50 paths in {took_fifty:?} (one capabilities call, one lookup, a metadata read per path)"
    );
    let hash = audit_hash(&bao, &audit, &token).await;
    let entries: Vec<Value> = std::fs::read_to_string(&audit_file)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|e| e["type"] == "request")
        .collect();

    // Clean up before asserting.
    let _ = bao
        .request("DELETE", &format!("sys/audit/{audit}"), None, None)
        .await;
    let _ = std::fs::remove_file(&audit_file);
    for m in [&v2, &v1] {
        let _ = bao
            .request("DELETE", &format!("sys/mounts/{m}"), None, None)
            .await;
    }
    let _ = bao
        .request("DELETE", &format!("sys/policy/{policy}"), None, None)
        .await;
    let _ = bao
        .request(
            "POST",
            "auth/token/revoke",
            Some(json!({ "token": token })),
            None,
        )
        .await;

    assert_eq!(
        accesses(&probes),
        [
            Access::Readable,
            Access::Denied,
            Access::Missing,
            Access::Readable,
            Access::Missing
        ],
        "{probes:?}"
    );
    assert!(detail(&probes[0]).contains("token ttl "), "{probes:?}");
    assert!(detail(&probes[1]).contains(": deny"), "{probes:?}");
    assert!(
        bogus.iter().all(|p| p.access == Access::Unauthenticated),
        "{bogus:?}"
    );
    assert!(
        after_revocation
            .iter()
            .all(|p| p.access == Access::Unauthenticated),
        "{after_revocation:?}"
    );
    assert!(
        fifty.iter().all(|p| p.access == Access::Missing),
        "{fifty:?}"
    );
    let ours: Vec<&Value> = entries
        .iter()
        .filter(|e| e["request"]["client_token"].as_str() == Some(hash.as_str()))
        .collect();
    assert!(
        !ours.is_empty(),
        "the audit log has no request of the token"
    );
    let data_reads: Vec<String> = ours
        .iter()
        .filter(|e| {
            let path = e["request"]["path"].as_str().unwrap_or("");
            e["request"]["operation"] == "read"
                && (path.starts_with(&format!("{v2}/data/"))
                    || path
                        .trim_end_matches('/')
                        .starts_with(&format!("{v1}/app/")))
        })
        .map(|e| format!("{} {}", e["request"]["operation"], e["request"]["path"]))
        .collect();
    assert!(data_reads.is_empty(), "the preflight read {data_reads:?}");
    let capability_calls = ours
        .iter()
        .filter(|e| e["request"]["path"] == "sys/capabilities-self")
        .count();
    assert_eq!(capability_calls, 2, "one per preflight of the token");
    let text = logs.text();
    assert!(
        !text.contains(CANARY),
        "the secret value is in the TRACE log"
    );
    assert!(!text.contains(&token), "the token is in the TRACE log");
}

// ---------------------------------------------------------------------------------------
// Consul double

#[tokio::test]
async fn consul_double_with_acls_readable_missing_denied_unauthenticated() {
    const CANARY: &str = "pf-consul-canary-c0a1";
    let consul = ConsulDouble::builder()
        .acl_token_with_rules("reader", &[("app/", "read"), ("app/private/", "deny")])
        .start()
        .await;
    consul.put("app/port", CANARY);
    consul.put("app/private/key", CANARY);
    consul.put("other/key", CANARY);
    consul.put("app/features/dark", CANARY);
    let source = ConsulSource::new(consul.address()).with_token("reader");
    let logs = CapturedLogs::default();
    let probes = {
        let _guard = capture(&logs);
        source
            .preflight(vec![
                key("app/port"),
                key("app/none"),
                key("other/key"),
                key("app/private/key"),
                prefix("app/features/"),
                prefix("app/empty/"),
                key("app/port"),
            ])
            .await
    };
    assert_eq!(
        accesses(&probes),
        [
            Access::Readable,
            Access::Missing,
            Access::Denied,
            Access::Denied,
            Access::Readable,
            // An empty subtree: the field reads an empty map, as a fetch does.
            Access::Readable,
            Access::Readable,
        ],
        "{probes:?}"
    );
    assert!(detail(&probes[5]).contains("empty map"), "{probes:?}");
    // Two rounds of ONE transaction (the denied keys, then the others) and one listing
    // per prefix; no value was sent.
    assert_eq!(consul.requests_to("/v1/txn").len(), 2);
    assert!(
        consul
            .requests_to("/v1/kv/")
            .iter()
            .all(|r| r.query_param("keys").is_some()),
        "a preflight read a value"
    );
    assert!(!logs.text().contains(CANARY), "a value is in the TRACE log");

    // An unknown token; no token (the anonymous token may read nothing).
    let probes = ConsulSource::new(consul.address())
        .with_token("who-is-this")
        .preflight(vec![key("app/port"), prefix("app/features/")])
        .await;
    assert_eq!(
        accesses(&probes),
        [Access::Unauthenticated, Access::Unauthenticated],
        "{probes:?}"
    );
    let probes = ConsulSource::new(consul.address())
        .preflight(vec![key("app/port")])
        .await;
    assert_eq!(accesses(&probes), [Access::Denied], "{probes:?}");
    assert!(
        detail(&probes[0]).contains("CONSUL_HTTP_TOKEN"),
        "{probes:?}"
    );
}

#[tokio::test]
async fn consul_preflight_batches_64_keys_per_transaction_across_datacenters() {
    let consul = ConsulDouble::builder().datacenter("eu-1").start().await;
    consul.put("k/1", "x");
    consul.put_in("eu-1", "k/2", "y");
    let mut requests: Vec<FetchRequest> = (0..100).map(|i| key(&format!("k/n{i}"))).collect();
    requests.push(key("k/1"));
    requests.push(key("k/2").with_dc("eu-1".to_owned()));
    requests.push(key("k/1").with_dc("nowhere".to_owned()));
    let probes = ConsulSource::new(consul.address())
        .preflight(requests)
        .await;
    assert!(probes[..100].iter().all(|p| p.access == Access::Missing));
    assert_eq!(
        accesses(&probes[100..]),
        [Access::Readable, Access::Readable, Access::Invalid],
        "{:?}",
        &probes[100..]
    );
    // dc1: 101 keys in 2 transactions; eu-1 and the unknown dc one each.
    assert_eq!(consul.requests_to("/v1/txn").len(), 4);
}

#[tokio::test]
async fn an_unreachable_consul_is_unreachable_within_the_timeout() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let source =
        ConsulSource::new(format!("127.0.0.1:{port}")).with_timeout(Duration::from_secs(2));
    let started = Instant::now();
    let probes = source
        .preflight(vec![key("app/port"), prefix("app/")])
        .await;
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        accesses(&probes),
        [Access::Unreachable, Access::Unreachable],
        "{probes:?}"
    );
}

// ---------------------------------------------------------------------------------------
// End to end: `preflight_with` of derived structs.

#[derive(AsyncAssign, Debug)]
#[allow(dead_code)]
struct VaultApp {
    #[component(fetch_from = "vault", secret = "app/db", field = "password")]
    password: SecretString,
    #[component(fetch_from = "vault", secret = "other/db", field = "password")]
    other: SecretString,
    #[component(
        fetch_from = "vault",
        secret = "app/none",
        field = "token",
        fallback = "none"
    )]
    token: String,
}

#[tokio::test]
async fn preflight_with_reports_vault_fields_without_their_values() {
    const CANARY: &str = "pf-vault-e2e-canary-5d1e";
    let vault = VaultDouble::start().await;
    vault.put("secret", "app/db", json!({ "password": CANARY }));
    vault.put("secret", "other/db", json!({ "password": CANARY }));
    let token = vault.issue_scoped_token(
        Duration::from_secs(3600),
        &["secret/data/app/", "secret/metadata/app/"],
        true,
    );
    let sources =
        Sources::new().register("vault", VaultSource::new(vault.url()).with_token(&token));
    let logs = CapturedLogs::default();
    let report = {
        let _guard = capture(&logs);
        VaultApp::preflight_with(&sources).await
    };
    eprintln!("{report}");
    let row = |field: &str| {
        report
            .rows_of(field)
            .next()
            .unwrap_or_else(|| panic!("a row of {field}: {report}"))
    };
    let password = row("password");
    assert_eq!(password.access, Access::Readable, "{report}");
    assert_eq!(password.source, "vault");
    assert_eq!(password.key_label, "secret");
    assert_eq!(password.key.as_deref(), Some("secret/app/db"));
    assert!(
        password
            .detail
            .as_deref()
            .is_some_and(|d| d.contains("token ttl")),
        "{report}"
    );
    assert_eq!(row("other").access, Access::Denied, "{report}");
    assert_eq!(row("token").access, Access::Missing, "{report}");
    assert!(row("token").has_default);
    // The denied secret has no fallback: a fetch would fail.
    assert!(!report.is_ok(), "{report}");
    assert_eq!(report.problems().count(), 1, "{report}");
    let shown = format!("{report} {report:?}");
    assert!(
        !shown.contains(CANARY) && !shown.contains(&token),
        "{shown}"
    );
    let text = logs.text();
    assert!(
        !text.contains(CANARY),
        "the secret value is in the TRACE log"
    );
    assert!(!text.contains(&token), "the token is in the TRACE log");
    assert_eq!(vault.requests_to("/v1/secret/data/").len(), 0);
    // Both secrets of the struct in ONE capabilities call.
    assert_eq!(vault.requests_to("/v1/sys/capabilities-self").len(), 1);
}

#[derive(AsyncAssign, Debug)]
#[allow(dead_code)]
struct ConsulApp {
    #[component(fetch_from = "consul", key = "app/port")]
    port: u16,
    #[component(fetch_from = "consul", key = "app/mode", fallback = "normal")]
    mode: String,
    #[component(fetch_from = "consul", key = "other/key")]
    other: String,
    #[component(fetch_from = "consul", prefix = "app/features/")]
    features: HashMap<String, String>,
}

#[tokio::test]
async fn preflight_with_reports_consul_fields_without_their_values() {
    const CANARY: &str = "pf-consul-e2e-canary-22b7";
    let consul = ConsulDouble::builder()
        .acl_token_with_rules("reader", &[("app/", "read")])
        .start()
        .await;
    consul.put("app/port", "8080");
    consul.put("other/key", CANARY);
    consul.put("app/features/dark", CANARY);
    let sources = Sources::new().register(
        "consul",
        ConsulSource::new(consul.address()).with_token("reader"),
    );
    let logs = CapturedLogs::default();
    let report = {
        let _guard = capture(&logs);
        ConsulApp::preflight_with(&sources).await
    };
    eprintln!("{report}");
    let row = |field: &str| {
        report
            .rows_of(field)
            .next()
            .unwrap_or_else(|| panic!("a row of {field}: {report}"))
    };
    let port = row("port");
    assert_eq!(port.access, Access::Readable, "{report}");
    assert_eq!(port.source, "consul");
    assert_eq!(port.key.as_deref(), Some("app/port"));
    assert_eq!(row("mode").access, Access::Missing, "{report}");
    assert_eq!(row("other").access, Access::Denied, "{report}");
    assert_eq!(row("features").access, Access::Readable, "{report}");
    assert!(!report.is_ok(), "{report}");
    assert_eq!(report.problems().count(), 1, "{report}");
    let shown = format!("{report} {report:?}");
    assert!(
        !shown.contains(CANARY) && !shown.contains("reader"),
        "{shown}"
    );
    assert!(!logs.text().contains(CANARY), "a value is in the TRACE log");
    // The three keys in one transaction (then the two allowed ones again), the prefix
    // as a listing of names: no value was sent.
    assert_eq!(consul.requests_to("/v1/txn").len(), 2);
    assert!(
        consul
            .requests_to("/v1/kv/")
            .iter()
            .all(|r| r.query_param("keys").is_some())
    );
}
