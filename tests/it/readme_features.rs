//! README promises that no other test pinned (issue 37): Redis TLS without verification
//! (`rediss://...#insecure`, `REDIS_SKIP_VERIFY=true`), `VAULT_AUTH_MOUNT`, and the
//! `component_model_shared_cache_hits_total` metric. (The push-stream ones are in
//! `tests/streams/readme_features.rs`; `#[component(crate = path)]` in
//! `tests/ui/pass/async-crate-path.rs`.)

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use component_model::secrecy::ExposeSecret;
use component_model::test_util::{ConsulDouble, VaultDouble};
use component_model::{
    AsyncAssign, ConsulSource, EnvSource, ErrorKind, RedisSource, SecretString, SourceError,
    Sources,
};
use component_model_tests::tls::Issued;
use component_model_tests::{CapturedLogs, capture, skip, unique};
use serde_json::json;

// ---------------------------------------------------------------------------------------
// 3. Redis over TLS with verification off: `rediss://...#insecure`, `REDIS_SKIP_VERIFY=true`
//    (README, Running in production, the TLS table).

/// A self-signed certificate for `localhost`, written to a directory of the test's own.
fn self_signed(dir: &std::path::Path) -> Issued {
    let key = rcgen::KeyPair::generate().unwrap();
    let params = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
    let cert = params.self_signed(&key).unwrap();
    std::fs::create_dir_all(dir).unwrap();
    let (cert_file, key_file) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert_file, cert.pem()).unwrap();
    std::fs::write(&key_file, key.serialize_pem()).unwrap();
    Issued {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
        cert_file,
        key_file,
    }
}

#[derive(AsyncAssign, Debug)]
#[allow(dead_code)]
struct TlsCached {
    #[component(fetch_from = "redis", key = "${CM_REDIS_KEY}")]
    port: u16,
}

#[tokio::test]
async fn redis_tls_with_a_self_signed_certificate_works_only_with_insecure_or_redis_skip_verify() {
    let upstream: SocketAddr = "127.0.0.1:6379".parse().unwrap();
    let client = redis::Client::open("redis://127.0.0.1:6379").unwrap();
    let mut conn = match tokio::time::timeout(
        Duration::from_secs(5),
        client.get_multiplexed_async_connection(),
    )
    .await
    {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => return skip("Redis at 127.0.0.1:6379", e),
        Err(_) => return skip("Redis at 127.0.0.1:6379", "no answer within 5s"),
    };
    let key = unique("cm:readme:tls");
    let _: () = redis::AsyncCommands::set(&mut conn, &key, "6390")
        .await
        .unwrap();
    let dir = std::env::temp_dir().join(unique("cm_readme_tls"));
    let front = component_model_tests::tls::tls_front(upstream, &self_signed(&dir), None).await;
    let url = format!("rediss://localhost:{}", front.port());
    let env = |vars: &[(&str, &str)]| {
        let mut all = vec![
            ("REDIS_URL".to_owned(), url.clone()),
            ("CM_REDIS_KEY".to_owned(), key.clone()),
        ];
        all.extend(vars.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        Sources::from_env_source(EnvSource::from_map(all))
    };

    // Verification on (the default, and REDIS_SKIP_VERIFY=false): refused.
    for sources in [env(&[]), env(&[("REDIS_SKIP_VERIFY", "false")])] {
        let errors = TlsCached::fetch_all_components_with(&sources)
            .await
            .unwrap_err();
        let e = errors[0].to_string();
        assert!(
            e.contains("not signed by a CA") && e.contains(&url),
            "verification must refuse a self-signed certificate: {e}"
        );
    }

    // `#insecure` in REDIS_URL, REDIS_SKIP_VERIFY=true, `#insecure` in code: read, with a
    // warning that verification is off.
    let logs = CapturedLogs::default();
    let _guard = capture(&logs);
    let insecure = Sources::from_env_source(EnvSource::from_map([
        ("REDIS_URL", format!("{url}#insecure")),
        ("CM_REDIS_KEY", key.clone()),
    ]));
    let in_code = Sources::new()
        .with_env(EnvSource::from_map([("CM_REDIS_KEY", key.as_str())]))
        .register("redis", RedisSource::new(format!("{url}#insecure")));
    for (what, sources) in [
        ("#insecure", insecure),
        (
            "REDIS_SKIP_VERIFY=true",
            env(&[("REDIS_SKIP_VERIFY", "true")]),
        ),
        ("RedisSource::new(\"rediss://...#insecure\")", in_code),
    ] {
        let got = TlsCached::fetch_all_components_with(&sources).await;
        assert_eq!(got.map(|c| c.port).ok(), Some(6390), "{what}");
    }
    let text = logs.text();
    assert!(
        text.contains("WARN") && text.contains("TLS verification is OFF for this redis source"),
        "{text}"
    );
    let _: () = redis::AsyncCommands::del(&mut conn, &key).await.unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

// ---------------------------------------------------------------------------------------
// 4. `VAULT_AUTH_MOUNT` names a non-default auth mount (README, Vault credentials).

#[derive(AsyncAssign, Debug)]
struct MountSecret {
    #[component(fetch_from = "vault", secret = "${CM_PREFIX}/db", field = "password")]
    password: SecretString,
}

#[tokio::test]
async fn vault_auth_mount_sends_the_approle_login_to_the_named_mount() {
    // Against the double (which serves AppRole at `approle` only): the login goes where
    // VAULT_AUTH_MOUNT says, never to the default mount.
    let vault = VaultDouble::builder()
        .approle("role-1", "secret-1")
        .start()
        .await;
    vault.put("secret", "mnt/db", json!({"password": "pw"}));
    let sources = |mount: Option<&str>| {
        let mut vars = vec![
            ("VAULT_ADDR".to_owned(), vault.url()),
            ("VAULT_ROLE_ID".to_owned(), "role-1".to_owned()),
            ("VAULT_SECRET_ID".to_owned(), "secret-1".to_owned()),
            ("CM_PREFIX".to_owned(), "mnt".to_owned()),
        ];
        if let Some(m) = mount {
            vars.push(("VAULT_AUTH_MOUNT".to_owned(), m.to_owned()));
        }
        Sources::from_env_source(EnvSource::from_map(vars))
    };
    let got = MountSecret::fetch_all_components_with(&sources(None))
        .await
        .unwrap();
    assert_eq!(got.password.expose_secret(), "pw");
    assert_eq!(vault.requests_to("/v1/auth/approle/login").len(), 1);

    vault.clear_requests();
    let errors = MountSecret::fetch_all_components_with(&sources(Some("apps/approle")))
        .await
        .unwrap_err();
    assert!(
        !vault.requests_to("/v1/auth/apps/approle/login").is_empty(),
        "{:?}",
        vault.requests()
    );
    assert!(
        vault.requests_to("/v1/auth/approle/login").is_empty(),
        "{errors:?}"
    );
}

#[tokio::test]
async fn vault_auth_mount_logs_in_with_approle_at_a_custom_mount_of_openbao() {
    let Some(bao) = crate::openbao::bao().await else {
        return;
    };
    let prefix = unique("mount");
    let mount = format!("custom/{}", unique("approle").replace('_', "-"));
    let policy = unique("readme-mount");
    bao.ok(
        "PUT",
        &format!("sys/policy/{policy}"),
        Some(json!({
            "policy": format!("path \"secret/data/{prefix}/*\" {{ capabilities = [\"read\"] }}")
        })),
    )
    .await;
    bao.ok(
        "POST",
        &format!("secret/data/{prefix}/db"),
        Some(json!({"data": {"password": "from-custom-mount"}})),
    )
    .await;
    bao.ok(
        "POST",
        &format!("sys/auth/{mount}"),
        Some(json!({"type": "approle"})),
    )
    .await;
    bao.ok(
        "POST",
        &format!("auth/{mount}/role/app"),
        Some(json!({"token_policies": [policy], "token_ttl": "1h"})),
    )
    .await;
    let role_id = bao
        .ok("GET", &format!("auth/{mount}/role/app/role-id"), None)
        .await["data"]["role_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let secret_id = bao
        .ok("POST", &format!("auth/{mount}/role/app/secret-id"), None)
        .await["data"]["secret_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let sources = |mount: Option<&str>| {
        let mut vars = vec![
            ("VAULT_ADDR", bao.addr.clone()),
            ("VAULT_ROLE_ID", role_id.clone()),
            ("VAULT_SECRET_ID", secret_id.clone()),
            ("CM_PREFIX", prefix.clone()),
        ];
        if let Some(m) = mount {
            vars.push(("VAULT_AUTH_MOUNT", m.to_owned()));
        }
        Sources::from_env_source(EnvSource::from_map(vars))
    };

    let got = MountSecret::fetch_all_components_with(&sources(Some(&mount))).await;
    // Without it, the login goes to `auth/approle`, which does not know this role.
    let without = MountSecret::fetch_all_components_with(&sources(None)).await;

    let _ = bao
        .request("DELETE", &format!("sys/auth/{mount}"), None, None)
        .await;
    let _ = bao
        .request("DELETE", &format!("sys/policy/{policy}"), None, None)
        .await;
    let _ = bao
        .request(
            "DELETE",
            &format!("secret/metadata/{prefix}/db"),
            None,
            None,
        )
        .await;
    let got = got.unwrap();
    assert_eq!(got.password.expose_secret(), "from-custom-mount");
    let errors = without.unwrap_err();
    assert!(
        errors
            .iter()
            .all(|e| matches!(e.kind(), ErrorKind::Unauthorized | ErrorKind::NotFound)),
        "{errors:?}"
    );
}

// ---------------------------------------------------------------------------------------
// 8. `component_model_shared_cache_hits_total` (README, Metrics).

/// A shared tier in memory (another process's Redis, for the test).
#[derive(Clone, Default)]
struct MemoryTier {
    values: Arc<Mutex<HashMap<String, Vec<u8>>>>,
    locks: Arc<Mutex<HashMap<String, ()>>>,
}

#[component_model::async_trait]
impl component_model::resilience::CacheTier for MemoryTier {
    async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>, SourceError> {
        let values = self.values.lock().unwrap();
        Ok(keys.iter().map(|k| values.get(k).cloned()).collect())
    }
    async fn put_many(
        &self,
        entries: &[(String, Vec<u8>)],
        _ttl: Duration,
    ) -> Result<(), SourceError> {
        let mut values = self.values.lock().unwrap();
        for (k, v) in entries {
            values.insert(k.clone(), v.clone());
        }
        Ok(())
    }
    async fn lock_many(&self, keys: &[String], _ttl: Duration) -> Result<Vec<bool>, SourceError> {
        let mut locks = self.locks.lock().unwrap();
        Ok(keys
            .iter()
            .map(|k| locks.insert(k.clone(), ()).is_none())
            .collect())
    }
    async fn unlock_many(&self, keys: &[String]) -> Result<(), SourceError> {
        let mut locks = self.locks.lock().unwrap();
        for k in keys {
            locks.remove(k);
        }
        Ok(())
    }
}

#[derive(AsyncAssign, Debug)]
struct SharedCached {
    #[component(fetch_from = "consul", key = "shared/port", cache_for = "1m")]
    port: u16,
}

/// Counter values by (name, `source` label) — one snapshot (taking one clears them).
fn counters(
    recorder: &metrics_util::debugging::DebuggingRecorder,
) -> HashMap<(String, String), u64> {
    let mut out = HashMap::new();
    for (key, _, _, value) in recorder.snapshotter().snapshot().into_vec() {
        let source = key
            .key()
            .labels()
            .find(|l| l.key() == "source")
            .map(|l| l.value().to_owned())
            .unwrap_or_default();
        if let metrics_util::debugging::DebugValue::Counter(n) = value {
            *out.entry((key.key().name().to_owned(), source))
                .or_default() += n;
        }
    }
    out
}

#[test]
fn shared_cache_hits_are_counted_per_source_when_the_shared_tier_answers() {
    let recorder = metrics_util::debugging::DebuggingRecorder::new();
    let upstream = metrics::with_local_recorder(&recorder, || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(async {
                let consul = ConsulDouble::start().await;
                consul.put("shared/port", "8080");
                let tier = MemoryTier::default();
                // Two instances (their own `Sources`, so their own memory), one tier.
                let instance = || {
                    Sources::new()
                        .register("consul", ConsulSource::new(consul.url()))
                        .with_shared_cache(tier.clone())
                };
                let first = instance();
                let got = SharedCached::fetch_all_components_with(&first)
                    .await
                    .unwrap();
                assert_eq!(got.port, 8080);
                let after_first = consul.requests().len();
                // The second instance: its memory misses, the tier answers.
                let second = instance();
                let got = SharedCached::fetch_all_components_with(&second)
                    .await
                    .unwrap();
                assert_eq!(got.port, 8080);
                // Again: its own memory answers now, not the tier.
                SharedCached::fetch_all_components_with(&second)
                    .await
                    .unwrap();
                (after_first, consul.requests().len())
            })
    });
    let m = counters(&recorder);
    let get = |name: &str| {
        m.get(&(name.to_owned(), "consul".to_owned()))
            .copied()
            .unwrap_or(0)
    };
    let shared = get("component_model_shared_cache_hits_total");
    let hits = get("component_model_cache_hits_total");
    let misses = get("component_model_cache_misses_total");
    assert_eq!(
        shared, 1,
        "one read answered by the shared tier (upstream requests {upstream:?}): {m:?}"
    );
    assert_eq!(
        upstream.0, upstream.1,
        "the second instance asked Consul nothing"
    );
    assert_eq!(
        (misses, hits),
        (2, 1),
        "memory: two misses, then a hit: {m:?}"
    );
}
