//! A stream wrapper that reads Redis replies (RESP2/RESP3) through a size bound.
//!
//! redis-rs trusts the length a reply announces (`$1099511627776\r\n` makes it reserve a
//! terabyte) and builds every element of an aggregate it is told of, so every byte read
//! from the server passes a small scanner first. It fails the read with an I/O error
//! before the parser sees the bytes, and [`Exceeded`] remembers why, when
//!
//! * a bulk string, verbatim string or blob error is longer than the limit, or a line is;
//! * a reply would make the parser hold more than its memory budget ([`Scanner::budget`]:
//!   twice the limit, at least 64 KiB): every element costs [`SLOT`] bytes (a
//!   `redis::Value` in a vector grown by doubling; a map's pairs twice) plus the bytes it
//!   carries. An aggregate is charged for all the elements it announces when its header
//!   arrives, so `*16000000` of `:0` is refused at its first line, not after 16 million
//!   values were built. (The read buffer holds at most one value's raw bytes besides.)

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Set once a reply went over the limit on this connection (or was not RESP), with why.
#[derive(Clone, Default, Debug)]
pub(crate) struct Exceeded(Arc<AtomicU8>, Arc<std::sync::Mutex<String>>);

impl Exceeded {
    /// What broke the bound (empty while nothing did).
    pub(crate) fn reason(&self) -> String {
        self.1.lock().map(|r| r.clone()).unwrap_or_default()
    }

    fn set(&self, kind: u8, why: &str) {
        if let Ok(mut reason) = self.1.lock() {
            why.clone_into(&mut reason);
        }
        self.0.store(kind, Ordering::Relaxed);
    }

    /// Whether a reply broke the bound, or was not RESP at all.
    pub(crate) fn is_set(&self) -> bool {
        self.0.load(Ordering::Relaxed) != CLEAR
    }

    /// Whether what broke the scan was not RESP (another kind of server answered).
    pub(crate) fn not_redis(&self) -> bool {
        self.0.load(Ordering::Relaxed) == NOT_RESP
    }
}

const CLEAR: u8 = 0;
const OVER: u8 = 1;
const NOT_RESP: u8 = 2;

/// The start of the scanner's message for bytes that are not RESP.
const NOT_RESP_REASON: &str = "a byte that starts no RESP reply";

/// The longest length/count line accepted: sign, 20 digits, CRLF (and a spare byte).
const MAX_COUNT_LINE: usize = 24;

/// What one element of a reply makes the parser hold besides its bytes: a `redis::Value`
/// in a vector that may have grown by doubling.
pub(crate) const SLOT: u64 = 2 * std::mem::size_of::<::redis::Value>() as u64;

/// The smallest memory budget of a reply, whatever the limit: enough for the replies of
/// the handshake and for a few values at a small limit.
const MIN_BUDGET: u64 = 64 * 1024;

/// Where the scanner is inside the reply stream.
#[derive(Debug, Clone, Copy)]
enum State {
    /// Expecting the type byte of the next element.
    Type,
    /// Inside the header or simple line of an element of this type; `len` bytes so far.
    Line { kind: u8, len: usize },
    /// Inside the payload of a bulk element (payload plus its CRLF).
    Payload { remaining: u64 },
}

/// The RESP scanner: feeds on bytes, says when a reply breaks the limit or its memory
/// budget.
#[derive(Debug)]
pub(crate) struct Scanner {
    state: State,
    header: Vec<u8>,
    limit: u64,
    /// What the reply being read makes the parser hold so far, in bytes (0 between replies).
    held: u64,
    /// The aggregates being read, outermost first: how many elements each still expects.
    open: Vec<u64>,
}

impl Scanner {
    pub(crate) fn new(limit: usize) -> Self {
        Scanner {
            state: State::Type,
            header: Vec::with_capacity(24),
            limit: limit as u64,
            held: 0,
            open: Vec::new(),
        }
    }

    /// The most memory one reply may make the parser hold: twice the limit (a value at
    /// the limit always fits, with room for its elements), at least [`MIN_BUDGET`].
    pub(crate) fn budget(&self) -> u64 {
        self.limit.saturating_mul(2).max(MIN_BUDGET)
    }

    /// Counts `bytes` more held by the reply; `Err` when that is over the budget.
    fn charge(&mut self, bytes: u64, what: impl FnOnce() -> String) -> Result<(), String> {
        self.held = self.held.saturating_add(bytes);
        if self.held > self.budget() {
            return Err(format!(
                "{}: the reply would hold more than {} bytes in memory (the limit of {} bytes, twice, at least {MIN_BUDGET})",
                what(),
                self.budget(),
                self.limit
            ));
        }
        Ok(())
    }

    /// An element was read whole: its aggregate expects one fewer (and may be whole in
    /// turn); a reply read whole frees its budget.
    fn completed(&mut self) {
        while let Some(left) = self.open.last_mut() {
            *left = left.saturating_sub(1);
            if *left > 0 {
                return;
            }
            self.open.pop();
        }
        self.held = 0;
    }

    /// Scans `bytes`; `Err` names what broke the limit.
    pub(crate) fn feed(&mut self, bytes: &[u8]) -> Result<(), String> {
        let mut i = 0;
        while i < bytes.len() {
            match self.state {
                State::Type => {
                    // Anything else is not RESP: a parser could be led to read it as data.
                    if !b"+-:$*_,#!=(%~>|".contains(&bytes[i]) {
                        return Err(format!("{NOT_RESP_REASON} (0x{:02x})", bytes[i]));
                    }
                    // A reply's first element costs its slot; the others' were paid
                    // by their aggregate.
                    if self.open.is_empty() {
                        self.charge(SLOT, || "a reply".to_owned())?;
                    }
                    self.header.clear();
                    self.state = State::Line {
                        kind: bytes[i],
                        len: 0,
                    };
                    i += 1;
                }
                State::Line { kind, len } => {
                    let rest = &bytes[i..];
                    let (taken, done) = match rest.iter().position(|&b| b == b'\n') {
                        Some(p) => (p + 1, true),
                        None => (rest.len(), false),
                    };
                    let len = len + taken;
                    if len as u64 > self.limit.max(64) {
                        return Err(format!("a reply line longer than {} bytes", self.limit));
                    }
                    // A length or count is at most 20 digits, a sign and CRLF: a longer
                    // header (`$000…0001099511627776`) is refused, never cut short.
                    if is_counted(kind) {
                        if len > MAX_COUNT_LINE {
                            return Err("a length header longer than 24 bytes".to_owned());
                        }
                        self.header.extend_from_slice(&rest[..taken]);
                    }
                    i += taken;
                    self.state = if done {
                        if !is_counted(kind) {
                            // A simple string, error or number holds its line.
                            self.charge(len as u64, || format!("a reply line of {len} bytes"))?;
                        }
                        self.after_line(kind)?
                    } else {
                        State::Line { kind, len }
                    };
                }
                State::Payload { remaining } => {
                    let take = remaining.min((bytes.len() - i) as u64);
                    i += take as usize;
                    self.state = match remaining - take {
                        0 => {
                            self.completed();
                            State::Type
                        }
                        left => State::Payload { remaining: left },
                    };
                }
            }
        }
        Ok(())
    }

    /// The element's line is read: what follows it (its payload, its elements, the next
    /// element), and what it costs.
    fn after_line(&mut self, kind: u8) -> Result<State, String> {
        if !is_counted(kind) {
            self.completed();
            return Ok(State::Type);
        }
        let text = std::str::from_utf8(&self.header).unwrap_or("").trim();
        // `-1` (null) or a streamed `?` length: nothing to bound here; the parser decides.
        let Ok(n) = text.parse::<u64>() else {
            self.completed();
            return Ok(State::Type);
        };
        if is_bulk(kind) {
            if n > self.limit {
                return Err(format!(
                    "a value of {n} bytes, over the limit of {} bytes",
                    self.limit
                ));
            }
            self.charge(n, || format!("a value of {n} bytes"))?;
            return Ok(State::Payload { remaining: n + 2 });
        }
        // The elements an aggregate announces, each a slot; a map's (and an attribute's)
        // pairs are collected first and then paired: twice.
        let (elements, slots) = match kind {
            b'%' => (n.saturating_mul(2), n.saturating_mul(4)),
            b'|' => (n.saturating_mul(2) + 1, n.saturating_mul(4) + 1),
            _ => (n, n),
        };
        if n > self.limit {
            return Err(format!(
                "a reply of {n} elements, over the limit of {} bytes",
                self.limit
            ));
        }
        self.charge(slots.saturating_mul(SLOT), || {
            format!("a reply of {n} elements")
        })?;
        if elements == 0 {
            self.completed();
        } else {
            self.open.push(elements);
        }
        Ok(State::Type)
    }
}

/// Bulk string, blob error, verbatim string: a length, then that many bytes.
fn is_bulk(kind: u8) -> bool {
    matches!(kind, b'$' | b'!' | b'=')
}

/// Whether the element's line is a count (bulk length or aggregate size).
fn is_counted(kind: u8) -> bool {
    is_bulk(kind) || matches!(kind, b'*' | b'%' | b'~' | b'>' | b'|')
}

/// `S` with every read scanned by a [`Scanner`].
pub(crate) struct BoundedStream<S> {
    inner: S,
    scanner: Scanner,
    exceeded: Exceeded,
}

impl<S> BoundedStream<S> {
    pub(crate) fn new(inner: S, limit: usize) -> (Self, Exceeded) {
        let exceeded = Exceeded::default();
        let stream = BoundedStream {
            inner,
            scanner: Scanner::new(limit),
            exceeded: exceeded.clone(),
        };
        (stream, exceeded)
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for BoundedStream<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.exceeded.is_set() {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "reply over the size limit",
            )));
        }
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if let Err(why) = this.scanner.feed(&buf.filled()[before..]) {
                    let kind = if why.starts_with(NOT_RESP_REASON) {
                        NOT_RESP
                    } else {
                        OVER
                    };
                    this.exceeded.set(kind, &why);
                    buf.set_filled(before);
                    return Poll::Ready(Err(io::Error::new(io::ErrorKind::InvalidData, why)));
                }
                Poll::Ready(Ok(()))
            }
            other => other,
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for BoundedStream<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::{SLOT, Scanner};

    fn scan(limit: usize, chunks: &[&[u8]]) -> Result<(), String> {
        let mut s = Scanner::new(limit);
        chunks.iter().try_for_each(|c| s.feed(c))
    }

    #[test]
    fn accepts_replies_within_the_limit_split_anywhere() {
        let reply = b"*3\r\n$4\r\nabcd\r\n$-1\r\n:12\r\n+OK\r\n%1\r\n$1\r\nk\r\n$2\r\nvv\r\n";
        assert_eq!(scan(4, &[reply]), Ok(()));
        for cut in 0..reply.len() {
            assert_eq!(
                scan(4, &[&reply[..cut], &reply[cut..]]),
                Ok(()),
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn a_value_at_the_limit_passes_and_one_byte_over_fails() {
        assert_eq!(scan(5, &[b"$5\r\nhello\r\n"]), Ok(()));
        let err = scan(5, &[b"$6\r\nhello!\r\n"]).unwrap_err();
        assert!(err.contains("6 bytes"), "{err}");
    }

    #[test]
    fn a_huge_announced_length_fails_before_any_payload() {
        let err = scan(1 << 24, &[b"$1099511627776\r\n"]).unwrap_err();
        assert!(err.contains("1099511627776"), "{err}");
    }

    #[test]
    fn huge_aggregates_and_endless_lines_fail() {
        assert!(scan(100, &[b"*1000000\r\n"]).is_err());
        assert!(scan(100, &[&[b'+'; 1000][..]]).is_err());
    }

    #[test]
    fn an_aggregate_is_charged_its_elements_memory_at_its_header() {
        // 16 million small integers: far under 16 MiB on the wire, about a gigabyte
        // once parsed. Refused at the first line.
        let err = scan(16 * 1024 * 1024, &[b"*16000000\r\n"]).unwrap_err();
        assert!(err.contains("16000000 elements"), "{err}");
        assert!(err.contains("in memory"), "{err}");

        // At a limit of 64 KiB the budget is 128 KiB: one slot for the reply itself,
        // the rest for its elements.
        let limit = 64 * 1024;
        let fits = 2 * limit as u64 / SLOT - 1;
        let header = format!("*{fits}\r\n");
        let mut s = Scanner::new(limit);
        s.feed(header.as_bytes()).unwrap();
        assert_eq!(s.open, vec![fits]);
        // Its elements' lines count as well: the last ones no longer fit.
        let err = (0..fits).try_for_each(|_| s.feed(b"+x\r\n")).unwrap_err();
        assert!(err.contains("a reply line of 3 bytes"), "{err}");
        let over = format!("*{}\r\n", fits + 1);
        assert!(scan(limit, &[over.as_bytes()]).is_err());
    }

    #[test]
    fn the_elements_bytes_count_too_and_a_finished_reply_frees_its_budget() {
        // Two values of 40 KiB fit a 64 KiB limit (a 128 KiB budget); four do not.
        let value = format!("$40960\r\n{}\r\n", "v".repeat(40960));
        let two = format!("*2\r\n{value}{value}");
        let four = format!("*4\r\n{value}{value}{value}{value}");
        let mut s = Scanner::new(64 * 1024);
        for _ in 0..10 {
            s.feed(two.as_bytes()).unwrap();
        }
        let err = scan(64 * 1024, &[four.as_bytes()]).unwrap_err();
        assert!(err.contains("more than 131072 bytes in memory"), "{err}");
    }

    #[test]
    fn nested_aggregates_and_maps_end_where_they_end() {
        let mut s = Scanner::new(1024);
        s.feed(b"*2\r\n*2\r\n:1\r\n:2\r\n%1\r\n+k\r\n$1\r\nv\r\n")
            .unwrap();
        assert!(s.open.is_empty() && s.held == 0, "{s:?}");
        s.feed(b"*0\r\n*-1\r\n$-1\r\n|1\r\n+a\r\n+b\r\n:7\r\n")
            .unwrap();
        assert!(s.open.is_empty() && s.held == 0, "{s:?}");
        s.feed(b"*3\r\n:1\r\n").unwrap();
        assert_eq!(s.open, vec![2]);
    }

    #[test]
    fn padded_lengths_and_non_resp_bytes_fail() {
        let padded = format!("${}1099511627776\r\n", "0".repeat(40));
        assert!(scan(1 << 24, &[padded.as_bytes()]).is_err());
        assert!(scan(1 << 24, &[b"x\r\n"]).is_err());
    }
}
