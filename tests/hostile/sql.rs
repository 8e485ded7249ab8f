//! Hostile servers: fake PostgreSQL and MySQL servers (just enough of each protocol for
//! sqlx to connect, prepare and execute) that announce a huge value, send rows or notices
//! without end, answer one byte a second or never answer.
//!
//! Each server runs on a thread of its own with its own runtime, as a real server would
//! run elsewhere: it keeps the client's socket full while the client parses. Every loop is
//! bounded (by [`SERVER_DEADLINE`] and, for floods, by [`FLOOD_BYTES`]).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use component_model::{AsyncAssign, ComponentError, DatabaseSource, ErrorKind, Sources};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::common::{
    CANARY, CapturedLogs, MIB, Measured, assert_no_canary, capture, measure, serial,
};

/// How long a fake server serves at most.
const SERVER_DEADLINE: Duration = Duration::from_secs(45);
/// The most bytes a flooding connection sends.
const FLOOD_BYTES: u64 = 6 << 30;
/// The most the resident memory may grow during a case.
const RSS_BOUND: usize = 64 * MIB;

/// What the server does once the client executes its query.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Hostile {
    /// PostgreSQL: a `DataRow` announcing 2^31−1 bytes; MySQL: a value of 4 GiB chained
    /// from 0xFFFFFF-byte packets. Then the bytes, without end.
    HugeValue,
    /// Rows without end.
    EndlessRows,
    /// PostgreSQL `NoticeResponse` messages without end.
    EndlessNotices,
    /// A correct answer, one byte a second.
    OneByteASecond,
    /// No answer at all.
    Silent,
}

#[derive(Clone, Copy, Debug)]
enum Protocol {
    Postgres,
    MySql,
}

/// A fake server on its own thread; stops when dropped.
struct Server {
    port: u16,
    /// When the server saw a client's connection end after the hostile part began.
    closed: Arc<Mutex<Option<Instant>>>,
    _stop: tokio::sync::oneshot::Sender<()>,
}

fn server(protocol: Protocol, hostile: Hostile) -> Server {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.set_nonblocking(true).expect("nonblocking");
    let port = listener.local_addr().expect("address").port();
    let closed = Arc::new(Mutex::new(None));
    let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
    let seen = closed.clone();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("server runtime");
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
            let deadline = tokio::time::sleep(SERVER_DEADLINE);
            tokio::pin!(deadline);
            loop {
                tokio::select! {
                    _ = &mut stopped => return,
                    _ = &mut deadline => return,
                    accepted = listener.accept() => {
                        let Ok((socket, _)) = accepted else { return };
                        let seen = seen.clone();
                        tokio::spawn(async move {
                            let _ = match protocol {
                                Protocol::Postgres => serve_pg(socket, hostile, seen).await,
                                Protocol::MySql => serve_mysql(socket, hostile, seen).await,
                            };
                        });
                    }
                }
            }
        });
    });
    Server {
        port,
        closed,
        _stop: stop,
    }
}

// ---------------------------------------------------------------- PostgreSQL

/// One PostgreSQL message: tag, length, body.
fn pg_msg(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut m = vec![tag];
    m.extend_from_slice(&(body.len() as u32 + 4).to_be_bytes());
    m.extend_from_slice(body);
    m
}

fn pg_data_row(values: &[&[u8]]) -> Vec<u8> {
    let mut body = (values.len() as u16).to_be_bytes().to_vec();
    for v in values {
        body.extend_from_slice(&(v.len() as u32).to_be_bytes());
        body.extend_from_slice(v);
    }
    pg_msg(b'D', &body)
}

fn pg_row_description(columns: &[&str]) -> Vec<u8> {
    let mut body = (columns.len() as u16).to_be_bytes().to_vec();
    for c in columns {
        body.extend_from_slice(c.as_bytes());
        body.push(0);
        body.extend_from_slice(&0u32.to_be_bytes()); // table
        body.extend_from_slice(&0u16.to_be_bytes()); // attribute
        body.extend_from_slice(&25u32.to_be_bytes()); // TEXT
        body.extend_from_slice(&(-1i16).to_be_bytes());
        body.extend_from_slice(&(-1i32).to_be_bytes());
        body.extend_from_slice(&1u16.to_be_bytes()); // binary
    }
    pg_msg(b'T', &body)
}

/// A notice of 4 KiB: sqlx logs every notice, and the captured TRACE log is part of the
/// measured memory, so few large notices rather than many small ones.
fn pg_notice() -> Vec<u8> {
    let message = "still working on it, please keep reading; ".repeat(96);
    let mut body = Vec::new();
    for (field, value) in [
        (b'S', "NOTICE"),
        (b'V', "NOTICE"),
        (b'C', "00000"),
        (b'M', message.as_str()),
    ] {
        body.push(field);
        body.extend_from_slice(value.as_bytes());
        body.push(0);
    }
    body.push(0);
    pg_msg(b'N', &body)
}

async fn serve_pg(
    mut s: TcpStream,
    hostile: Hostile,
    closed: Arc<Mutex<Option<Instant>>>,
) -> std::io::Result<()> {
    // SSLRequest (refused) and StartupMessage.
    loop {
        let len = s.read_u32().await? as usize;
        let code = s.read_u32().await?;
        let mut rest = vec![0; len.saturating_sub(8).min(64 * 1024)];
        s.read_exact(&mut rest).await?;
        if code == 80_877_103 {
            s.write_all(b"N").await?;
            continue;
        }
        break;
    }
    // Cleartext password, then ready.
    s.write_all(&pg_msg(b'R', &3u32.to_be_bytes())).await?;
    let (tag, _password) = read_pg(&mut s).await?;
    assert_eq!(tag, b'p');
    let mut out = pg_msg(b'R', &0u32.to_be_bytes());
    out.extend(pg_msg(b'S', b"server_version\x0016.0\x00"));
    out.extend(pg_msg(b'K', &[0, 0, 0, 7, 0, 0, 0, 9]));
    out.extend(pg_msg(b'Z', b"I"));
    s.write_all(&out).await?;

    let mut out = Vec::new();
    let mut columns: Vec<&str> = vec!["value"];
    let mut params: Vec<u8> = vec![0, 0];
    loop {
        let (tag, body) = read_pg(&mut s).await?;
        match tag {
            b'P' => {
                // statement\0 query\0 n oids
                let query_end = body
                    .iter()
                    .skip_while(|b| **b != 0)
                    .skip(1)
                    .position(|b| *b == 0);
                let name_end = body.iter().position(|b| *b == 0).unwrap_or(0);
                let query = query_end
                    .map(|e| {
                        String::from_utf8_lossy(&body[name_end + 1..name_end + 1 + e]).into_owned()
                    })
                    .unwrap_or_default();
                columns = if query.contains("\"key\"") {
                    vec!["key", "value"]
                } else {
                    vec!["value"]
                };
                params = query_end
                    .map(|e| body[name_end + 1 + e + 1..].to_vec())
                    .unwrap_or_else(|| vec![0, 0]);
                out.extend(pg_msg(b'1', &[]));
            }
            b'D' => {
                out.extend(pg_msg(b't', &params));
                out.extend(pg_row_description(&columns));
            }
            b'B' => out.extend(pg_msg(b'2', &[])),
            b'C' => out.extend(pg_msg(b'3', &[])),
            b'S' => {
                out.extend(pg_msg(b'Z', b"I"));
                s.write_all(&out).await?;
                out.clear();
            }
            b'Q' => {
                out.extend(pg_msg(b'I', &[]));
                out.extend(pg_msg(b'Z', b"I"));
                s.write_all(&out).await?;
                out.clear();
            }
            b'E' => {
                s.write_all(&out).await?;
                let row: Vec<&[u8]> = if columns.len() == 2 {
                    vec![b"db_url", b"postgres://elsewhere"]
                } else {
                    vec![b"42"]
                };
                let mut answer = pg_data_row(&row);
                answer.extend(pg_msg(b'C', b"SELECT 1\0"));
                answer.extend(pg_msg(b'3', &[]));
                answer.extend(pg_msg(b'Z', b"I"));
                let two = columns.len() == 2;
                return hostile_answer(s, hostile, answer, closed, move |i, buf| match hostile {
                    Hostile::HugeValue if i == 0 => {
                        buf.push(b'D');
                        buf.extend_from_slice(&0x7FFF_FFFFu32.to_be_bytes());
                        buf.extend_from_slice(&1u16.to_be_bytes());
                        buf.extend_from_slice(&(0x7FFF_FFFFu32 - 10).to_be_bytes());
                    }
                    Hostile::HugeValue => buf.resize(buf.len() + 64 * 1024, b'a'),
                    Hostile::EndlessRows => {
                        let key = format!("k{i}");
                        let value = [b'v'; 200];
                        if two {
                            buf.extend(pg_data_row(&[key.as_bytes(), &value]));
                        } else {
                            buf.extend(pg_data_row(&[&value]));
                        }
                    }
                    _ => buf.extend(pg_notice()),
                })
                .await;
            }
            b'X' => return Ok(()),
            _ => {}
        }
    }
}

async fn read_pg(s: &mut TcpStream) -> std::io::Result<(u8, Vec<u8>)> {
    let tag = s.read_u8().await?;
    let len = s.read_u32().await? as usize;
    let mut body = vec![0; len.saturating_sub(4).min(1024 * 1024)];
    s.read_exact(&mut body).await?;
    Ok((tag, body))
}

// ---------------------------------------------------------------- MySQL

fn lenenc_str(out: &mut Vec<u8>, s: &[u8]) {
    out.push(s.len() as u8); // short strings only
    out.extend_from_slice(s);
}

fn column_definition(name: &str) -> Vec<u8> {
    let mut p = Vec::new();
    lenenc_str(&mut p, b"def");
    lenenc_str(&mut p, b"test");
    lenenc_str(&mut p, b"config");
    lenenc_str(&mut p, b"config");
    lenenc_str(&mut p, name.as_bytes());
    lenenc_str(&mut p, name.as_bytes());
    p.push(0x0c);
    p.extend_from_slice(&45u16.to_le_bytes()); // utf8mb4_general_ci
    p.extend_from_slice(&1024u32.to_le_bytes());
    p.push(0xfd); // VAR_STRING
    p.extend_from_slice(&0u16.to_le_bytes());
    p.push(0);
    p.extend_from_slice(&[0, 0]);
    p
}

/// Packets of a MySQL answer, numbered from `seq`.
struct Packets {
    out: Vec<u8>,
    seq: u8,
}

impl Packets {
    fn new(seq: u8) -> Self {
        Packets {
            out: Vec::new(),
            seq,
        }
    }
    fn push(&mut self, payload: &[u8]) {
        let len = (payload.len() as u32).to_le_bytes();
        self.out.extend_from_slice(&len[..3]);
        self.out.push(self.seq);
        self.seq = self.seq.wrapping_add(1);
        self.out.extend_from_slice(payload);
    }
}

const MYSQL_OK: &[u8] = &[0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00];
const MYSQL_END: &[u8] = &[0xfe, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00];

fn binary_row(values: &[&[u8]]) -> Vec<u8> {
    let mut p = vec![0x00];
    p.resize(1 + (values.len() + 7 + 2) / 8, 0);
    for v in values {
        lenenc_str(&mut p, v);
    }
    p
}

async fn read_mysql(s: &mut TcpStream) -> std::io::Result<(u8, Vec<u8>)> {
    let mut header = [0u8; 4];
    s.read_exact(&mut header).await?;
    let len = u32::from_le_bytes([header[0], header[1], header[2], 0]) as usize;
    let mut body = vec![0; len];
    s.read_exact(&mut body).await?;
    Ok((header[3], body))
}

async fn serve_mysql(
    mut s: TcpStream,
    hostile: Hostile,
    closed: Arc<Mutex<Option<Instant>>>,
) -> std::io::Result<()> {
    // Handshake v10: PROTOCOL_41, SECURE_CONNECTION, PLUGIN_AUTH, DEPRECATE_EOF, no SSL.
    let caps: u32 = 0x1 | 0x8 | 0x200 | 0x2000 | 0x8000 | 0x8_0000 | 0x100_0000;
    let mut h = vec![0x0a];
    h.extend_from_slice(b"8.0.36\0");
    h.extend_from_slice(&7u32.to_le_bytes());
    h.extend_from_slice(b"abcdefgh");
    h.push(0);
    h.extend_from_slice(&(caps as u16).to_le_bytes());
    h.push(45);
    h.extend_from_slice(&2u16.to_le_bytes());
    h.extend_from_slice(&((caps >> 16) as u16).to_le_bytes());
    h.push(21);
    h.extend_from_slice(&[0; 10]);
    h.extend_from_slice(b"ijklmnopqrst\0");
    h.extend_from_slice(b"mysql_native_password\0");
    let mut p = Packets::new(0);
    p.push(&h);
    s.write_all(&p.out).await?;
    let (seq, _response) = read_mysql(&mut s).await?;
    let mut p = Packets::new(seq.wrapping_add(1));
    p.push(MYSQL_OK);
    s.write_all(&p.out).await?;

    let mut columns: Vec<&str> = vec!["value"];
    loop {
        let (_, body) = read_mysql(&mut s).await?;
        let Some(&command) = body.first() else {
            continue;
        };
        let mut p = Packets::new(1);
        match command {
            // COM_QUERY (the connection's `SET ...`), COM_PING
            0x03 | 0x0e => {
                p.push(MYSQL_OK);
                s.write_all(&p.out).await?;
            }
            // COM_STMT_PREPARE
            0x16 => {
                let query = String::from_utf8_lossy(&body[1..]).into_owned();
                columns = if query.contains("`key`") {
                    vec!["key", "value"]
                } else {
                    vec!["value"]
                };
                let params = query.matches('?').count() as u16;
                let mut ok = vec![0x00];
                ok.extend_from_slice(&1u32.to_le_bytes());
                ok.extend_from_slice(&(columns.len() as u16).to_le_bytes());
                ok.extend_from_slice(&params.to_le_bytes());
                ok.push(0);
                ok.extend_from_slice(&0u16.to_le_bytes());
                p.push(&ok);
                for _ in 0..params {
                    p.push(&column_definition("?"));
                }
                for c in &columns {
                    p.push(&column_definition(c));
                }
                s.write_all(&p.out).await?;
            }
            // COM_STMT_EXECUTE
            0x17 => {
                p.push(&[columns.len() as u8]);
                for c in &columns {
                    p.push(&column_definition(c));
                }
                s.write_all(&p.out).await?;
                let two = columns.len() == 2;
                let mut answer = Packets::new(p.seq);
                if two {
                    answer.push(&binary_row(&[b"db_url", b"mysql://elsewhere"]));
                } else {
                    answer.push(&binary_row(&[b"42"]));
                }
                answer.push(MYSQL_END);
                let mut seq = p.seq;
                // The huge value: one row packet of 4 GiB, as 0xFFFFFF-byte packets.
                let mut left_in_packet = 0usize;
                return hostile_answer(
                    s,
                    hostile,
                    answer.out,
                    closed,
                    move |i, buf| match hostile {
                        Hostile::HugeValue => {
                            if i == 0 {
                                buf.extend_from_slice(&[0xff, 0xff, 0xff, seq]);
                                seq = seq.wrapping_add(1);
                                buf.push(0x00);
                                buf.resize(buf.len() + (columns.len() + 9) / 8, 0);
                                buf.push(0xfe);
                                buf.extend_from_slice(&(4u64 << 30).to_le_bytes());
                                left_in_packet = 0xFF_FFFF - (buf.len() - 4);
                            }
                            let mut room = 64 * 1024;
                            while room > 0 {
                                if left_in_packet == 0 {
                                    buf.extend_from_slice(&[0xff, 0xff, 0xff, seq]);
                                    seq = seq.wrapping_add(1);
                                    left_in_packet = 0xFF_FFFF;
                                }
                                let n = room.min(left_in_packet);
                                buf.resize(buf.len() + n, b'a');
                                left_in_packet -= n;
                                room -= n;
                            }
                        }
                        _ => {
                            let key = format!("k{i}");
                            let value = [b'v'; 200];
                            let mut p = Packets::new(seq);
                            if two {
                                p.push(&binary_row(&[key.as_bytes(), &value]));
                            } else {
                                p.push(&binary_row(&[&value]));
                            }
                            seq = p.seq;
                            buf.extend(p.out);
                        }
                    },
                )
                .await;
            }
            0x01 => return Ok(()),
            _ => {}
        }
    }
}

// ---------------------------------------------------------------- the hostile part

/// Answers the query as `hostile` says: floods built by `next(i, buf)` (bounded by
/// [`FLOOD_BYTES`] and [`SERVER_DEADLINE`]), `answer` one byte a second, or nothing.
/// Records when the client closed the connection.
async fn hostile_answer(
    mut s: TcpStream,
    hostile: Hostile,
    answer: Vec<u8>,
    closed: Arc<Mutex<Option<Instant>>>,
    mut next: impl FnMut(u64, &mut Vec<u8>),
) -> std::io::Result<()> {
    let started = Instant::now();
    let (mut read, mut write) = s.split();
    let gone = async {
        let mut buf = [0u8; 1024];
        loop {
            match read.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    };
    let talk = async {
        match hostile {
            Hostile::Silent => {
                tokio::time::sleep(SERVER_DEADLINE).await;
            }
            Hostile::OneByteASecond => {
                for byte in &answer {
                    if started.elapsed() > SERVER_DEADLINE
                        || write.write_all(&[*byte]).await.is_err()
                    {
                        return;
                    }
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                tokio::time::sleep(SERVER_DEADLINE).await;
            }
            _ => {
                let mut sent = 0u64;
                let mut i = 0u64;
                let mut buf = Vec::with_capacity(128 * 1024);
                while sent < FLOOD_BYTES && started.elapsed() < SERVER_DEADLINE {
                    buf.clear();
                    while buf.len() < 64 * 1024 {
                        next(i, &mut buf);
                        i += 1;
                    }
                    if write.write_all(&buf).await.is_err() {
                        return;
                    }
                    sent += buf.len() as u64;
                }
                tokio::time::sleep(SERVER_DEADLINE).await;
            }
        }
    };
    tokio::select! {
        _ = gone => {}
        _ = talk => {}
    }
    *closed.lock().unwrap() = Some(Instant::now());
    Ok(())
}

// ---------------------------------------------------------------- the cases

#[derive(AsyncAssign, Debug)]
#[allow(dead_code)]
struct Query10 {
    #[component(
        fetch_from = "database",
        query = "SELECT value FROM config WHERE key = $1",
        key = "answer",
        timeout = "10s"
    )]
    value: String,
}

#[derive(AsyncAssign, Debug)]
#[allow(dead_code)]
struct Query3 {
    #[component(
        fetch_from = "database",
        query = "SELECT value FROM config WHERE key = $1",
        key = "answer",
        timeout = "3s"
    )]
    value: String,
}

#[derive(AsyncAssign, Debug)]
#[allow(dead_code)]
struct MyQuery10 {
    #[component(
        fetch_from = "database",
        query = "SELECT value FROM config WHERE `key` = ?",
        key = "answer",
        timeout = "10s"
    )]
    value: String,
}

#[derive(AsyncAssign, Debug)]
#[allow(dead_code)]
struct MyQuery3 {
    #[component(
        fetch_from = "database",
        query = "SELECT value FROM config WHERE `key` = ?",
        key = "answer",
        timeout = "3s"
    )]
    value: String,
}

#[derive(AsyncAssign, Debug)]
#[allow(dead_code)]
struct Table10 {
    #[component(
        fetch_from = "database",
        table = "config",
        key = "db_url",
        timeout = "10s"
    )]
    db_url: String,
}

/// What one case expects.
struct Expect {
    /// The kinds the field may fail with.
    kinds: &'static [ErrorKind],
    /// The field's timeout.
    timeout: Duration,
    /// What the error must name (field, source, key).
    names: &'static [&'static str],
    /// A response limit other than the default.
    max_response: Option<usize>,
    /// Whether to capture the TRACE log (sqlx logs every notice: a flood of notices
    /// captured fills memory with the log itself).
    trace: bool,
}

impl Expect {
    /// A server that answers late or never: the field's 3 s timeout ends the read.
    fn late(names: &'static [&'static str]) -> Self {
        Expect {
            kinds: LATE,
            timeout: Duration::from_secs(3),
            names,
            max_response: None,
            trace: true,
        }
    }
}

async fn run<F, Fut>(protocol: Protocol, hostile: Hostile, fetch: F, expect: Expect)
where
    F: FnOnce(Sources) -> Fut,
    Fut: std::future::Future<Output = Result<(), Vec<ComponentError>>>,
{
    let _s = serial().await;
    let logs = CapturedLogs::default();
    let _logging = expect.trace.then(|| capture(&logs));
    let server = server(protocol, hostile);
    let url = match protocol {
        Protocol::Postgres => format!("postgres://app:{CANARY}@127.0.0.1:{}/test", server.port),
        Protocol::MySql => format!("mysql://app:{CANARY}@127.0.0.1:{}/test", server.port),
    };
    let mut source = DatabaseSource::lazy(&url);
    if let Some(bytes) = expect.max_response {
        source = source.with_max_response(bytes);
    }
    let debug = format!("{source:?}");
    let sources = Sources::new().register("database", source);
    let Measured {
        output,
        elapsed,
        peak,
    } = measure(fetch(sources)).await;
    let returned = Instant::now();
    eprintln!(
        "sql {protocol:?} {hostile:?}: {elapsed:?}, peak RSS +{} MiB: {output:?}",
        peak / MIB
    );
    let errors = output.expect_err("a hostile server must fail the field");
    assert_eq!(errors.len(), 1, "{errors:?}");
    let shown = errors[0].to_string();
    assert!(
        expect.kinds.contains(&errors[0].kind()),
        "{hostile:?}: kind {:?}: {shown}",
        errors[0].kind()
    );
    for name in expect.names {
        assert!(
            shown.contains(name),
            "{hostile:?}: `{name}` not in: {shown}"
        );
    }
    assert!(
        elapsed < expect.timeout + Duration::from_secs(1),
        "{hostile:?}: took {elapsed:?} with a field timeout of {:?}",
        expect.timeout
    );
    assert!(
        peak < RSS_BOUND,
        "{hostile:?}: resident memory grew by {} MiB",
        peak / MIB
    );
    // The connection is closed, not handed back to the pool to be drained in the
    // background: the server sees it end soon after the field failed.
    let waited = Instant::now();
    while server.closed.lock().unwrap().is_none() && waited.elapsed() < Duration::from_secs(3) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let closed = *server.closed.lock().unwrap();
    assert!(
        closed.is_some_and(|at| at.saturating_duration_since(returned) < Duration::from_secs(2)),
        "{hostile:?}: the connection to the server was still open 3 s after the field failed"
    );
    assert_no_canary("the error", &format!("{shown} {:?}", errors[0]));
    assert_no_canary("the source's Debug", &debug);
    assert_no_canary("the TRACE log", &logs.text());
}

const TOO_LARGE: &[ErrorKind] = &[ErrorKind::TooLarge];
const LATE: &[ErrorKind] = &[ErrorKind::Timeout];

macro_rules! fetch {
    ($t:ty) => {
        |sources: Sources| async move { <$t>::fetch_all_components_with(&sources).await.map(drop) }
    };
}

#[tokio::test]
async fn postgres_data_row_announcing_2_gib_is_refused_within_the_response_limit() {
    let expect = Expect {
        kinds: TOO_LARGE,
        timeout: Duration::from_secs(10),
        names: &[
            "Query10.value",
            "database",
            "SELECT value FROM config WHERE key = $1",
            "answer",
        ],
        max_response: None,
        trace: true,
    };
    run(
        Protocol::Postgres,
        Hostile::HugeValue,
        fetch!(Query10),
        expect,
    )
    .await;
}

#[tokio::test]
async fn postgres_endless_rows_of_a_table_read_stop_at_the_row_limit() {
    let expect = Expect {
        kinds: TOO_LARGE,
        timeout: Duration::from_secs(10),
        names: &["Table10.db_url", "database", "config.db_url"],
        max_response: None,
        trace: true,
    };
    run(
        Protocol::Postgres,
        Hostile::EndlessRows,
        fetch!(Table10),
        expect,
    )
    .await;
}

#[tokio::test]
async fn postgres_endless_notices_cannot_outlast_the_field_timeout() {
    let expect = Expect {
        kinds: &[ErrorKind::TooLarge, ErrorKind::Timeout],
        timeout: Duration::from_secs(3),
        names: &[
            "Query3.value",
            "database",
            "SELECT value FROM config WHERE key = $1",
        ],
        max_response: None,
        trace: true,
    };
    run(
        Protocol::Postgres,
        Hostile::EndlessNotices,
        fetch!(Query3),
        expect,
    )
    .await;
}

/// The field timeout fires while the socket always has data: with a limit too large to
/// end the flood, on a runtime whose other worker keeps the client's socket full, the read
/// must still give the timer its turn.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_endless_notices_under_a_huge_limit_still_time_out() {
    let expect = Expect {
        kinds: LATE,
        timeout: Duration::from_secs(3),
        names: &[
            "Query3.value",
            "database",
            "SELECT value FROM config WHERE key = $1",
        ],
        max_response: Some(1 << 40),
        trace: false,
    };
    run(
        Protocol::Postgres,
        Hostile::EndlessNotices,
        fetch!(Query3),
        expect,
    )
    .await;
}

#[tokio::test]
async fn postgres_one_byte_a_second_times_out() {
    let expect = Expect::late(&[
        "Query3.value",
        "database",
        "SELECT value FROM config WHERE key = $1",
    ]);
    run(
        Protocol::Postgres,
        Hostile::OneByteASecond,
        fetch!(Query3),
        expect,
    )
    .await;
}

#[tokio::test]
async fn postgres_never_answering_times_out() {
    let expect = Expect::late(&[
        "Query3.value",
        "database",
        "SELECT value FROM config WHERE key = $1",
    ]);
    run(Protocol::Postgres, Hostile::Silent, fetch!(Query3), expect).await;
}

#[tokio::test]
async fn mysql_value_chained_to_4_gib_is_refused_within_the_response_limit() {
    let expect = Expect {
        kinds: TOO_LARGE,
        timeout: Duration::from_secs(10),
        names: &[
            "MyQuery10.value",
            "database",
            "SELECT value FROM config WHERE `key` = ?",
            "answer",
        ],
        max_response: None,
        trace: true,
    };
    run(
        Protocol::MySql,
        Hostile::HugeValue,
        fetch!(MyQuery10),
        expect,
    )
    .await;
}

#[tokio::test]
async fn mysql_endless_rows_of_a_table_read_stop_at_the_row_limit() {
    let expect = Expect {
        kinds: TOO_LARGE,
        timeout: Duration::from_secs(10),
        names: &["Table10.db_url", "database", "config.db_url"],
        max_response: None,
        trace: true,
    };
    run(
        Protocol::MySql,
        Hostile::EndlessRows,
        fetch!(Table10),
        expect,
    )
    .await;
}

#[tokio::test]
async fn mysql_one_byte_a_second_times_out() {
    let expect = Expect::late(&[
        "MyQuery3.value",
        "database",
        "SELECT value FROM config WHERE `key` = ?",
    ]);
    run(
        Protocol::MySql,
        Hostile::OneByteASecond,
        fetch!(MyQuery3),
        expect,
    )
    .await;
}

#[tokio::test]
async fn mysql_never_answering_times_out() {
    let expect = Expect::late(&[
        "MyQuery3.value",
        "database",
        "SELECT value FROM config WHERE `key` = ?",
    ]);
    run(Protocol::MySql, Hostile::Silent, fetch!(MyQuery3), expect).await;
}
