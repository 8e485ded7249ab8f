//! The clouds' metadata and local identity endpoints are reached straight, never through
//! the proxy of `HTTP_PROXY`/`HTTPS_PROXY`, while the stores' APIs go through it.
//!
//! Those endpoints are link-local (169.254.169.254, the ECS and EKS agents) or on the
//! host (App Service's, Arc's): a proxy cannot reach them — or, elsewhere in the same
//! cloud, answers with the credentials of *its* instance. The proxy variables are read
//! by reqwest from the process's environment, which a test cannot set (`set_var` is
//! unsafe, and the other tests of this binary run beside it); so the case runs in a
//! child process of this binary, started with the variables set and pointed at a
//! forwarding proxy of the parent's, which records every request line it forwards.
//! The child asserts the values arrive; the parent, that the proxy carried the stores'
//! requests (the variables were in effect) and none to a metadata endpoint.

use std::io::{BufRead, BufReader, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use component_model::test_util::{AzureKeyVaultDouble, GcpSecretsDouble};
use component_model::{
    AzureKeyVaultSource, FetchRequest, GcpSecretsSource, RawValue, Source, TlsConfig,
};
use component_model_tests::tls::{Pki, tls_front};
use component_model_tests::{skip, unique};

use crate::aws_credentials::{MOTO, creds_json, delete_param, put_param, ssm};

const HOUR: Duration = Duration::from_secs(3600);
const CHILD: &str = "proxies::child_fetches_through_the_proxy_variables";

#[test]
fn metadata_endpoints_are_reached_straight_while_the_apis_go_through_the_proxy() {
    let (proxy, seen) = forwarding_proxy();
    let exe = std::env::current_exe().expect("this test binary");
    let mut child = std::process::Command::new(exe);
    child.args([
        CHILD,
        "--exact",
        "--ignored",
        "--nocapture",
        "--test-threads",
        "1",
    ]);
    for var in ["HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy"] {
        child.env(var, &proxy);
    }
    for var in ["NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy"] {
        child.env_remove(var);
    }
    let out = child.output().expect("the child test runs");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(
        out.status.success() && stdout.contains("test result: ok. 1 passed"),
        "the child failed or did not run:\n{stdout}\n{stderr}"
    );
    let seen = seen.lock().unwrap().clone();
    eprintln!("the proxy forwarded:\n{}", seen.join("\n"));
    // The variables were in effect: each store's API went through the proxy.
    let through = |what: &str| seen.iter().any(|l| l.contains(what));
    assert!(through("/v1/projects/meta-proj/secrets/"), "GCP: {seen:?}");
    assert!(
        through("CONNECT 127.0.0.1:"),
        "Azure (HTTPS, tunnelled): {seen:?}"
    );
    let moto_skipped = stderr.contains("SKIPPED") && stderr.contains("moto");
    if !moto_skipped {
        assert!(through(&format!("POST http://{MOTO}/")), "AWS: {seen:?}");
    }
    // And nothing for a metadata or identity endpoint.
    for endpoint in [
        "/computeMetadata/",
        "/metadata/identity",
        "/msi/token",
        "/latest/",
        "/ecs-credentials",
    ] {
        assert!(
            !through(endpoint),
            "{endpoint} was asked through the proxy: {seen:?}"
        );
    }
}

/// The child's half (see the module): run only by the test above, in its own process.
#[tokio::test]
#[ignore = "run in a child process with proxy variables set, by the test above"]
async fn child_fetches_through_the_proxy_variables() {
    assert!(
        std::env::var("HTTP_PROXY").is_ok(),
        "run by metadata_endpoints_are_reached_straight_while_the_apis_go_through_the_proxy"
    );

    // GCP: the token and the project from the metadata server, straight.
    let gcp = GcpSecretsDouble::start_authenticated().await;
    gcp.set_metadata_project("meta-proj");
    gcp.add_version("meta-proj", "s", b"from-metadata");
    let source = GcpSecretsSource::new()
        .with_endpoint(gcp.url())
        .with_metadata_host(gcp.address());
    let got = source
        .fetch(&FetchRequest::for_key("gcp_secrets", "s"))
        .await;
    assert_eq!(got.unwrap(), RawValue::from("from-metadata"));
    assert!(
        gcp.requests()
            .iter()
            .any(|r| r.path.ends_with("/service-accounts/default/token")),
        "the metadata server was asked"
    );

    // Azure: managed identity by IMDS and by App Service's endpoint, straight; Key Vault
    // over HTTPS through the proxy's tunnel.
    let double = AzureKeyVaultDouble::start().await;
    double.set_secret("k", "v");
    let pki = Pki::new("proxies");
    let cert = pki.server("kv", &["127.0.0.1"], false);
    let front = tls_front(double.address(), &cert, None).await;
    let vault = format!("https://127.0.0.1:{}", front.port());
    let tls = || TlsConfig::new().with_ca_cert(&pki.ca_file);
    let request = FetchRequest::for_key("azure_keyvault", "k");
    let imds = AzureKeyVaultSource::new(&vault)
        .with_managed_identity(None, Some(&double.url()))
        .with_tls(tls());
    assert_eq!(imds.fetch(&request).await.unwrap(), RawValue::from("v"));
    let app_service = AzureKeyVaultSource::new(&vault)
        .with_identity_endpoint(double.identity_endpoint(), double.identity_header(), None)
        .with_tls(tls());
    assert_eq!(
        app_service.fetch(&request).await.unwrap(),
        RawValue::from("v")
    );
    assert!(!double.requests_to("/metadata/identity").is_empty());
    assert!(!double.requests_to("/msi/token").is_empty());

    // AWS: credentials from the instance metadata service and from a container
    // endpoint, straight; SSM (moto) through the proxy.
    let name = format!("/cm-proxies/{}", unique("p"));
    if let Err(e) = put_param(&name, "through-the-proxy") {
        skip("moto", e);
        return;
    }
    let imds = aws_double(|path| match path {
        "/latest/api/token" => Some("imds-session".to_owned()),
        "/latest/meta-data/iam/security-credentials/" => Some("app".to_owned()),
        "/latest/meta-data/iam/security-credentials/app" => Some(creds_json("ASIAIMDS", "s", HOUR)),
        _ => None,
    });
    let container =
        aws_double(|path| (path == "/ecs-credentials").then(|| creds_json("ASIAECS", "s", HOUR)));
    let request = FetchRequest::for_key("aws_ssm", name.clone());
    let by_imds = ssm(&[("AWS_EC2_METADATA_SERVICE_ENDPOINT", imds.as_str())]);
    let by_container = ssm(&[(
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        &format!("{container}/ecs-credentials"),
    )]);
    let (a, b) = (
        by_imds.fetch(&request).await,
        by_container.fetch(&request).await,
    );
    delete_param(&name);
    assert_eq!(a.unwrap(), RawValue::from("through-the-proxy"));
    assert_eq!(b.unwrap(), RawValue::from("through-the-proxy"));
}

// ---------------------------------------------------------------------------------------
// The forwarding proxy: plain HTTP in absolute form, HTTPS by CONNECT.

/// A forwarding proxy on a thread of its own: its URL and the request lines it forwarded.
fn forwarding_proxy() -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let log = seen.clone();
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            let log = log.clone();
            std::thread::spawn(move || {
                let _ = forward(client, &log);
            });
        }
    });
    (url, seen)
}

/// One connection: a tunnel for `CONNECT`, else one request forwarded with
/// `connection: close` both ways (the connection ends with its response).
fn forward(client: TcpStream, log: &Mutex<Vec<String>>) -> std::io::Result<()> {
    client.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut reader = BufReader::new(client.try_clone()?);
    let head = read_head(&mut reader)?;
    let line = head.first().cloned().unwrap_or_default();
    log.lock().unwrap().push(line.clone());
    let mut parts = line.split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let mut client = client;
    if method == "CONNECT" {
        let upstream = TcpStream::connect(target)?;
        client.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")?;
        return pump(reader, client, upstream);
    }
    let rest = target.strip_prefix("http://").unwrap_or(target);
    let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let mut upstream = TcpStream::connect(host)?;
    let mut out = format!(
        "{method} {} HTTP/1.1\r\n",
        if path.is_empty() { "/" } else { path }
    );
    for h in &head[1..] {
        let name = h
            .split(':')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        if name != "connection" && name != "proxy-connection" {
            out.push_str(h);
            out.push_str("\r\n");
        }
    }
    out.push_str("connection: close\r\n\r\n");
    upstream.write_all(out.as_bytes())?;
    // The body (if any) goes on while the response comes back.
    let to_upstream = upstream.try_clone()?;
    std::thread::spawn(move || {
        let mut reader = reader;
        let mut to = to_upstream;
        let _ = std::io::copy(&mut reader, &mut to);
    });
    let mut from = BufReader::new(upstream);
    let response = read_head(&mut from)?;
    let mut back = String::new();
    for h in &response {
        if !h.to_ascii_lowercase().starts_with("connection:") {
            back.push_str(h);
            back.push_str("\r\n");
        }
    }
    back.push_str("connection: close\r\n\r\n");
    client.write_all(back.as_bytes())?;
    std::io::copy(&mut from, &mut client)?;
    client.shutdown(Shutdown::Both)
}

/// The lines of a message head, up to its empty line.
fn read_head(reader: &mut impl BufRead) -> std::io::Result<Vec<String>> {
    let mut lines = Vec::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        let line = line.trim_end().to_owned();
        if line.is_empty() {
            return Ok(lines);
        }
        lines.push(line);
    }
}

/// Copies both ways until either side ends.
fn pump(
    mut from_client: BufReader<TcpStream>,
    mut client: TcpStream,
    upstream: TcpStream,
) -> std::io::Result<()> {
    let mut to_upstream = upstream.try_clone()?;
    let back = std::thread::spawn(move || {
        let mut upstream = upstream;
        let _ = std::io::copy(&mut upstream, &mut client);
        let _ = client.shutdown(Shutdown::Both);
    });
    let _ = std::io::copy(&mut from_client, &mut to_upstream);
    let _ = to_upstream.shutdown(Shutdown::Both);
    let _ = back.join();
    Ok(())
}

// ---------------------------------------------------------------------------------------
// AWS: a credential endpoint double (moto's SSM and the rest: `aws_credentials`).

/// An HTTP double on threads of its own answering `answer(path)` (404 for `None`).
fn aws_double(answer: impl Fn(&str) -> Option<String> + Send + Sync + 'static) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let answer = Arc::new(answer);
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let answer = answer.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let Ok(head) = read_head(&mut reader) else {
                    return;
                };
                let path = head
                    .first()
                    .and_then(|l| l.split_whitespace().nth(1))
                    .unwrap_or("")
                    .to_owned();
                let (status, body) = match answer(&path) {
                    Some(body) => (200, body),
                    None => (404, String::new()),
                };
                let mut stream = stream;
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status} X\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
            });
        }
    });
    base
}
