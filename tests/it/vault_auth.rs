//! Vault logins from the environment: AppRole (secret id as a value or a file),
//! Kubernetes (service-account JWT file), a token file (Vault Agent's sink); the token is
//! looked up, renewed at 2/3 of its TTL by a task that ends with the source, and obtained
//! again when renewal fails or Vault revokes it; a path denied by policy is reported
//! without a new login; a token that may not look itself up is used as is. Against the
//! Vault double's login, lookup-self, renew-self and revoke-self endpoints and its
//! policies (the same rules against OpenBao: `openbao.rs`).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use component_model::secrecy::ExposeSecret;
use component_model::test_util::VaultDouble;
use component_model::{AsyncAssign, EnvSource, ErrorKind, SecretString, Sources, VaultSource};
use component_model_tests::{CapturedLogs, capture, unique};

#[derive(AsyncAssign, Debug)]
#[allow(dead_code)]
struct Secrets {
    #[component(fetch_from = "vault", secret = "app/db", field = "password")]
    password: SecretString,
}

#[derive(AsyncAssign, Debug)]
#[allow(dead_code)]
struct Other {
    #[component(fetch_from = "vault", secret = "other/db", field = "password")]
    password: SecretString,
}

const ROLE_ID: &str = "5f1c-role-id";
const SECRET_ID: &str = "CANARY-secret-id";
const JWT: &str = "CANARY.jwt.token";

async fn vault(ttl: Duration, max_ttl: Duration) -> VaultDouble {
    let vault = VaultDouble::builder()
        .approle(ROLE_ID, SECRET_ID)
        .kubernetes("app", JWT)
        .token_ttl(ttl)
        .token_max_ttl(max_ttl)
        .start()
        .await;
    vault.put("secret", "app/db", serde_json::json!({"password": "pw-1"}));
    vault
}

fn env_sources(vault: &VaultDouble, vars: &[(&str, &str)]) -> Sources {
    let mut all = vec![("VAULT_ADDR".to_owned(), vault.url())];
    all.extend(vars.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    Sources::from_env_source(EnvSource::from_map(all))
}

fn secret_file(content: &str) -> PathBuf {
    let path = std::env::temp_dir().join(unique("cm_vault_cred"));
    std::fs::write(&path, content).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    path
}

#[tokio::test]
async fn approle_from_the_environment_logs_in_once_for_many_fetches() {
    let vault = vault(Duration::from_secs(3600), Duration::from_secs(7200)).await;
    let sources = env_sources(
        &vault,
        &[("VAULT_ROLE_ID", ROLE_ID), ("VAULT_SECRET_ID", SECRET_ID)],
    );
    for _ in 0..3 {
        let s = Secrets::fetch_all_components_with(&sources).await.unwrap();
        assert_eq!(s.password.expose_secret(), "pw-1");
    }
    assert_eq!(vault.requests_to("/v1/auth/approle/login").len(), 1);
    // The secret id went in the login body, never as a token.
    let login = &vault.requests_to("/v1/auth/approle/login")[0];
    assert!(login.header("x-vault-token").is_none());

    // From a file (trimmed), at each login.
    let file = secret_file(&format!("{SECRET_ID}\n"));
    let sources = env_sources(
        &vault,
        &[
            ("VAULT_ROLE_ID", ROLE_ID),
            ("VAULT_SECRET_ID_FILE", file.to_str().unwrap()),
        ],
    );
    let s = Secrets::fetch_all_components_with(&sources).await.unwrap();
    assert_eq!(s.password.expose_secret(), "pw-1");
    let _ = std::fs::remove_file(file);
}

#[tokio::test]
async fn a_refused_login_is_unauthorized_names_the_field_and_never_shows_the_secret_id() {
    let vault = vault(Duration::from_secs(3600), Duration::from_secs(7200)).await;
    let logs = CapturedLogs::default();
    let _guard = capture(&logs);
    let sources = env_sources(
        &vault,
        &[
            ("VAULT_ROLE_ID", ROLE_ID),
            ("VAULT_SECRET_ID", "CANARY-wrong-secret"),
        ],
    );
    let errors = Secrets::fetch_all_components_with(&sources)
        .await
        .unwrap_err();
    assert_eq!(errors.len(), 1);
    let text = errors[0].to_string();
    assert_eq!(errors[0].kind(), ErrorKind::Unauthorized, "{text}");
    assert!(text.contains("Secrets.password"), "{text}");
    assert!(text.contains("AppRole login"), "{text}");
    let everything = format!("{text} {errors:?} {sources:?} {}", logs.text());
    assert!(
        !everything.contains("CANARY"),
        "a credential leaked: {everything}"
    );

    // A role id without a secret id: a config error naming the variables.
    let sources = sources_without_secret(&vault);
    let errors = Secrets::fetch_all_components_with(&sources)
        .await
        .unwrap_err();
    assert_eq!(errors[0].kind(), ErrorKind::Config);
    assert!(
        errors[0].to_string().contains("VAULT_SECRET_ID"),
        "{}",
        errors[0]
    );
}

/// Waits (at most `within`) until Vault has had `n` requests to renew a token; how many
/// it had then. Renewals run on real time (Vault's clock is the real one): polled, not
/// timed, so a busy machine delays the answer instead of failing the test.
async fn renewals(vault: &VaultDouble, n: usize, within: Duration) -> usize {
    let deadline = Instant::now() + within;
    loop {
        let got = vault.requests_to("/v1/auth/token/renew-self").len();
        if got >= n || Instant::now() >= deadline {
            return got;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Sleeps until `at` (at once when it has passed).
async fn sleep_until(at: Instant) {
    tokio::time::sleep_until(at.into()).await;
}

fn sources_without_secret(vault: &VaultDouble) -> Sources {
    env_sources(vault, &[("VAULT_ROLE_ID", ROLE_ID)])
}

#[tokio::test]
async fn kubernetes_login_reads_the_service_account_token_file() {
    let vault = vault(Duration::from_secs(3600), Duration::from_secs(7200)).await;
    let jwt = secret_file(JWT);
    let sources = env_sources(
        &vault,
        &[
            ("VAULT_K8S_ROLE", "app"),
            ("VAULT_K8S_JWT_PATH", jwt.to_str().unwrap()),
        ],
    );
    let s = Secrets::fetch_all_components_with(&sources).await.unwrap();
    assert_eq!(s.password.expose_secret(), "pw-1");
    assert_eq!(vault.requests_to("/v1/auth/kubernetes/login").len(), 1);

    std::fs::write(&jwt, "CANARY-not-the-jwt").unwrap();
    let vault2 = vault_with_role_only().await;
    let sources = env_sources(
        &vault2,
        &[
            ("VAULT_K8S_ROLE", "app"),
            ("VAULT_K8S_JWT_PATH", jwt.to_str().unwrap()),
        ],
    );
    let errors = Secrets::fetch_all_components_with(&sources)
        .await
        .unwrap_err();
    assert_eq!(errors[0].kind(), ErrorKind::Unauthorized, "{}", errors[0]);
    assert!(!errors[0].to_string().contains("CANARY"));
    let _ = std::fs::remove_file(jwt);
}

async fn vault_with_role_only() -> VaultDouble {
    vault(Duration::from_secs(3600), Duration::from_secs(7200)).await
}

#[tokio::test]
async fn a_token_file_is_looked_up_renewed_at_two_thirds_of_its_ttl_and_read_again_when_revoked() {
    let vault = vault(Duration::from_secs(3600), Duration::from_secs(7200)).await;
    let issued = Instant::now();
    let token = vault.issue_token(Duration::from_secs(3), true);
    let file = secret_file(&format!("{token}\n"));
    let sources = env_sources(&vault, &[("VAULT_TOKEN_FILE", file.to_str().unwrap())]);
    let s = Secrets::fetch_all_components_with(&sources).await.unwrap();
    assert_eq!(s.password.expose_secret(), "pw-1");
    assert_eq!(vault.requests_to("/v1/auth/token/lookup-self").len(), 1);
    assert!(vault.requests_to("/v1/auth/token/renew-self").is_empty());

    // Its lookup says 2 s left (3 s, rounded down): the background task renews it at 2/3
    // of that, not before, then every 2 s (3 s granted): one renewal when the first is
    // seen, with no fetch asking for it.
    let got = renewals(&vault, 1, Duration::from_secs(10)).await;
    let at = issued.elapsed();
    assert_eq!(got, 1, "renewals {at:?} after the token was issued");
    assert!(at >= Duration::from_secs(1), "renewed after only {at:?}");
    // Past the 3 s the token was issued for: renewed, it never expired.
    sleep_until(issued + Duration::from_millis(3600)).await;
    let s = Secrets::fetch_all_components_with(&sources).await.unwrap();
    assert_eq!(
        s.password.expose_secret(),
        "pw-1",
        "{:?} after a 3 s token",
        issued.elapsed()
    );

    // Revoked (and the agent wrote a new one): the read's 403 makes the source read the
    // file again, and the fetch succeeds.
    vault.revoke_token(&token);
    let next = vault.issue_token(Duration::from_secs(3600), true);
    std::fs::write(&file, &next).unwrap();
    let s = Secrets::fetch_all_components_with(&sources).await.unwrap();
    assert_eq!(s.password.expose_secret(), "pw-1");
    assert_eq!(vault.requests_to("/v1/auth/token/lookup-self").len(), 2);
    let _ = std::fs::remove_file(file);
}

#[tokio::test]
async fn a_token_at_its_max_ttl_is_obtained_again_by_login_and_renewal_stops_with_the_source() {
    // Tokens of 3 s that cannot live past 4 s: one renewal (at 2 s, capped to 2 s more),
    // then renewal cannot extend it and the source logs in again.
    let vault = vault(Duration::from_secs(3), Duration::from_secs(4)).await;
    let vault_source = VaultSource::new(vault.url()).with_approle(ROLE_ID, SECRET_ID);
    let sources = Sources::new().register("vault", vault_source.clone());
    Secrets::fetch_all_components_with(&sources).await.unwrap();
    assert_eq!(vault_source.logins(), 1);
    tokio::time::sleep(Duration::from_millis(5500)).await;
    assert!(
        !vault.requests_to("/v1/auth/token/renew-self").is_empty(),
        "{:?}",
        vault.requests()
    );
    assert!(
        vault_source.logins() >= 2,
        "logged in again: {}",
        vault_source.logins()
    );
    let s = Secrets::fetch_all_components_with(&sources).await.unwrap();
    assert_eq!(s.password.expose_secret(), "pw-1");

    // The token given up at its max TTL was revoked (it was still alive).
    let revoked = vault.requests_to("/v1/auth/token/revoke-self").len();
    assert!(revoked >= 1, "{:?}", vault.requests());

    // Dropped: the current token revoked, then no more renewals.
    drop(sources);
    drop(vault_source);
    // Revoked by a task of its own: waited for (a busy machine delays it), then counted.
    let deadline = Instant::now() + Duration::from_secs(5);
    while vault.requests_to("/v1/auth/token/revoke-self").len() <= revoked
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        vault.requests_to("/v1/auth/token/revoke-self").len(),
        revoked + 1,
        "{:?}",
        vault.requests()
    );
    let before = vault.requests().len();
    tokio::time::sleep(Duration::from_millis(3000)).await;
    assert_eq!(vault.requests().len(), before, "{:?}", vault.requests());
}

#[tokio::test]
async fn a_token_with_time_left_is_kept_when_renewal_and_a_new_token_both_fail() {
    // A 4 s token that cannot be extended (max TTL 4 s), from a file that is then gone.
    // Its lookup says 3 s (Vault rounds down): at 2 s renewal cannot extend it and the
    // file cannot be read again, yet the token has time left, so a fetch after that
    // renewal (and before 4 s) still succeeds with it.
    let vault = VaultDouble::builder()
        .token_max_ttl(Duration::from_secs(4))
        .start()
        .await;
    vault.put("secret", "app/db", serde_json::json!({"password": "pw-1"}));
    let issued = Instant::now();
    let token = vault.issue_token(Duration::from_secs(4), true);
    let file = secret_file(&token);
    let sources = env_sources(&vault, &[("VAULT_TOKEN_FILE", file.to_str().unwrap())]);
    Secrets::fetch_all_components_with(&sources).await.unwrap();
    std::fs::remove_file(&file).unwrap();
    let got = renewals(&vault, 1, Duration::from_secs(10)).await;
    assert!(
        got >= 1,
        "no renewal {:?} after the token was issued",
        issued.elapsed()
    );
    // The renewal's answer handled (it could not extend; the file is gone).
    tokio::time::sleep(Duration::from_millis(200)).await;
    let s = Secrets::fetch_all_components_with(&sources).await;
    let at = issued.elapsed();
    assert!(at < Duration::from_secs(4), "too late to test: {at:?}");
    assert_eq!(s.unwrap().password.expose_secret(), "pw-1", "{at:?}");
    // Once it has expired (4 s after it was issued), the failure is reported, naming the
    // file.
    sleep_until(issued + Duration::from_millis(4500)).await;
    let errors = Secrets::fetch_all_components_with(&sources)
        .await
        .unwrap_err();
    assert!(
        errors[0].to_string().contains("token file"),
        "{}",
        errors[0]
    );
}

#[tokio::test]
async fn a_policy_denied_path_is_reported_without_a_new_login_and_a_revoked_token_replaced_once() {
    let vault = VaultDouble::builder()
        .approle(ROLE_ID, SECRET_ID)
        .login_policy(&["secret/data/app/"], true)
        .start()
        .await;
    vault.put("secret", "app/db", serde_json::json!({"password": "pw-1"}));
    vault.put(
        "secret",
        "other/db",
        serde_json::json!({"password": "pw-no"}),
    );
    let logs = CapturedLogs::default();
    let _guard = capture(&logs);
    let source = VaultSource::new(vault.url()).with_approle(ROLE_ID, SECRET_ID);
    let sources = Sources::new().register("vault", source.clone());
    let mut shown = String::new();
    for _ in 0..3 {
        let errors = Other::fetch_all_components_with(&sources)
            .await
            .unwrap_err();
        let text = errors[0].to_string();
        shown.push_str(&format!("{text} {errors:?}"));
        assert_eq!(errors[0].kind(), ErrorKind::Unauthorized, "{text}");
        assert!(text.starts_with("Other.password: vault"), "{text}");
        assert!(text.contains("secret/other/db"), "{text}");
        assert!(text.contains("denied by policy"), "{text}");
    }
    // Before: 4 logins and 6 reads. Now: one login, one read and one lookup per fetch.
    assert_eq!(vault.logins(), 1);
    assert_eq!(vault.requests_to("/v1/secret/data/other/db").len(), 3);
    assert_eq!(vault.requests_to("/v1/auth/token/lookup-self").len(), 3);

    // Revoked behind the source's back: lookup-self is refused too, so the token is bad:
    // one new login, and the read succeeds.
    let s = Secrets::fetch_all_components_with(&sources).await.unwrap();
    assert_eq!(s.password.expose_secret(), "pw-1");
    let used = vault.requests_to("/v1/secret/data/app/db")[0]
        .header("x-vault-token")
        .unwrap()
        .to_owned();
    vault.revoke_token(&used);
    let s = Secrets::fetch_all_components_with(&sources).await.unwrap();
    assert_eq!(s.password.expose_secret(), "pw-1");
    assert_eq!((vault.logins(), source.logins()), (2, 2));
    assert_eq!(vault.requests_to("/v1/auth/token/lookup-self").len(), 4);
    // Neither the secret id nor a token in errors or logs (TRACE, every target).
    assert!(
        logs.text().contains("may no longer look itself up"),
        "the re-login is logged: {}",
        logs.text()
    );
    let everything = format!("{shown} {source:?} {}", logs.text());
    assert!(!everything.contains("CANARY"), "{everything}");
    assert!(!everything.contains(&used), "a token leaked: {everything}");
    assert!(!everything.contains("pw-no"), "{everything}");
}

#[tokio::test]
async fn a_token_file_token_that_may_not_look_itself_up_is_used_as_is() {
    let vault = vault(Duration::from_secs(3600), Duration::from_secs(7200)).await;
    vault.put(
        "secret",
        "other/db",
        serde_json::json!({"password": "pw-no"}),
    );
    // `vault token create -policy=app -no-default-policy`.
    let token = vault.issue_scoped_token(Duration::from_secs(3600), &["secret/data/app/"], false);
    let file = secret_file(&token);
    let sources = env_sources(&vault, &[("VAULT_TOKEN_FILE", file.to_str().unwrap())]);
    // Before: "the token file … failed: HTTP 403 Forbidden from vault for lookup-self".
    let s = Secrets::fetch_all_components_with(&sources).await.unwrap();
    assert_eq!(s.password.expose_secret(), "pw-1");
    assert_eq!(vault.requests_to("/v1/auth/token/lookup-self").len(), 1);

    // A denied path: the same token in the file, and it cannot be told from a revoked
    // one: the denial is reported, once.
    let errors = Other::fetch_all_components_with(&sources)
        .await
        .unwrap_err();
    let text = errors[0].to_string();
    assert_eq!(errors[0].kind(), ErrorKind::Unauthorized, "{text}");
    assert!(text.contains("may not look itself up"), "{text}");
    assert_eq!(vault.requests_to("/v1/secret/data/other/db").len(), 1);

    // Revoked, and a new token in the file: the refused read reads the file again.
    vault.revoke_token(&token);
    let next = vault.issue_scoped_token(Duration::from_secs(3600), &["secret/data/app/"], false);
    std::fs::write(&file, &next).unwrap();
    let s = Secrets::fetch_all_components_with(&sources).await.unwrap();
    assert_eq!(s.password.expose_secret(), "pw-1");
    // Neither renewed nor revoked by the source: the agent's tokens.
    assert!(vault.requests_to("/v1/auth/token/renew-self").is_empty());
    assert!(vault.requests_to("/v1/auth/token/revoke-self").is_empty());
    let _ = std::fs::remove_file(file);
}

#[tokio::test]
async fn a_default_policy_without_lookup_self_costs_one_extra_login_and_every_token_given_up_is_revoked()
 {
    // The `default` policy edited not to allow `lookup-self`: the login's token lists
    // `default`, yet its lookup is refused, exactly as a revoked token's would be.
    let vault = VaultDouble::builder()
        .approle(ROLE_ID, SECRET_ID)
        .login_policy(&["secret/data/app/"], true)
        .default_policy_without_lookup_self()
        .start()
        .await;
    vault.put("secret", "app/db", serde_json::json!({"password": "pw-1"}));
    vault.put(
        "secret",
        "other/db",
        serde_json::json!({"password": "pw-no"}),
    );
    let source = VaultSource::new(vault.url()).with_approle(ROLE_ID, SECRET_ID);
    let sources = Sources::new().register("vault", source.clone());
    for _ in 0..3 {
        let errors = Other::fetch_all_components_with(&sources)
            .await
            .unwrap_err();
        assert_eq!(errors[0].kind(), ErrorKind::Unauthorized, "{}", errors[0]);
    }
    // Before: a login, a lookup-self and two reads per fetch (4 logins, 6 reads, 3
    // lookups), and no token given up revoked. Now: the first token is presumed bad once
    // (one extra login), its replacement refused too is taken as one that may not look
    // itself up: one read and one lookup per later fetch.
    let reads = vault.requests_to("/v1/secret/data/other/db");
    assert_eq!(vault.logins(), 2, "{:?}", vault.requests());
    assert_eq!(reads.len(), 4);
    assert_eq!(vault.requests_to("/v1/auth/token/lookup-self").len(), 3);
    // The allowed path still reads with the current token, no new login.
    let s = Secrets::fetch_all_components_with(&sources).await.unwrap();
    assert_eq!(s.password.expose_secret(), "pw-1");
    assert_eq!(vault.logins(), 2);

    // Every token sent but the current one was revoked (in the background).
    let mut tokens: Vec<String> = Vec::new();
    for r in &reads {
        let t = r.header("x-vault-token").unwrap().to_owned();
        if !tokens.contains(&t) {
            tokens.push(t);
        }
    }
    assert_eq!(tokens.len(), 2);
    let revoked = || {
        vault
            .requests_to("/v1/auth/token/revoke-self")
            .iter()
            .filter_map(|r| r.header("x-vault-token").map(str::to_owned))
            .collect::<Vec<_>>()
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !revoked().contains(&tokens[0]) && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(revoked(), vec![tokens[0].clone()]);
    // And the current one when the source is dropped.
    drop(sources);
    drop(source);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while revoked().len() < 2 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(revoked(), tokens);
}

#[tokio::test]
async fn a_fetch_does_not_wait_for_the_revocation_of_a_token_given_up() {
    // Tokens of 4 s that cannot live longer: at 2.7 s renewal cannot extend one (1 s
    // left), so the renewal task logs in again and gives the old token up, and Vault
    // takes 2 s to answer that revoke-self.
    let vault = vault(Duration::from_secs(4), Duration::from_secs(4)).await;
    vault.delay("/v1/auth/token/revoke-self", Duration::from_secs(2));
    let source = VaultSource::new(vault.url()).with_approle(ROLE_ID, SECRET_ID);
    let sources = Sources::new().register("vault", source.clone());
    Secrets::fetch_all_components_with(&sources).await.unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while source.logins() < 2 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(source.logins(), 2);
    // Before: the new token was stored only after the revocation answered, under the
    // lock every fetch takes, so this fetch waited about 2 s.
    let started = std::time::Instant::now();
    let s = Secrets::fetch_all_components_with(&sources).await.unwrap();
    let took = started.elapsed();
    eprintln!("a fetch while a revoke-self takes 2 s: {took:?}");
    assert_eq!(s.password.expose_secret(), "pw-1");
    assert!(
        took < Duration::from_millis(1000),
        "the fetch took {took:?}"
    );
    // The old token's revocation was sent all the same.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(vault.requests_to("/v1/auth/token/revoke-self").len(), 1);
}
