//! Hostile servers: kafka. A raw TCP server that answers the client's first request (the
//! `ApiVersions` handshake) with a frame announcing 2 GiB, a frame over the client's bound,
//! a flood of frames for requests never made, one byte a second, or nothing at all; and a
//! broker double speaking just enough of the protocol (ApiVersions, Metadata v0, Fetch v4)
//! to serve a gzip batch that inflates to 256 MiB, or 30 batches of one response that
//! inflate to 16 MB each. Every connection goes through the source's relay, which refuses
//! a frame over the bound (4 × the largest message) from its length, and a response whose
//! batches would inflate past 4 × that together before rskafka inflates them.
//! The source takes no credentials (no SASL in this version): the canary checks of
//! these cases hold as long as nothing else leaks it, and pin that.

use std::time::Duration;

use component_model::{AsyncAssign, ComponentError, ErrorKind, KafkaSource, Sources};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::common::{
    CanaryWatch, CapturedLogs, MIB, Measured, SERVER_FOR, assert_bounded, assert_case,
    assert_failed, busy_during, capture, flood, measure, on_workers, serial, tcp_server,
    thread_server,
};

#[derive(AsyncAssign, Debug)]
struct App {
    #[component(stream_from = "kafka", topic = "config")]
    config: String,
}

/// The time limit of every case (connecting, and each request).
const LIMIT: Duration = Duration::from_secs(2);

/// Reads one request frame (at most 64 KiB); `false` when the client went away.
async fn request(socket: &mut TcpStream) -> bool {
    let Ok(len) = socket.read_u32().await else {
        return false;
    };
    if len > 64 * 1024 {
        return false;
    }
    let mut body = vec![0u8; len as usize];
    socket.read_exact(&mut body).await.is_ok()
}

/// Fetches `App` from the broker at `127.0.0.1:port`, measured.
async fn fetch(port: u16) -> Measured<Result<App, Vec<ComponentError>>> {
    let kafka = KafkaSource::new([format!("127.0.0.1:{port}")]).with_timeout(LIMIT);
    let sources = Sources::new().register("kafka", kafka);
    measure(App::fetch_all_components_with(&sources)).await
}

/// A response announcing 2 GiB (i32::MAX), then silence: refused from its length by the
/// source's relay (rskafka alone would read past it in 4 MiB steps until the deadline).
#[tokio::test]
async fn a_response_announcing_two_gib_is_not_buffered() {
    let _s = serial().await;
    let logs = CapturedLogs::default();
    let _g = capture(&logs);
    let port = tcp_server(|mut s| async move {
        if request(&mut s).await && s.write_all(&i32::MAX.to_be_bytes()).await.is_ok() {
            tokio::time::sleep(SERVER_FOR).await;
        }
    })
    .await;
    let m = fetch(port).await;
    assert_case(
        "kafka 2 GiB frame",
        m,
        None,
        LIMIT,
        16,
        ErrorKind::TooLarge,
        "App.config",
        "kafka",
        &logs.text(),
    );
}

/// A whole response of 5 MiB, over the client's frame bound (4 MiB): never held, and
/// said to be too large, with the size.
#[tokio::test]
async fn a_response_over_the_frame_bound_is_refused() {
    let _s = serial().await;
    let logs = CapturedLogs::default();
    let _g = capture(&logs);
    let port = tcp_server(|mut s| async move {
        let len = 5 * MIB as u32;
        if request(&mut s).await && s.write_all(&len.to_be_bytes()).await.is_ok() {
            let _ = s.write_all(&vec![0u8; len as usize]).await;
            tokio::time::sleep(SERVER_FOR).await;
        }
    })
    .await;
    let m = fetch(port).await;
    let e = assert_case(
        "kafka 5 MiB frame",
        m,
        None,
        LIMIT,
        32,
        ErrorKind::TooLarge,
        "App.config",
        "kafka",
        &logs.text(),
    );
    assert!(e.to_string().contains("5242880 bytes"), "{e}");
}

/// Responses to requests never made (correlation ID -1), as fast as the socket takes
/// them: the relay breaks the connection off at the first (rskafka alone logged a
/// warning for each, some 500 000 lines in the 2 s until the deadline), and nothing
/// reads on once the field failed.
#[test]
fn a_flood_of_unsolicited_responses_is_broken_off_at_the_first() {
    let watch = CanaryWatch::default();
    on_workers(&watch, async {
        let _s = serial().await;
        let port = thread_server(|mut s| async move {
            if request(&mut s).await {
                let frame = [0, 0, 0, 4, 0xFF, 0xFF, 0xFF, 0xFF];
                flood(&mut s, &frame.repeat(8 * 1024)).await;
            }
        });
        let m = fetch(port).await;
        let busy = busy_during(Duration::from_secs(1)).await;
        eprintln!(
            "kafka unsolicited flood: {:?}, +{} MiB, then {busy:?} of CPU in 1 s ({} log lines)",
            m.elapsed,
            m.peak / MIB,
            watch.found().1
        );
        assert_bounded(&m, LIMIT, 64);
        assert!(
            busy < Duration::from_millis(300),
            "busy for {busy:?} after the fetch failed"
        );
        assert!(watch.found().1 < 1000, "{} log lines", watch.found().1);
        let e = assert_failed(
            m.output,
            ErrorKind::Unavailable,
            "App.config",
            "kafka",
            &watch.found().0,
        );
        assert!(e.to_string().contains("a request it was never sent"), "{e}");
    })
}

/// The response one byte a second: the request's deadline.
#[tokio::test]
async fn a_response_one_byte_a_second_times_out() {
    let _s = serial().await;
    let logs = CapturedLogs::default();
    let _g = capture(&logs);
    let port = tcp_server(|mut s| async move {
        if request(&mut s).await {
            for b in [0u8, 0, 0, 6, 0, 0, 0, 0, 0, 0] {
                if s.write_all(&[b]).await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    })
    .await;
    let m = fetch(port).await;
    assert_case(
        "kafka slow response",
        m,
        None,
        LIMIT,
        16,
        ErrorKind::Timeout,
        "App.config",
        "kafka",
        &logs.text(),
    );
}

/// A server that accepts the connection and never answers.
#[tokio::test]
async fn a_server_that_never_answers_times_out() {
    let _s = serial().await;
    let logs = CapturedLogs::default();
    let _g = capture(&logs);
    let port = tcp_server(|s| async move {
        tokio::time::sleep(SERVER_FOR).await;
        drop(s);
    })
    .await;
    let m = fetch(port).await;
    assert_case(
        "kafka silent server",
        m,
        None,
        LIMIT,
        16,
        ErrorKind::Timeout,
        "App.config",
        "kafka",
        &logs.text(),
    );
}

/// A broker double: just enough Kafka for the start-up read of topic `config` (one
/// partition, led by the double itself), whose Fetch is answered with one gzip batch.
mod double {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    fn varint(mut v: u64, out: &mut Vec<u8>) {
        loop {
            let b = (v & 0x7F) as u8;
            v >>= 7;
            if v == 0 {
                out.push(b);
                return;
            }
            out.push(b | 0x80);
        }
    }

    fn zigzag(v: i64) -> u64 {
        ((v << 1) ^ (v >> 63)) as u64
    }

    /// A deflate bit stream (least significant bit first; Huffman codes from their top).
    struct Bits {
        out: Vec<u8>,
        acc: u64,
        n: u32,
    }

    impl Bits {
        fn put(&mut self, v: u64, n: u32) {
            self.acc |= v << self.n;
            self.n += n;
            while self.n >= 8 {
                self.out.push(self.acc as u8);
                self.acc >>= 8;
                self.n -= 8;
            }
        }
        fn code(&mut self, c: u32, n: u32) {
            for i in (0..n).rev() {
                self.put(u64::from((c >> i) & 1), 1);
            }
        }
        /// A literal byte in the fixed Huffman code.
        fn literal(&mut self, v: u8) {
            match v {
                0..=143 => self.code(0x30 + u32::from(v), 8),
                _ => self.code(0x190 + u32::from(v) - 144, 9),
            }
        }
    }

    fn crc32c(data: &[u8]) -> u32 {
        let mut crc = !0u32;
        for &b in data {
            crc ^= u32::from(b);
            for _ in 0..8 {
                crc = if crc & 1 != 0 {
                    (crc >> 1) ^ 0x82F6_3B78
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }

    /// The CRC-32 of gzip (IEEE, reflected), a byte at a time.
    fn crc32(data: impl Iterator<Item = u8>) -> u32 {
        let mut table = [0u32; 256];
        for (i, t) in table.iter_mut().enumerate() {
            let mut c = i as u32;
            for _ in 0..8 {
                c = if c & 1 != 0 {
                    (c >> 1) ^ 0xEDB8_8320
                } else {
                    c >> 1
                };
            }
            *t = c;
        }
        let mut crc = !0u32;
        for b in data {
            crc = table[((crc ^ u32::from(b)) & 0xFF) as usize] ^ (crc >> 8);
        }
        !crc
    }

    /// A record batch (magic 2, gzip) of one record whose value is `258 * k` zero bytes:
    /// a deflate stream of one literal and `k` copies of 258 bytes at distance 1 (13 bits
    /// each). Unless `whole`, the gzip trailer is left zero: rskafka inflates the whole
    /// record before it gets there (then fails on it); `whole` batches are read whole.
    pub(super) fn gzip_bomb(k: usize, whole: bool) -> Vec<u8> {
        let value = (k * 258) as i64;
        let mut value_len = Vec::new();
        varint(zigzag(value), &mut value_len);
        // Attributes, timestamp delta, offset delta, key length -1; the value; no headers.
        let rest = 4 + value_len.len() as i64 + value + 1;
        let mut prefix = Vec::new();
        varint(zigzag(rest), &mut prefix);
        prefix.extend_from_slice(&[0, 0, 0, 1]);
        prefix.extend_from_slice(&value_len);
        let mut bits = Bits {
            out: vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff],
            acc: 0,
            n: 0,
        };
        bits.put(1, 1); // the final block
        bits.put(1, 2); // fixed Huffman codes
        for &b in &prefix {
            bits.literal(b);
        }
        // The value's zeros and the header count (0) after them.
        bits.literal(0);
        for _ in 0..k {
            bits.code(0xC5, 8); // length 258
            bits.code(0, 5); // distance 1
        }
        bits.code(0, 7); // end of block
        bits.put(0, 7);
        if whole {
            let zeros = std::iter::repeat_n(0u8, k * 258 + 1);
            let crc = crc32(prefix.iter().copied().chain(zeros));
            bits.out.extend_from_slice(&crc.to_le_bytes());
            let inflated = (prefix.len() + k * 258 + 1) as u32;
            bits.out.extend_from_slice(&inflated.to_le_bytes());
        } else {
            bits.out.extend_from_slice(&[0; 8]);
        }
        let mut body = Vec::new();
        body.extend_from_slice(&1i16.to_be_bytes()); // attributes: gzip
        body.extend_from_slice(&0i32.to_be_bytes()); // last offset delta
        body.extend_from_slice(&[0; 16]); // timestamps
        body.extend_from_slice(&(-1i64).to_be_bytes()); // producer ID
        body.extend_from_slice(&(-1i16).to_be_bytes()); // producer epoch
        body.extend_from_slice(&(-1i32).to_be_bytes()); // base sequence
        body.extend_from_slice(&1i32.to_be_bytes()); // one record
        body.extend_from_slice(&bits.out);
        let mut batch = 0i64.to_be_bytes().to_vec();
        batch.extend_from_slice(&((4 + 1 + 4 + body.len()) as i32).to_be_bytes());
        batch.extend_from_slice(&0i32.to_be_bytes()); // leader epoch
        batch.push(2);
        batch.extend_from_slice(&crc32c(&body).to_be_bytes());
        batch.extend_from_slice(&body);
        batch
    }

    fn string(s: &str, out: &mut Vec<u8>) {
        out.extend_from_slice(&(s.len() as i16).to_be_bytes());
        out.extend_from_slice(s.as_bytes());
    }

    fn ints(values: &[i32], out: &mut Vec<u8>) {
        for v in values {
            out.extend_from_slice(&v.to_be_bytes());
        }
    }

    /// Answers ApiVersions (any version: ApiVersions 0-3, Metadata 0, Fetch 4), Metadata
    /// (one broker: this one; topic `config`, partition 0) and Fetch (`records`), until
    /// the client goes away.
    pub(super) async fn serve(mut s: TcpStream, port: u16, records: &'static [u8]) {
        loop {
            let Ok(len) = s.read_u32().await else { return };
            if len > 64 * 1024 {
                return;
            }
            let mut request = vec![0u8; len as usize];
            if len < 8 || s.read_exact(&mut request).await.is_err() {
                return;
            }
            let key = i16::from_be_bytes([request[0], request[1]]);
            let version = i16::from_be_bytes([request[2], request[3]]);
            let mut body = request[4..8].to_vec(); // the correlation ID
            match key {
                18 => {
                    body.extend_from_slice(&0i16.to_be_bytes());
                    let keys: [[i16; 3]; 3] = [[18, 0, 3], [3, 0, 0], [1, 4, 4]];
                    if version >= 3 {
                        body.push(keys.len() as u8 + 1);
                    } else {
                        ints(&[keys.len() as i32], &mut body);
                    }
                    for k in keys {
                        for v in k {
                            body.extend_from_slice(&v.to_be_bytes());
                        }
                        if version >= 3 {
                            body.push(0);
                        }
                    }
                    if version >= 1 {
                        ints(&[0], &mut body);
                    }
                    if version >= 3 {
                        body.push(0);
                    }
                }
                3 => {
                    ints(&[1, 0], &mut body);
                    string("127.0.0.1", &mut body);
                    ints(&[i32::from(port), 1], &mut body);
                    body.extend_from_slice(&0i16.to_be_bytes());
                    string("config", &mut body);
                    ints(&[1], &mut body);
                    body.extend_from_slice(&0i16.to_be_bytes());
                    ints(&[0, 0, 1, 0, 1, 0], &mut body);
                }
                1 => {
                    ints(&[0, 1], &mut body);
                    string("config", &mut body);
                    ints(&[1, 0], &mut body);
                    body.extend_from_slice(&0i16.to_be_bytes());
                    body.extend_from_slice(&1i64.to_be_bytes());
                    body.extend_from_slice(&1i64.to_be_bytes());
                    ints(&[0, records.len() as i32], &mut body);
                    body.extend_from_slice(records);
                }
                _ => return,
            }
            let mut frame = (body.len() as u32).to_be_bytes().to_vec();
            frame.extend_from_slice(&body);
            if s.write_all(&frame).await.is_err() {
                return;
            }
        }
    }
}

/// Serves the broker double on 127.0.0.1 with `records` as every Fetch's answer; its port.
async fn double_broker(records: &'static [u8]) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1:0");
    let port = listener.local_addr().expect("local address").port();
    tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            tokio::spawn(double::serve(s, port, records));
        }
    });
    port
}

/// A gzip batch of 1.7 MB, within the frame bound, holding one record of 256 MiB of
/// zeros. rskafka inflates a batch whole inside one poll: before the relay, the process
/// grew by 276 MiB in 2.8 s of CPU that no deadline could interrupt. Now the relay
/// inflates it into nothing up to the batch bound (16 MiB) and refuses it.
#[tokio::test]
async fn a_gzip_batch_inflating_to_256_mib_is_refused_before_it_is_inflated() {
    let _s = serial().await;
    let logs = CapturedLogs::default();
    let _g = capture(&logs);
    let records: &'static [u8] = double::gzip_bomb(1_040_000, false).leak();
    assert!(records.len() < 2 * MIB, "{}", records.len());
    let port = double_broker(records).await;
    let m = fetch(port).await;
    let e = assert_case(
        "kafka gzip bomb",
        m,
        None,
        LIMIT,
        32,
        ErrorKind::TooLarge,
        "App.config",
        "kafka",
        &logs.text(),
    );
    assert!(e.to_string().contains("inflates past the bound"), "{e}");
}

/// One Fetch response of 3.2 MB (within the frame bound) holding 30 gzip batches of
/// 106 KB, each inflating to 16 MB: each under the batch bound (16 MiB), 480 MiB together.
/// rskafka inflates every batch of a response in one decode: when the relay weighed each
/// batch alone, all passed and the process held them all. Now the response's batches
/// share one bound, and the response is refused once they pass it together.
#[tokio::test]
async fn many_gzip_batches_of_one_response_share_one_bound() {
    let _s = serial().await;
    let logs = CapturedLogs::default();
    let _g = capture(&logs);
    // Zeros per batch: under the batch bound.
    const K: usize = 65_000;
    // K * 258 bytes inflated per batch: under the 16 MiB batch bound.
    const _: () = assert!(K * 258 < 16 * MIB);
    let one = double::gzip_bomb(K, true);
    let records: &'static [u8] = one.repeat(30).leak();
    assert!(records.len() < 4 * MIB - 4096, "{}", records.len());
    let port = double_broker(records).await;
    let m = fetch(port).await;
    let e = assert_case(
        "kafka many gzip batches",
        m,
        None,
        LIMIT,
        32,
        ErrorKind::TooLarge,
        "App.config",
        "kafka",
        &logs.text(),
    );
    assert!(e.to_string().contains("for one response"), "{e}");
}
