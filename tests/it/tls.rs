//! TLS from the HashiCorp CLIs' variables: the Vault and Consul doubles behind a TLS front
//! with a CA and certificates generated here. Right CA → works; wrong CA, wrong name,
//! expired certificate, missing client certificate → an error naming the address and the
//! check that failed. PostgreSQL's `sslmode=verify-full` through sqlx against the local
//! server's certificate.

use std::net::SocketAddr;

use component_model::secrecy::ExposeSecret;
use component_model::test_util::{ConsulDouble, VaultDouble};
use component_model::{AsyncAssign, ComponentError, EnvSource, ErrorKind, SecretString, Sources};
use component_model_tests::tls::{Pki, tls_front};

#[derive(AsyncAssign, Debug)]
#[allow(dead_code)]
struct Secrets {
    #[component(fetch_from = "vault", secret = "app/db", field = "password")]
    password: SecretString,
}

#[derive(AsyncAssign, Debug)]
#[allow(dead_code)]
struct Settings {
    #[component(fetch_from = "consul", key = "app/port")]
    port: u16,
}

fn addr_of(url: &str) -> SocketAddr {
    url.trim_start_matches("http://").parse().unwrap()
}

async fn vault_behind_tls(
    pki: &Pki,
    names: &[&str],
    expired: bool,
    client_ca: bool,
) -> (VaultDouble, SocketAddr) {
    let vault = VaultDouble::start().await;
    vault.put(
        "secret",
        "app/db",
        serde_json::json!({"password": "tls-pw"}),
    );
    let server = pki.server("vault", names, expired);
    let ca = client_ca.then_some(pki.ca_pem.as_str());
    let front = tls_front(addr_of(&vault.url()), &server, ca).await;
    (vault, front)
}

fn vault_env(front: SocketAddr, extra: &[(&str, String)]) -> Sources {
    let mut vars: Vec<(String, String)> = vec![
        (
            "VAULT_ADDR".into(),
            format!("https://localhost:{}", front.port()),
        ),
        ("VAULT_TOKEN".into(), "root".into()),
    ];
    vars.extend(extra.iter().map(|(k, v)| (k.to_string(), v.clone())));
    Sources::from_env_source(EnvSource::from_map(vars))
}

fn only(errors: Vec<ComponentError>) -> ComponentError {
    assert_eq!(errors.len(), 1, "{errors:?}");
    errors.into_iter().next().unwrap()
}

#[tokio::test]
async fn vault_over_tls_with_the_right_ca_works_and_other_cas_are_refused() {
    let pki = Pki::new("vault");
    let (_vault, front) = vault_behind_tls(&pki, &["localhost"], false, false).await;
    let ca = pki.ca_file.display().to_string();
    let got = Secrets::fetch_all_components_with(&vault_env(front, &[("VAULT_CACERT", ca)]))
        .await
        .unwrap();
    assert_eq!(got.password.expose_secret(), "tls-pw");

    // Without the CA the system roots are used: unknown issuer.
    let err = only(
        Secrets::fetch_all_components_with(&vault_env(front, &[]))
            .await
            .unwrap_err(),
    );
    let text = err.to_string();
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{text}");
    assert!(
        text.contains(&format!("https://localhost:{}", front.port())),
        "{text}"
    );
    assert!(
        text.contains("not signed by a CA this client trusts"),
        "{text}"
    );

    // Another CA: the same check fails.
    let other = Pki::new("other");
    let err = only(
        Secrets::fetch_all_components_with(&vault_env(
            front,
            &[("VAULT_CACERT", other.ca_file.display().to_string())],
        ))
        .await
        .unwrap_err(),
    );
    assert!(err.to_string().contains("UnknownIssuer"), "{err}");

    // VAULT_CAPATH: a directory holding the CA.
    let got = Secrets::fetch_all_components_with(&vault_env(
        front,
        &[("VAULT_CAPATH", pki.dir().display().to_string())],
    ))
    .await
    .unwrap();
    assert_eq!(got.password.expose_secret(), "tls-pw");
}

#[tokio::test]
async fn a_wrong_name_fails_unless_vault_tls_server_name_says_which_name_to_expect() {
    let pki = Pki::new("names");
    let (_vault, front) = vault_behind_tls(&pki, &["vault.internal"], false, false).await;
    let ca = pki.ca_file.display().to_string();
    let err = only(
        Secrets::fetch_all_components_with(&vault_env(front, &[("VAULT_CACERT", ca.clone())]))
            .await
            .unwrap_err(),
    );
    let text = err.to_string();
    assert!(text.contains("not valid for the name"), "{text}");
    assert!(text.contains("localhost"), "{text}");

    let got = Secrets::fetch_all_components_with(&vault_env(
        front,
        &[
            ("VAULT_CACERT", ca),
            ("VAULT_TLS_SERVER_NAME", "vault.internal".into()),
        ],
    ))
    .await
    .unwrap();
    assert_eq!(got.password.expose_secret(), "tls-pw");
}

#[tokio::test]
async fn an_expired_certificate_is_refused_unless_verification_is_skipped_with_a_warning() {
    let pki = Pki::new("expired");
    let (_vault, front) = vault_behind_tls(&pki, &["localhost"], true, false).await;
    let ca = pki.ca_file.display().to_string();
    let err = only(
        Secrets::fetch_all_components_with(&vault_env(front, &[("VAULT_CACERT", ca)]))
            .await
            .unwrap_err(),
    );
    assert!(err.to_string().contains("has expired"), "{err}");

    let logs = component_model_tests::CapturedLogs::default();
    let _guard = component_model_tests::capture(&logs);
    let got = Secrets::fetch_all_components_with(&vault_env(
        front,
        &[("VAULT_SKIP_VERIFY", "true".into())],
    ))
    .await
    .unwrap();
    assert_eq!(got.password.expose_secret(), "tls-pw");
    assert!(
        logs.text().contains("TLS verification is OFF"),
        "{}",
        logs.text()
    );
    assert!(!logs.text().contains("tls-pw"));
}

#[tokio::test]
async fn mutual_tls_needs_the_client_certificate_from_the_environment() {
    let pki = Pki::new("mtls");
    let (_vault, front) = vault_behind_tls(&pki, &["localhost"], false, true).await;
    let ca = pki.ca_file.display().to_string();
    let err = only(
        Secrets::fetch_all_components_with(&vault_env(front, &[("VAULT_CACERT", ca.clone())]))
            .await
            .unwrap_err(),
    );
    assert!(
        err.to_string().contains("requires a client certificate"),
        "{err}"
    );

    let client = pki.client("client", "app");
    let got = Secrets::fetch_all_components_with(&vault_env(
        front,
        &[
            ("VAULT_CACERT", ca),
            ("VAULT_CLIENT_CERT", client.cert_file.display().to_string()),
            ("VAULT_CLIENT_KEY", client.key_file.display().to_string()),
        ],
    ))
    .await
    .unwrap();
    assert_eq!(got.password.expose_secret(), "tls-pw");
}

#[tokio::test]
async fn a_bad_tls_variable_is_a_config_error_naming_it() {
    let err = only(
        Secrets::fetch_all_components_with(&vault_env(
            "127.0.0.1:1".parse().unwrap(),
            &[("VAULT_CACERT", "/nonexistent/ca.pem".into())],
        ))
        .await
        .unwrap_err(),
    );
    assert_eq!(err.kind(), ErrorKind::Config, "{err}");
    assert!(
        err.to_string().contains("VAULT_CACERT /nonexistent/ca.pem"),
        "{err}"
    );

    let err = only(
        Secrets::fetch_all_components_with(&vault_env(
            "127.0.0.1:1".parse().unwrap(),
            &[("VAULT_SKIP_VERIFY", "maybe".into())],
        ))
        .await
        .unwrap_err(),
    );
    assert_eq!(err.kind(), ErrorKind::Config, "{err}");
    assert!(err.to_string().contains("VAULT_SKIP_VERIFY"), "{err}");
}

#[tokio::test]
async fn consul_over_tls_from_its_variables() {
    let pki = Pki::new("consul");
    let consul = ConsulDouble::start().await;
    consul.put("app/port", "8443");
    let server = pki.server("consul", &["localhost", "127.0.0.1"], false);
    let client = pki.client("client", "app");
    let front = tls_front(addr_of(&consul.url()), &server, Some(&pki.ca_pem)).await;
    let env = |extra: &[(&str, String)]| {
        let mut vars: Vec<(String, String)> = vec![
            (
                "CONSUL_HTTP_ADDR".into(),
                format!("127.0.0.1:{}", front.port()),
            ),
            ("CONSUL_HTTP_SSL".into(), "true".into()),
        ];
        vars.extend(extra.iter().map(|(k, v)| (k.to_string(), v.clone())));
        Sources::from_env_source(EnvSource::from_map(vars))
    };
    let tls = [
        ("CONSUL_CACERT", pki.ca_file.display().to_string()),
        ("CONSUL_CLIENT_CERT", client.cert_file.display().to_string()),
        ("CONSUL_CLIENT_KEY", client.key_file.display().to_string()),
    ];
    let got = Settings::fetch_all_components_with(&env(&tls))
        .await
        .unwrap();
    assert_eq!(got.port, 8443);

    let err = only(
        Settings::fetch_all_components_with(&env(&tls[..1]))
            .await
            .unwrap_err(),
    );
    assert!(
        err.to_string().contains("requires a client certificate"),
        "{err}"
    );
    assert!(err.to_string().contains("Settings.port"), "{err}");

    // CONSUL_HTTP_SSL_VERIFY=false: no verification (still a client certificate).
    let mut unverified = tls[1..].to_vec();
    unverified.push(("CONSUL_HTTP_SSL_VERIFY", "false".into()));
    let got = Settings::fetch_all_components_with(&env(&unverified))
        .await
        .unwrap();
    assert_eq!(got.port, 8443);
}

/// PostgreSQL over TLS through sqlx's own URL parameters: `sslmode=verify-full` with the
/// server's certificate as `sslrootcert` works on the certificate's name (`localhost`) and
/// is refused on another (`127.0.0.1`), with the error naming the field.
#[tokio::test]
async fn postgres_verify_full_through_database_url() {
    const SNAKEOIL: &str = "/etc/ssl/certs/ssl-cert-snakeoil.pem";
    #[derive(AsyncAssign, Debug)]
    #[allow(dead_code)]
    struct Db {
        #[component(fetch_from = "postgres", query = "SELECT 'tls-ok'")]
        probe: String,
    }
    if !std::path::Path::new(SNAKEOIL).exists() {
        component_model_tests::skip(
            "PostgreSQL's TLS certificate",
            format!("{SNAKEOIL} missing"),
        );
        return;
    }
    let url = |host: &str| {
        format!("postgres://postgres@{host}:5432/test?sslmode=verify-full&sslrootcert={SNAKEOIL}")
    };
    // Only a server that cannot be reached skips; once it answers, any error on the path
    // that must succeed (no TLS, a refused certificate, ...) fails the test.
    if let Err(e) = tokio::net::TcpStream::connect("localhost:5432").await {
        component_model_tests::skip("PostgreSQL on localhost:5432", e);
        return;
    }
    let sources =
        Sources::from_env_source(EnvSource::from_map([("DATABASE_URL", url("localhost"))]));
    match Db::fetch_all_components_with(&sources).await {
        Ok(db) => assert_eq!(db.probe, "tls-ok"),
        Err(e) => panic!("PostgreSQL answers on localhost:5432, but verify-full failed: {e:?}"),
    }
    let sources =
        Sources::from_env_source(EnvSource::from_map([("DATABASE_URL", url("127.0.0.1"))]));
    let err = only(Db::fetch_all_components_with(&sources).await.unwrap_err());
    let text = format!("{err} {:?}", std::error::Error::source(&err));
    assert!(text.contains("Db.probe"), "{text}");
    assert!(text.contains("not valid for name"), "{text}");
}

fn free_port() -> Option<u16> {
    Some(
        std::net::TcpListener::bind("127.0.0.1:0")
            .ok()?
            .local_addr()
            .ok()?
            .port(),
    )
}

/// A redis-server of the test's own: TLS on one port (requiring a client certificate
/// signed by `pki`), plain TCP on another (for the test to write keys). `None` when
/// redis-server cannot be started here.
async fn redis_with_tls(pki: &Pki) -> Option<(tokio::process::Child, u16, u16)> {
    let server = pki.server("redis", &["localhost", "127.0.0.1"], false);
    let (port, plain) = (free_port()?, free_port()?);
    let child = tokio::process::Command::new("redis-server")
        .args([
            "--port",
            &plain.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .args(["--tls-port", &port.to_string()])
        .arg("--tls-cert-file")
        .arg(&server.cert_file)
        .arg("--tls-key-file")
        .arg(&server.key_file)
        .arg("--tls-ca-cert-file")
        .arg(&pki.ca_file)
        .args(["--tls-auth-clients", "yes", "--dir"])
        .arg(pki.dir())
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .ok()?;
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return Some((child, port, plain));
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    None
}

#[tokio::test]
async fn redis_over_tls_with_rediss_and_the_redis_tls_variables() {
    #[derive(AsyncAssign, Debug)]
    #[allow(dead_code)]
    struct Cached {
        #[component(fetch_from = "redis", key = "tls:port")]
        port: u16,
    }
    let pki = Pki::new("redis");
    let Some((_server, port, plain)) = redis_with_tls(&pki).await else {
        component_model_tests::skip("redis-server with TLS", "could not be started");
        return;
    };
    let client = pki.client("client", "app");
    let env = |extra: &[(&str, String)]| {
        let mut vars: Vec<(String, String)> =
            vec![("REDIS_URL".into(), format!("rediss://localhost:{port}"))];
        vars.extend(extra.iter().map(|(k, v)| (k.to_string(), v.clone())));
        Sources::from_env_source(EnvSource::from_map(vars))
    };
    let tls = [
        ("REDIS_CACERT", pki.ca_file.display().to_string()),
        ("REDIS_CLIENT_CERT", client.cert_file.display().to_string()),
        ("REDIS_CLIENT_KEY", client.key_file.display().to_string()),
    ];
    let sources = env(&tls);
    let err = only(
        Cached::fetch_all_components_with(&sources)
            .await
            .unwrap_err(),
    );
    assert_eq!(
        err.kind(),
        ErrorKind::NotFound,
        "over TLS, the key is not there yet: {err}"
    );
    let mut conn = redis::Client::open(format!("redis://127.0.0.1:{plain}"))
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let _: () = redis::AsyncCommands::set(&mut conn, "tls:port", "6380")
        .await
        .unwrap();
    let got = Cached::fetch_all_components_with(&env(&tls)).await.unwrap();
    assert_eq!(got.port, 6380);

    // No CA: the system roots do not know the test's CA.
    let err = only(
        Cached::fetch_all_components_with(&env(&[]))
            .await
            .unwrap_err(),
    );
    assert!(err.to_string().contains("not signed by a CA"), "{err}");
    assert!(
        err.to_string()
            .contains(&format!("rediss://localhost:{port}")),
        "{err}"
    );
    // The CA but no client certificate: the server refuses.
    let err = only(
        Cached::fetch_all_components_with(&env(&tls[..1]))
            .await
            .unwrap_err(),
    );
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
}
