//! A response body read straight off an upstream connection of Berth's own HTTP/1.1 client:
//! `Content-Length`, chunked or close-delimited framing, decoded as it streams. When the body ends
//! cleanly on a connection that may be kept alive, the connection goes back to its worker's idle
//! list at once, before the client has even been sent the last bytes.

use super::pool::{self, UpConn};
use hyper::body::{Body, Bytes, Frame, SizeHint};
use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Instant;

/// Bodies up to this size are copied out of the read buffer, so the buffer's allocation serves
/// the next response; larger pieces are split off without a copy.
const COPY_LIMIT: usize = 4096;
/// The longest chunk-size or trailer line accepted.
const MAX_LINE: usize = 4096;

/// How the end of a response body is found (RFC 9112 §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Framing {
    Length(u64),
    Chunked,
    /// Until the target closes the connection, which then cannot be reused.
    Close,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Length(u64),
    /// Expecting a chunk-size line.
    ChunkSize,
    ChunkData(u64),
    /// Expecting the CRLF after a chunk's data.
    ChunkEnd,
    /// After the last chunk: trailer lines (dropped) up to an empty line.
    Trailer,
    Close,
    Done,
}

/// What decoding the buffered bytes gave.
enum Step {
    Data(Bytes),
    /// The state moved on without data (a chunk-size line, a CRLF): decode again.
    Again,
    NeedMore,
    Done,
}

/// A response body on an upstream connection; the connection is dropped (closed) if the body is
/// dropped before its end.
pub(crate) struct ResponseBody {
    conn: Option<UpConn>,
    state: State,
    /// The connection may carry another request once this body has ended.
    reuse: bool,
    /// The whole body, when it came in the same reads as the head (the common case for small
    /// responses): the connection is released at once.
    ready: Option<Bytes>,
}

impl ResponseBody {
    pub fn new(conn: UpConn, framing: Framing, reuse: bool) -> Self {
        let state = match framing {
            Framing::Length(n) => State::Length(n),
            Framing::Chunked => State::ChunkSize,
            Framing::Close => State::Close,
        };
        let mut body = Self {
            conn: Some(conn),
            state,
            reuse: reuse && framing != Framing::Close,
            ready: None,
        };
        if let (State::Length(n), Some(conn)) = (body.state, body.conn.as_mut()) {
            if conn.buf.len() as u64 >= n {
                if n > 0 {
                    body.ready = Some(take(&mut conn.buf, n as usize));
                }
                // At once: the request's start time is recent enough for the idle list.
                let used = conn.used;
                body.finish_at(used);
            }
        }
        body
    }

    fn finish(&mut self) {
        self.finish_at(Instant::now());
    }

    fn finish_at(&mut self, now: Instant) {
        self.state = State::Done;
        if let Some(conn) = self.conn.take() {
            if self.reuse && conn.buf.is_empty() {
                pool::release(conn, now);
            }
        }
    }

    fn step(&mut self) -> io::Result<Step> {
        let Some(conn) = self.conn.as_mut() else {
            return Ok(Step::Done);
        };
        let buf = &mut conn.buf;
        match self.state {
            State::Done => Ok(Step::Done),
            State::Length(0) => Ok(Step::Done),
            State::Length(n) | State::ChunkData(n) => {
                if buf.is_empty() {
                    return Ok(Step::NeedMore);
                }
                let k = (buf.len() as u64).min(n);
                let data = take(buf, k as usize);
                let left = n - k;
                self.state = match self.state {
                    State::Length(_) if left == 0 => State::Done,
                    State::Length(_) => State::Length(left),
                    _ if left == 0 => State::ChunkEnd,
                    _ => State::ChunkData(left),
                };
                Ok(Step::Data(data))
            }
            State::Close => {
                if buf.is_empty() {
                    return Ok(Step::NeedMore);
                }
                let n = buf.len();
                Ok(Step::Data(take(buf, n)))
            }
            State::ChunkSize => {
                let Some(line) = line(buf)? else {
                    return Ok(Step::NeedMore);
                };
                let size = chunk_size(&line)?;
                self.state = if size == 0 {
                    State::Trailer
                } else {
                    State::ChunkData(size)
                };
                Ok(Step::Again)
            }
            State::ChunkEnd => {
                if buf.len() < 2 {
                    return Ok(Step::NeedMore);
                }
                if &buf[..2] != b"\r\n" {
                    return Err(invalid("chunk data not followed by CRLF"));
                }
                let _ = buf.split_to(2);
                self.state = State::ChunkSize;
                Ok(Step::Again)
            }
            State::Trailer => {
                let Some(line) = line(buf)? else {
                    return Ok(Step::NeedMore);
                };
                if line.is_empty() {
                    self.state = State::Done;
                }
                Ok(Step::Again)
            }
        }
    }

    /// Reads more from the connection; `false` at end of stream.
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<bool>> {
        let Some(conn) = self.conn.as_mut() else {
            return Poll::Ready(Ok(false));
        };
        loop {
            ready!(conn.stream.poll_read_ready(cx))?;
            conn.buf.reserve(16 * 1024);
            match conn.stream.try_read_buf(&mut conn.buf) {
                Ok(n) => return Poll::Ready(Ok(n > 0)),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<io::Result<Frame<Bytes>>>> {
        let this = self.get_mut();
        if let Some(data) = this.ready.take() {
            return Poll::Ready(Some(Ok(Frame::data(data))));
        }
        loop {
            let step = match this.step() {
                Ok(step) => step,
                Err(e) => {
                    this.conn = None;
                    return Poll::Ready(Some(Err(e)));
                }
            };
            match step {
                Step::Data(data) => {
                    if this.state == State::Done {
                        this.finish();
                    }
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                Step::Again => continue,
                Step::Done => {
                    this.finish();
                    return Poll::Ready(None);
                }
                Step::NeedMore => match ready!(this.poll_fill(cx)) {
                    Ok(true) => continue,
                    Ok(false) if this.state == State::Close => {
                        this.reuse = false;
                        this.finish();
                        return Poll::Ready(None);
                    }
                    Ok(false) => {
                        this.conn = None;
                        let e = io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            "the target closed the connection before the end of the body",
                        );
                        return Poll::Ready(Some(Err(e)));
                    }
                    Err(e) => {
                        this.conn = None;
                        return Poll::Ready(Some(Err(e)));
                    }
                },
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.state == State::Done && self.ready.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        match self.state {
            State::Length(n) => SizeHint::with_exact(n),
            State::Done => SizeHint::with_exact(self.ready.as_ref().map_or(0, |d| d.len() as u64)),
            _ => SizeHint::default(),
        }
    }
}

fn take(buf: &mut bytes::BytesMut, n: usize) -> Bytes {
    if n <= COPY_LIMIT {
        let data = Bytes::copy_from_slice(&buf[..n]);
        bytes::Buf::advance(buf, n);
        data
    } else {
        buf.split_to(n).freeze()
    }
}

/// One CRLF-terminated line, without its CRLF, taken off the buffer.
fn line(buf: &mut bytes::BytesMut) -> io::Result<Option<bytes::BytesMut>> {
    match buf.windows(2).position(|w| w == b"\r\n") {
        Some(end) => {
            let mut line = buf.split_to(end + 2);
            line.truncate(end);
            Ok(Some(line))
        }
        None if buf.len() > MAX_LINE => Err(invalid("chunk-size or trailer line too long")),
        None => Ok(None),
    }
}

/// `1a;ext=1` → 26.
fn chunk_size(line: &[u8]) -> io::Result<u64> {
    let digits = line
        .split(|b| *b == b';')
        .next()
        .unwrap_or_default()
        .trim_ascii();
    if digits.is_empty() || digits.len() > 15 {
        return Err(invalid("bad chunk size"));
    }
    let mut size = 0u64;
    for d in digits {
        let v = (*d as char)
            .to_digit(16)
            .ok_or_else(|| invalid("bad chunk size"))?;
        size = size * 16 + u64::from(v);
    }
    Ok(size)
}

fn invalid(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;
    use tokio::io::AsyncWriteExt;

    /// A body over a real socket whose far end writes `wire` in `pieces` and then closes.
    async fn decode(framing: Framing, wire: &[u8], pieces: usize) -> io::Result<Vec<u8>> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let wire = wire.to_vec();
        let writer = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let step = wire.len().div_ceil(pieces).max(1);
            for piece in wire.chunks(step) {
                s.write_all(piece).await.unwrap();
                s.flush().await.unwrap();
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
        });
        let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let body = ResponseBody::new(UpConn::new(stream), framing, false);
        let collected = body.collect().await.map(|c| c.to_bytes().to_vec());
        writer.await.unwrap();
        collected
    }

    #[tokio::test]
    async fn chunked_bodies_decode_across_reads() {
        let wire = b"5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\nx-trailer: 1\r\n\r\n";
        for pieces in [1, 3, 17] {
            let body = decode(Framing::Chunked, wire, pieces).await.unwrap();
            assert_eq!(body, b"hello, world", "in {pieces} pieces");
        }
    }

    #[tokio::test]
    async fn length_and_close_delimited_bodies_decode() {
        let body = decode(Framing::Length(5), b"hello", 2).await.unwrap();
        assert_eq!(body, b"hello");
        let body = decode(Framing::Close, b"until close", 3).await.unwrap();
        assert_eq!(body, b"until close");
    }

    #[tokio::test]
    async fn a_body_cut_short_is_an_error() {
        let err = decode(Framing::Length(10), b"hello", 1).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
        let err = decode(Framing::Chunked, b"5\r\nhel", 1).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
        let err = decode(Framing::Chunked, b"zz\r\n", 1).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    }
}
