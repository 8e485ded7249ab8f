//! A stream wrapper that reads Redis replies (RESP2/RESP3) through a size bound.
//!
//! redis-rs trusts the length a reply announces (`$1099511627776\r\n` makes it reserve a
//! terabyte), so every byte read from the server passes a small scanner first: a bulk
//! string, verbatim string or blob error longer than the limit, an aggregate announcing
//! more elements than the limit, or a line longer than the limit fails the read with an
//! I/O error before the parser sees it, and [`Exceeded`] remembers why.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Set once a reply went over the limit on this connection (or was not RESP).
#[derive(Clone, Default, Debug)]
pub(crate) struct Exceeded(Arc<AtomicU8>);

impl Exceeded {
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

/// The RESP scanner: feeds on bytes, says when a reply breaks the limit.
#[derive(Debug)]
pub(crate) struct Scanner {
    state: State,
    header: Vec<u8>,
    limit: u64,
}

impl Scanner {
    pub(crate) fn new(limit: usize) -> Self {
        Scanner {
            state: State::Type,
            header: Vec::with_capacity(24),
            limit: limit as u64,
        }
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
                        self.after_line(kind)?
                    } else {
                        State::Line { kind, len }
                    };
                }
                State::Payload { remaining } => {
                    let take = remaining.min((bytes.len() - i) as u64);
                    i += take as usize;
                    self.state = match remaining - take {
                        0 => State::Type,
                        left => State::Payload { remaining: left },
                    };
                }
            }
        }
        Ok(())
    }

    fn after_line(&mut self, kind: u8) -> Result<State, String> {
        if !is_counted(kind) {
            return Ok(State::Type);
        }
        let text = std::str::from_utf8(&self.header).unwrap_or("").trim();
        // `-1` (null) or a streamed `?` length: nothing to bound here; the parser decides.
        let Ok(n) = text.parse::<u64>() else {
            return Ok(State::Type);
        };
        if n > self.limit {
            let what = if is_bulk(kind) {
                format!("a value of {n} bytes")
            } else {
                format!("a reply of {n} elements")
            };
            return Err(format!("{what}, over the limit of {} bytes", self.limit));
        }
        Ok(if is_bulk(kind) {
            State::Payload { remaining: n + 2 }
        } else {
            State::Type
        })
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
                    this.exceeded.0.store(kind, Ordering::Relaxed);
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
    use super::Scanner;

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
    fn padded_lengths_and_non_resp_bytes_fail() {
        let padded = format!("${}1099511627776\r\n", "0".repeat(40));
        assert!(scan(1 << 24, &[padded.as_bytes()]).is_err());
        assert!(scan(1 << 24, &[b"x\r\n"]).is_err());
    }
}
