//! Response bodies are read through a size bound: a hostile server cannot make the process
//! allocate without limit. A test binary of its own with ONE test, so the peak resident
//! memory it measures (Linux `VmHWM`, reset before each scenario) is these scenarios'.

use std::time::{Duration, Instant};

use component_model::test_util::ConsulDouble;
use component_model::{
    AsyncAssign, ConsulSource, ErrorKind, FetchRequest, HttpSource, Source, Sources,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A line of `/proc/self/status` in bytes (`VmRSS`: resident now, `VmHWM`: its peak).
/// Panics when it cannot be read: a test measuring 0 would pass without measuring.
fn status_bytes(field: &str) -> usize {
    let status = std::fs::read_to_string("/proc/self/status")
        .unwrap_or_else(|e| panic!("/proc/self/status is needed to measure memory: {e}"));
    let kb = status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<usize>().ok())
        .unwrap_or_else(|| panic!("no `{field}` line in /proc/self/status:\n{status}"));
    assert!(kb > 0, "`{field}` of 0 kB in /proc/self/status:\n{status}");
    kb * 1024
}

const CAP: usize = 4 * 1024 * 1024;

/// Runs `f`, returning its output and how far the resident memory peaked above where it
/// started (Linux: the peak is reset through `/proc/self/clear_refs`; when it cannot be,
/// the test fails rather than measure an earlier peak).
async fn peak_of<F: std::future::Future>(f: F) -> (F::Output, usize) {
    std::fs::write("/proc/self/clear_refs", "5").unwrap_or_else(|e| {
        panic!("resetting the peak (`5` to /proc/self/clear_refs, Linux 4.0+) failed: {e}")
    });
    let start = status_bytes("VmRSS:");
    // The reset took: the peak is where the process is now, not an earlier high.
    let reset = status_bytes("VmHWM:");
    assert!(
        reset <= start + CAP / 4,
        "the peak was not reset: VmHWM {reset} bytes, VmRSS {start} bytes"
    );
    let out = f.await;
    (out, status_bytes("VmHWM:").saturating_sub(start))
}

/// An HTTP server answering every request with `head`, then `body` (`endless`: forever).
async fn server(head: String, body: Vec<u8>, endless: bool) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let head = head.clone();
            let body = body.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                let _ = socket.read(&mut buf).await;
                if socket.write_all(head.as_bytes()).await.is_err() {
                    return;
                }
                if socket.write_all(&body).await.is_err() {
                    return;
                }
                while endless && socket.write_all(&body).await.is_ok() {}
            });
        }
    });
    format!("http://{addr}")
}

fn chunk(data: &[u8]) -> Vec<u8> {
    let mut c = format!("{:x}\r\n", data.len()).into_bytes();
    c.extend_from_slice(data);
    c.extend_from_slice(b"\r\n");
    c
}

async fn get(base: &str) -> Result<component_model::RawValue, component_model::SourceError> {
    let source = HttpSource::new(base)
        .with_max_body(CAP)
        .with_timeout(Duration::from_secs(10));
    source
        .fetch(&FetchRequest::for_source("limits").with_path("/doc"))
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_are_bounded_and_memory_stays_within_a_small_multiple_of_the_cap() {
    // Warm up: the first client loads its TLS roots; measure the bodies, not that.
    let small = server(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n".into(),
        b"{}".to_vec(),
        false,
    )
    .await;
    assert!(get(&small).await.is_ok());

    // 1. An endless chunked body: cut off at the cap.
    let endless = server(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n"
            .into(),
        chunk(&[b' '; 64 * 1024]),
        true,
    )
    .await;
    let started = Instant::now();
    let (r, peak) = peak_of(get(&endless)).await;
    let e = r.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::TooLarge, "{e}");
    assert!(
        e.to_string()
            .contains("response larger than 4 MiB from http://127.0.0.1:"),
        "{e}"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(peak < 4 * CAP, "endless body: peak {peak} bytes");

    // 2. A terabyte announced: refused before reading.
    let huge = server(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 1099511627776\r\n\r\n"
            .into(),
        vec![b' '; 64 * 1024],
        true,
    )
    .await;
    let (r, peak) = peak_of(get(&huge)).await;
    let e = r.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::TooLarge, "{e}");
    assert!(
        e.to_string().contains("it announced 1099511627776 bytes"),
        "{e}"
    );
    assert!(peak < 4 * CAP, "huge Content-Length: peak {peak} bytes");

    // 3. One byte over the cap is refused; 4. exactly the cap is read.
    let json_of = |len: usize| {
        let mut doc = vec![b'"'];
        doc.extend(std::iter::repeat_n(b'x', len - 2));
        doc.push(b'"');
        doc
    };
    for (len, ok) in [(CAP + 1, false), (CAP, true)] {
        let body = json_of(len);
        let base = server(
            format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {len}\r\n\r\n"
            ),
            body,
            false,
        )
        .await;
        let (r, peak) = peak_of(get(&base)).await;
        assert_eq!(r.is_ok(), ok, "{len} bytes: {r:?}");
        assert!(peak < 4 * CAP, "{len} bytes: peak {peak} bytes");
    }

    // 5. Through the derive: a Consul value over the source's cap names field, source, key;
    // a field's `max_size` is checked per value and keeps the batch (one transaction).
    let consul = ConsulDouble::start().await;
    consul.put("big/blob", "y".repeat(2 * CAP));
    consul.put("big/small", "0123456789");
    consul.put("big/port", "8080");
    #[derive(AsyncAssign, Debug)]
    #[allow(dead_code)]
    struct Big {
        #[component(fetch_from = "consul", key = "big/blob")]
        blob: String,
    }
    let sources = Sources::new().register(
        "consul",
        ConsulSource::new(consul.address()).with_max_body(CAP),
    );
    let errors = Big::fetch_all_components_with(&sources).await.unwrap_err();
    let shown = errors[0].to_string();
    assert_eq!(errors[0].kind(), ErrorKind::TooLarge, "{shown}");
    assert!(
        shown.starts_with("Big.blob: consul key `big/blob` at http://")
            && shown.contains("response larger than 4 MiB"),
        "{shown}"
    );

    #[derive(AsyncAssign, Debug)]
    #[allow(dead_code)]
    struct Sized {
        #[component(fetch_from = "consul", key = "big/small", max_size = 8)]
        small: String,
        #[component(fetch_from = "consul", key = "big/port", max_size = "1KiB")]
        port: u16,
    }
    consul.clear_requests();
    let errors = Sized::fetch_all_components_with(&sources)
        .await
        .unwrap_err();
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].kind(), ErrorKind::TooLarge);
    assert_eq!(
        errors[0].to_string(),
        format!(
            "Sized.small: consul key `big/small` at http://{}: too large: a value of 10 bytes, over the field's `max_size` of 8 bytes",
            consul.address()
        )
    );
    assert_eq!(consul.requests_to("/v1/txn").len(), 1);
}
