//! Each worker thread's idle keep-alive connections to targets (nginx's `keepalive` per worker):
//! a thread-local list, so taking a connection or putting one back needs no lock.

use bytes::BytesMut;
use std::cell::RefCell;
use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::time::{Duration, Instant};
use tokio::net::TcpStream;
use tokio::time::Sleep;

/// How long an idle upstream connection is kept.
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Idle connections kept per target on one worker thread.
const MAX_IDLE: usize = 64;
/// One keep-alive connection to a target.
pub(crate) struct UpConn {
    pub stream: TcpStream,
    /// Bytes read and not yet consumed.
    pub buf: BytesMut,
    /// The request being written; kept to reuse its allocation.
    pub out: Vec<u8>,
    /// The target's id, once the connection may be kept for it.
    pub target: Option<u64>,
    /// When its current (or last) request started.
    pub used: Instant,
    /// The upstream timeout's timer, shared by the connection's requests: re-armed only when it
    /// would fire too late or has fired, so a busy connection re-arms it once per timeout rather
    /// than once per request.
    pub timer: Option<Pin<Box<Sleep>>>,
}

impl UpConn {
    pub fn new(stream: TcpStream) -> Self {
        Self {
            stream,
            buf: BytesMut::with_capacity(16 * 1024),
            out: Vec::with_capacity(1024),
            target: None,
            used: Instant::now(),
            timer: None,
        }
    }

    /// An idle connection the target has not closed: no bytes, no end of stream waiting. Costs no
    /// syscall unless the reactor saw the socket become readable.
    fn is_open(&self) -> bool {
        let mut probe = [0u8; 1];
        matches!(self.stream.try_read(&mut probe), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
    }
}

struct Idle {
    conn: UpConn,
    since: Instant,
}

thread_local! {
    /// This worker thread's idle connections, per target; most recently used at the back.
    static IDLE: RefCell<Vec<(u64, VecDeque<Idle>)>> = const { RefCell::new(Vec::new()) };
}

/// An idle connection to the target `id` that is still open, if this thread has one.
pub(super) fn checkout(id: u64, now: Instant) -> Option<UpConn> {
    IDLE.with_borrow_mut(|idle| {
        let list = &mut idle.iter_mut().find(|(t, _)| *t == id)?.1;
        while let Some(entry) = list.pop_back() {
            if now.duration_since(entry.since) < IDLE_TIMEOUT && entry.conn.is_open() {
                return Some(entry.conn);
            }
        }
        None
    })
}

/// Keeps a connection whose last response ended cleanly (`now`, or a moment before) for the next
/// request to its target.
pub(crate) fn release(conn: UpConn, now: Instant) {
    let Some(id) = conn.target else {
        return;
    };
    IDLE.with_borrow_mut(|idle| {
        let list = match idle.iter().position(|(t, _)| *t == id) {
            Some(i) => &mut idle[i].1,
            None => {
                idle.push((id, VecDeque::new()));
                &mut idle.last_mut().expect("just pushed").1
            }
        };
        while list
            .front()
            .is_some_and(|e| now.duration_since(e.since) >= IDLE_TIMEOUT)
        {
            list.pop_front();
        }
        if list.len() < MAX_IDLE {
            list.push_back(Idle { conn, since: now });
        }
    });
}

/// Closes this thread's connections idle for longer than the idle timeout, and forgets targets
/// with none left; run periodically on each worker.
pub(crate) fn sweep() {
    IDLE.with_borrow_mut(|idle| {
        let now = Instant::now();
        for (_, list) in idle.iter_mut() {
            list.retain(|e| now.duration_since(e.since) < IDLE_TIMEOUT);
        }
        idle.retain(|(_, list)| !list.is_empty());
    });
}
