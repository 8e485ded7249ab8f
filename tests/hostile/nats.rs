//! Hostile servers: NATS. A server of this file speaks just enough of the client protocol
//! (INFO, CONNECT, PING/PONG, SUB, PUB, and the JetStream "which stream keeps this subject"
//! request, answered "none", so the subject is a core one) and then lies: a message larger
//! than its own `max_payload`, a terabyte message under a terabyte `max_payload`, an endless
//! INFO line, a PING flood, one byte a second, or silence.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use component_model::{
    AsyncAssign, ComponentError, ErrorKind, ErrorsExt, NatsKvSource, NatsSource, Sources,
};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use crate::common::{
    CANARY, CapturedLogs, MIB, assert_no_canary, capture, measure, serial, tcp_server,
};

/// What the fake server does once the client subscribes to the field's subject.
#[derive(Clone, Copy)]
enum Lie {
    /// `INFO` says `max_payload` 1 MiB, then `HMSG … 2147483648` and endless bytes.
    OverItsOwnMaxPayload,
    /// `INFO` says `max_payload` 2^40, then a 2^40-byte `MSG`, endless bytes.
    TerabyteMessage,
    /// An honest 5-byte message (the credentials case).
    Honest,
    /// PINGs without end, and never a message.
    PingFlood,
}

const SUBJECT: &str = "cfg.workers";

/// The `CONNECT` lines the server received.
type Connects = Arc<Mutex<Vec<String>>>;

async fn fake_server(lie: Lie) -> (u16, Connects) {
    let connects = Connects::default();
    let seen = connects.clone();
    let port = tcp_server(move |socket| serve(socket, lie, seen.clone())).await;
    (port, connects)
}

async fn serve(socket: TcpStream, lie: Lie, connects: Connects) {
    let max_payload: u64 = match lie {
        Lie::TerabyteMessage => 1 << 40,
        _ => MIB as u64,
    };
    let (read, mut write) = socket.into_split();
    let info = format!(
        "INFO {{\"server_id\":\"hostile\",\"version\":\"2.10.0\",\"proto\":1,\"headers\":true,\"max_payload\":{max_payload},\"auth_required\":true}}\r\n"
    );
    if write.write_all(info.as_bytes()).await.is_err() {
        return;
    }
    let mut read = BufReader::new(read);
    let mut subs: Vec<(String, String)> = Vec::new();
    let mut line = String::new();
    loop {
        line.clear();
        // The client is ours and well behaved: its lines are short.
        match (&mut read).take(64 * 1024).read_line(&mut line).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let words: Vec<String> = line.split_whitespace().map(str::to_owned).collect();
        let Some(op) = words.first().map(|w| w.to_ascii_uppercase()) else {
            continue;
        };
        match op.as_str() {
            "CONNECT" => connects.lock().unwrap().push(line.clone()),
            "PING" => {
                let _ = write.write_all(b"PONG\r\n").await;
            }
            "SUB" => {
                let sid = words.last().cloned().unwrap_or_default();
                subs.push((words[1].clone(), sid.clone()));
                if words[1] == SUBJECT {
                    misbehave(&mut write, lie, &sid).await;
                    return;
                }
            }
            "PUB" | "HPUB" => {
                let size: usize = words.last().and_then(|w| w.parse().ok()).unwrap_or(0);
                let mut payload = vec![0; size + 2];
                if read.read_exact(&mut payload).await.is_err() {
                    return;
                }
                // JetStream: "which stream keeps the subject?" — none.
                if words[1].starts_with("$JS.API.STREAM.NAMES") && words.len() >= 4 {
                    let reply = &words[2];
                    let Some(sid) = subs
                        .iter()
                        .find(|(p, _)| matches(p, reply))
                        .map(|s| s.1.clone())
                    else {
                        continue;
                    };
                    let body = r#"{"type":"io.nats.jetstream.api.v1.stream_names_response","total":0,"offset":0,"limit":1024,"streams":null}"#;
                    let msg = format!("MSG {reply} {sid} {}\r\n{body}\r\n", body.len());
                    let _ = write.write_all(msg.as_bytes()).await;
                }
            }
            _ => {}
        }
    }
}

/// Whether a subscription's subject pattern (`*` and `>` wildcards) covers `subject`.
fn matches(pattern: &str, subject: &str) -> bool {
    let mut p = pattern.split('.');
    let mut s = subject.split('.');
    loop {
        match (p.next(), s.next()) {
            (Some(">"), Some(_)) => return true,
            (Some("*"), Some(_)) => {}
            (Some(a), Some(b)) if a == b => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

/// Sends bytes without end (bounded: at most 30 s, whatever the client does).
async fn endless(w: &mut tokio::net::tcp::OwnedWriteHalf) {
    let chunk = vec![b'x'; 64 * 1024];
    let until = tokio::time::Instant::now() + Duration::from_secs(30);
    while tokio::time::Instant::now() < until {
        if w.write_all(&chunk).await.is_err() {
            return;
        }
    }
}

async fn misbehave(write: &mut tokio::net::tcp::OwnedWriteHalf, lie: Lie, sid: &str) {
    match lie {
        Lie::OverItsOwnMaxPayload => {
            let head = format!("HMSG {SUBJECT} {sid} 12 2147483648\r\nNATS/1.0\r\n\r\n");
            if write.write_all(head.as_bytes()).await.is_ok() {
                endless(write).await;
            }
        }
        Lie::TerabyteMessage => {
            let head = format!("MSG {SUBJECT} {sid} 1099511627776\r\n");
            if write.write_all(head.as_bytes()).await.is_ok() {
                endless(write).await;
            }
        }
        Lie::Honest => {
            let msg = format!("MSG {SUBJECT} {sid} 1\r\n7\r\n");
            let _ = write.write_all(msg.as_bytes()).await;
            tokio::time::sleep(Duration::from_secs(30)).await;
        }
        Lie::PingFlood => {
            let pings = b"PING\r\n".repeat(10_000);
            let until = tokio::time::Instant::now() + Duration::from_secs(30);
            while tokio::time::Instant::now() < until {
                if write.write_all(&pings).await.is_err() {
                    return;
                }
            }
        }
    }
}

#[derive(AsyncAssign, Debug)]
#[component(timeout = "5s")]
#[allow(dead_code)]
struct Workers {
    #[component(stream_from = "nats", topic = "cfg.workers")]
    workers: u32,
}

fn sources(port: u16) -> Sources {
    Sources::new().register(
        "nats",
        NatsSource::new(format!("nats://app:{CANARY}@127.0.0.1:{port}"))
            .with_first_message_timeout(Duration::from_secs(4))
            .with_timeout(Duration::from_secs(3)),
    )
}

/// Fetches `Workers` from a server telling `lie`: the error, and what was measured.
async fn fetch_from(port: u16) -> crate::common::Measured<Result<Workers, Vec<ComponentError>>> {
    let sources = sources(port);
    let m = measure(Workers::fetch_all_components_with(&sources)).await;
    // The figures, for a run with --nocapture.
    println!(
        "nats figures: {:?} after {:?}, resident memory +{} KiB",
        m.output.as_ref().map_err(|e| e[0].kind()).map(|_| ()),
        m.elapsed,
        m.peak / 1024
    );
    m
}

fn assert_clean(logs: &CapturedLogs, shown: &str) {
    assert_no_canary("the error", shown);
    assert_no_canary("the TRACE logs", &logs.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_over_the_servers_own_max_payload_is_refused_before_it_is_buffered() {
    let _s = serial().await;
    let logs = CapturedLogs::default();
    let _g = capture(&logs);
    let (port, _) = fake_server(Lie::OverItsOwnMaxPayload).await;
    let m = fetch_from(port).await;
    let errors = m.output.unwrap_err();
    let shown = errors.display().to_string();
    assert_eq!(errors[0].kind(), ErrorKind::TooLarge, "{shown}");
    assert!(
        shown.contains("Workers.workers")
            && shown.contains("nats")
            && shown.contains("cfg.workers")
            && shown.contains("2147483648 bytes"),
        "{shown}"
    );
    assert!(m.elapsed < Duration::from_secs(5), "{:?}", m.elapsed);
    // Before the relay: +1,030 MB.
    assert!(m.peak < 32 * MIB, "peak {} bytes", m.peak);
    assert_clean(&logs, &shown);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_terabyte_message_under_a_terabyte_max_payload_is_refused_at_the_sources_limit() {
    let _s = serial().await;
    let logs = CapturedLogs::default();
    let _g = capture(&logs);
    let (port, _) = fake_server(Lie::TerabyteMessage).await;
    let m = fetch_from(port).await;
    let errors = m.output.unwrap_err();
    let shown = errors.display().to_string();
    assert_eq!(errors[0].kind(), ErrorKind::TooLarge, "{shown}");
    assert!(shown.contains("1099511627776 bytes"), "{shown}");
    assert!(m.elapsed < Duration::from_secs(5), "{:?}", m.elapsed);
    // Before the relay: +1,034 MB.
    assert!(m.peak < 32 * MIB, "peak {} bytes", m.peak);
    assert_clean(&logs, &shown);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_reach_the_server_in_connect_and_no_log_line() {
    let _s = serial().await;
    let logs = CapturedLogs::default();
    let _g = capture(&logs);
    let (port, connects) = fake_server(Lie::Honest).await;
    let sources = sources(port);
    let got = Workers::fetch_all_components_with(&sources).await;
    let shown = format!("{got:?} {sources:?}");
    assert_eq!(got.map(|w| w.workers).ok(), Some(7), "{shown}");
    let connects = connects.lock().unwrap().clone();
    assert_eq!(connects.len(), 1, "{connects:?}");
    assert!(
        connects[0].contains("\"user\":\"app\"")
            && connects[0].contains(&format!("\"pass\":\"{CANARY}\"")),
        "the credentials were not sent: {}",
        connects[0].replace(CANARY, "***")
    );
    // Before: async-nats logged `ServerAddr(Url { … password: Some("…") })` at DEBUG.
    assert_clean(&logs, &shown);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ping_flood_does_not_hold_the_first_message_deadline() {
    let _s = serial().await;
    let (port, _) = fake_server(Lie::PingFlood).await;
    let m = fetch_from(port).await;
    let errors = m.output.unwrap_err();
    let shown = errors.display().to_string();
    assert_eq!(errors[0].kind(), ErrorKind::NotFound, "{shown}");
    assert!(
        shown.contains("Workers.workers") && shown.contains("cfg.workers"),
        "{shown}"
    );
    // The first-message deadline is 4 s; the field's timeout 5 s.
    assert!(m.elapsed < Duration::from_millis(5_500), "{:?}", m.elapsed);
    assert!(m.peak < 32 * MIB, "peak {} bytes", m.peak);
}

/// A server that sends `head` one byte a second, or (empty) nothing at all.
async fn slow_server(head: &'static [u8]) -> u16 {
    tcp_server(move |mut socket| async move {
        for b in head {
            tokio::time::sleep(Duration::from_secs(1)).await;
            if socket.write_all(&[*b]).await.is_err() {
                return;
            }
        }
        tokio::time::sleep(Duration::from_secs(30)).await;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_or_one_byte_a_second_server_fails_the_field_on_time() {
    let _s = serial().await;
    for (what, head) in [
        ("silent", &b""[..]),
        (
            "one byte a second",
            &b"INFO {\"server_id\":\"slow\",\"max_payload\":1048576}\r\n"[..],
        ),
    ] {
        let port = slow_server(head).await;
        let m = fetch_from(port).await;
        let errors = m.output.unwrap_err();
        let shown = errors.display().to_string();
        assert!(
            matches!(
                errors[0].kind(),
                ErrorKind::Unavailable | ErrorKind::Timeout
            ),
            "{what}: {shown}"
        );
        assert!(
            shown.contains("Workers.workers") && shown.contains("cfg.workers"),
            "{what}: {shown}"
        );
        // The source's connect timeout is 3 s, the field's 5 s.
        assert!(
            m.elapsed < Duration::from_millis(5_500),
            "{what}: {:?}",
            m.elapsed
        );
        assert_no_canary(what, &shown);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endless_info_line_is_refused_at_its_bound() {
    let _s = serial().await;
    let port = tcp_server(|mut socket| async move {
        let _ = socket.write_all(b"INFO {\"server_id\":\"").await;
        let chunk = vec![b'x'; 64 * 1024];
        let until = tokio::time::Instant::now() + Duration::from_secs(30);
        while tokio::time::Instant::now() < until {
            if socket.write_all(&chunk).await.is_err() {
                return;
            }
        }
    })
    .await;
    let m = fetch_from(port).await;
    let errors = m.output.unwrap_err();
    let shown = errors.display().to_string();
    assert_eq!(errors[0].kind(), ErrorKind::Unavailable, "{shown}");
    assert!(shown.contains("longer than 64 KiB"), "{shown}");
    assert!(m.elapsed < Duration::from_secs(5), "{:?}", m.elapsed);
    assert!(m.peak < 32 * MIB, "peak {} bytes", m.peak);
}

// NATS JetStream KV (`fetch_from = "nats_kv"`): a server that knows a bucket `cfg`
// (`$JS.API.STREAM.INFO.KV_cfg`, direct gets allowed), then lies about its key's value
// (`$JS.API.DIRECT.GET.KV_cfg`) or never answers.

/// What the fake KV server does with a read of the key.
#[derive(Clone, Copy)]
enum KvLie {
    /// Answers with a 2 GiB message (under a 2^40 `max_payload`), then endless bytes.
    HugeValue,
    /// Answers the bucket lookup, never the read.
    Silent,
    /// Answers nothing at all (after the handshake).
    Mute,
    /// Answers the bucket lookup; every read (direct or `STREAM.MSG.GET`) with "no
    /// responders", as while the stream's servers restart or elect a leader.
    NoResponders,
    /// Answers the bucket lookup after 1.5 s; a read with "no responders" (a read that
    /// asks for its bucket again, and once more, within one timeout).
    LateLookup,
}

async fn kv_server(lie: KvLie) -> (u16, Connects) {
    let connects = Connects::default();
    let seen = connects.clone();
    let port = tcp_server(move |socket| serve_kv(socket, lie, seen.clone())).await;
    (port, connects)
}

async fn serve_kv(socket: TcpStream, lie: KvLie, connects: Connects) {
    let (read, mut write) = socket.into_split();
    let info = "INFO {\"server_id\":\"hostile-kv\",\"version\":\"2.9.10\",\"proto\":1,\"headers\":true,\"jetstream\":true,\"max_payload\":1099511627776,\"auth_required\":true}\r\n";
    if write.write_all(info.as_bytes()).await.is_err() {
        return;
    }
    let mut read = BufReader::new(read);
    let mut subs: Vec<(String, String)> = Vec::new();
    let mut line = String::new();
    loop {
        line.clear();
        match (&mut read).take(64 * 1024).read_line(&mut line).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let words: Vec<String> = line.split_whitespace().map(str::to_owned).collect();
        let Some(op) = words.first().map(|w| w.to_ascii_uppercase()) else {
            continue;
        };
        match op.as_str() {
            "CONNECT" => connects.lock().unwrap().push(line.clone()),
            "PING" => {
                let _ = write.write_all(b"PONG\r\n").await;
            }
            "SUB" => {
                let sid = words.last().cloned().unwrap_or_default();
                subs.push((words[1].clone(), sid));
            }
            "PUB" | "HPUB" => {
                let size: usize = words.last().and_then(|w| w.parse().ok()).unwrap_or(0);
                let mut payload = vec![0; size + 2];
                if read.read_exact(&mut payload).await.is_err() || words.len() < 4 {
                    return;
                }
                if matches!(lie, KvLie::Mute) {
                    continue;
                }
                let reply = &words[2];
                let Some(sid) = subs
                    .iter()
                    .find(|(p, _)| matches(p, reply))
                    .map(|s| s.1.clone())
                else {
                    continue;
                };
                let no_responders = format!("HMSG {reply} {sid} 16 16\r\nNATS/1.0 503\r\n\r\n\r\n");
                if words[1] == "$JS.API.STREAM.INFO.KV_cfg" {
                    if matches!(lie, KvLie::LateLookup) {
                        tokio::time::sleep(Duration::from_millis(1_500)).await;
                    }
                    let body = r#"{"type":"io.nats.jetstream.api.v1.stream_info_response","config":{"name":"KV_cfg","subjects":["$KV.cfg.>"],"allow_direct":true}}"#;
                    let msg = format!("MSG {reply} {sid} {}\r\n{body}\r\n", body.len());
                    let _ = write.write_all(msg.as_bytes()).await;
                } else if words[1] == "$JS.API.DIRECT.GET.KV_cfg" {
                    match lie {
                        KvLie::HugeValue => {
                            let head =
                                format!("HMSG {reply} {sid} 12 2147483648\r\nNATS/1.0\r\n\r\n");
                            if write.write_all(head.as_bytes()).await.is_ok() {
                                endless(&mut write).await;
                            }
                            return;
                        }
                        KvLie::NoResponders | KvLie::LateLookup => {
                            let _ = write.write_all(no_responders.as_bytes()).await;
                        }
                        KvLie::Silent | KvLie::Mute => {}
                    }
                } else if words[1] == "$JS.API.STREAM.MSG.GET.KV_cfg"
                    && matches!(lie, KvLie::NoResponders | KvLie::LateLookup)
                {
                    let _ = write.write_all(no_responders.as_bytes()).await;
                }
            }
            _ => {}
        }
    }
}

#[derive(AsyncAssign, Debug)]
#[component(timeout = "5s")]
#[allow(dead_code)]
struct KvWorkers {
    #[component(fetch_from = "nats_kv", bucket = "cfg", key = "app.workers")]
    workers: u32,
}

async fn fetch_kv(port: u16) -> crate::common::Measured<Result<KvWorkers, Vec<ComponentError>>> {
    let sources = Sources::new().register(
        "nats_kv",
        NatsKvSource::new(format!("nats://app:{CANARY}@127.0.0.1:{port}"))
            .with_timeout(Duration::from_secs(2)),
    );
    let m = measure(KvWorkers::fetch_all_components_with(&sources)).await;
    println!(
        "nats_kv figures: {:?} after {:?}, resident memory +{} KiB",
        m.output.as_ref().map_err(|e| e[0].kind()).map(|_| ()),
        m.elapsed,
        m.peak / 1024
    );
    m
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kv_value_announced_over_the_bound_is_refused_before_it_is_buffered() {
    let _s = serial().await;
    let logs = CapturedLogs::default();
    let _g = capture(&logs);
    let (port, connects) = kv_server(KvLie::HugeValue).await;
    let m = fetch_kv(port).await;
    let errors = m.output.unwrap_err();
    let shown = errors.display().to_string();
    assert_eq!(errors[0].kind(), ErrorKind::TooLarge, "{shown}");
    assert!(
        shown.contains("KvWorkers.workers")
            && shown.contains("`app.workers`")
            && shown.contains("`cfg`")
            && shown.contains("2147483648 bytes"),
        "{shown}"
    );
    assert!(m.elapsed < Duration::from_secs(5), "{:?}", m.elapsed);
    assert!(m.peak < 32 * MIB, "peak {} bytes", m.peak);
    // The credentials reached the server, and nothing shows them.
    let connects = connects.lock().unwrap().clone();
    assert!(
        connects
            .iter()
            .any(|c| c.contains(&format!("\"pass\":\"{CANARY}\""))),
        "the credentials were not sent"
    );
    assert_clean(&logs, &format!("{shown} {errors:?}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kv_server_that_never_answers_times_out_on_time() {
    let _s = serial().await;
    for (what, lie) in [
        ("no answer to the read", KvLie::Silent),
        ("no answer at all", KvLie::Mute),
    ] {
        let (port, _) = kv_server(lie).await;
        let m = fetch_kv(port).await;
        let errors = m.output.unwrap_err();
        let shown = errors.display().to_string();
        assert_eq!(errors[0].kind(), ErrorKind::Timeout, "{what}: {shown}");
        assert!(
            shown.contains("KvWorkers.workers") && shown.contains("cfg"),
            "{what}: {shown}"
        );
        // The source's timeout is 2 s (each request), the field's 5 s.
        assert!(
            m.elapsed < Duration::from_millis(4_500),
            "{what}: {:?}",
            m.elapsed
        );
        assert_no_canary(what, &shown);
    }
}

/// A read nobody answers while the bucket's stream is known to exist is the server
/// restarting or electing a leader: `Unavailable`, never `not found` (a watching Live
/// would take the key for deleted and apply its fallback instead of keeping the value).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_without_responders_of_a_bucket_that_exists_is_unavailable_not_absent() {
    let _s = serial().await;
    let (port, _) = kv_server(KvLie::NoResponders).await;
    let m = fetch_kv(port).await;
    let errors = m.output.unwrap_err();
    let shown = errors.display().to_string();
    assert_eq!(errors[0].kind(), ErrorKind::Unavailable, "{shown}");
    assert!(m.elapsed < Duration::from_secs(2), "{:?}", m.elapsed);
    assert!(
        !shown.contains("not in NATS KV") && !shown.contains("does not exist"),
        "{shown}"
    );
}

/// The steps of one read (the lookup, the get, the lookup again, the get again) share
/// the source's timeout: a 2 s timeout fails at 2 s, not at the sum of its steps.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_steps_of_one_read_share_one_timeout() {
    let _s = serial().await;
    let (port, _) = kv_server(KvLie::LateLookup).await;
    let m = fetch_kv(port).await;
    let errors = m.output.unwrap_err();
    let shown = errors.display().to_string();
    assert_eq!(errors[0].kind(), ErrorKind::Timeout, "{shown}");
    assert!(
        m.elapsed < Duration::from_millis(2_600),
        "{:?}: {shown}",
        m.elapsed
    );
    assert_no_canary("late lookup", &shown);
}
