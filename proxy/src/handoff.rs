//! Handing a running proxy's listening sockets to its successor, so a restart or an upgrade drops
//! nothing. The successor connects to the running proxy's handoff socket (a unix socket, owner-only
//! in its data directory) and receives every listening socket as a file descriptor (SCM_RIGHTS),
//! with its targets' health; from then on both processes accept from the same kernel queues. Once
//! the successor has its routing table and its listeners open it says `ready`; the old proxy then
//! stops accepting — its copies of the sockets close, the sockets and their backlogs live on in the
//! successor — and drains its connections. With SO_REUSEPORT instead, each process would have its
//! own queue, and the kernel resets every connection still waiting in the one that closes.
//!
//! The exchange, one line each way:
//! ```text
//! successor → old  berth-handoff 1
//! old → successor  listeners PID N            (N descriptors attached)
//!                  target<TAB>SERVICE<TAB>TASK<TAB>ADDRESS<TAB>PORT<TAB>HEALTHY|UNHEALTHY   …
//!                  end
//! successor → old  ready
//! ```

use crate::target::{Health, TargetKey};
use crate::Shared;
use rustix::net::{
    RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, ReturnFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags,
};
use std::collections::HashMap;
use std::io::{self, BufRead, BufReader, IoSlice, IoSliceMut, Read, Write};
use std::mem::MaybeUninit;
use std::net::{SocketAddr, TcpListener};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const HELLO: &str = "berth-handoff 1";
/// The kernel passes at most 253 descriptors in one message (SCM_MAX_FD).
const MAX_FDS: usize = 253;
/// The longest handoff text accepted (the health of every target).
const MAX_TEXT: u64 = 16 << 20;
/// How long either side waits for the other's answer, `ready` aside.
const ANSWER_WITHIN: Duration = Duration::from_secs(10);

/// Why a handoff failed.
#[derive(Debug, thiserror::Error)]
pub enum HandoffError {
    #[error("handoff socket {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("handoff socket {path}: {problem}")]
    Protocol { path: PathBuf, problem: String },
}

/// What a successor got from the proxy it takes over from: listening sockets, taken one by one as
/// its listeners open, and the health of the targets, which new targets start from.
#[derive(Debug)]
pub struct Inherited {
    from_pid: u32,
    listeners: Mutex<Vec<TcpListener>>,
    pub(crate) health: HashMap<(String, TargetKey), Health>,
}

impl Inherited {
    /// The process that handed them over.
    pub fn from_pid(&self) -> u32 {
        self.from_pid
    }

    /// The addresses of the sockets not taken yet.
    pub fn addresses(&self) -> Vec<SocketAddr> {
        let listeners = self.listeners.lock().unwrap_or_else(|p| p.into_inner());
        listeners
            .iter()
            .filter_map(|l| l.local_addr().ok())
            .collect()
    }

    /// Takes the inherited socket listening on `addr` (not on port 0), if there is one.
    pub fn take_listener(&self, addr: SocketAddr) -> Option<TcpListener> {
        if addr.port() == 0 {
            return None;
        }
        let mut listeners = self.listeners.lock().unwrap_or_else(|p| p.into_inner());
        let i = listeners
            .iter()
            .position(|l| l.local_addr().ok() == Some(addr))?;
        Some(listeners.swap_remove(i))
    }

    /// Closes the sockets no listener took (ports the new table no longer has).
    pub(crate) fn drop_rest(&self) {
        let mut listeners = self.listeners.lock().unwrap_or_else(|p| p.into_inner());
        for l in listeners.drain(..) {
            if let Ok(addr) = l.local_addr() {
                tracing::info!("closing inherited listener {addr}: no route uses it");
            }
        }
    }
}

/// A handoff in progress on the successor's side: the sockets are in hand, and the old proxy
/// keeps accepting until `finish`.
#[derive(Debug)]
pub struct Takeover {
    path: PathBuf,
    stream: UnixStream,
    inherited: Arc<Inherited>,
}

impl Takeover {
    pub fn inherited(&self) -> Arc<Inherited> {
        self.inherited.clone()
    }

    /// Tells the old proxy that this one is serving: it stops accepting and drains.
    pub async fn finish(self) -> Result<(), HandoffError> {
        let Takeover { path, stream, .. } = self;
        let io = |source| HandoffError::Io {
            path: path.clone(),
            source,
        };
        tokio::task::spawn_blocking(move || (&stream).write_all(b"ready\n"))
            .await
            .map_err(|e| io(io::Error::other(e)))?
            .map_err(io)
    }
}

/// Connects to the proxy serving the handoff socket at `path` and takes its listening sockets.
/// `None` when no proxy answers there (no file, or a stale one left by a process that is gone).
pub async fn take_over(path: &Path) -> Result<Option<Takeover>, HandoffError> {
    let owned = path.to_path_buf();
    tokio::task::spawn_blocking(move || receive(&owned))
        .await
        .map_err(|e| HandoffError::Io {
            path: path.to_path_buf(),
            source: io::Error::other(e),
        })?
}

fn receive(path: &Path) -> Result<Option<Takeover>, HandoffError> {
    let io = |source| HandoffError::Io {
        path: path.to_path_buf(),
        source,
    };
    let protocol = |problem: String| HandoffError::Protocol {
        path: path.to_path_buf(),
        problem,
    };
    let stream = match UnixStream::connect(path) {
        Ok(s) => s,
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused
            ) =>
        {
            return Ok(None)
        }
        Err(e) => return Err(io(e)),
    };
    stream.set_read_timeout(Some(ANSWER_WITHIN)).map_err(io)?;
    (&stream)
        .write_all(format!("{HELLO}\n").as_bytes())
        .map_err(io)?;

    // The descriptors come with the first bytes of the answer.
    let mut first = vec![0u8; 4096];
    let mut space = vec![MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(MAX_FDS))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let got = rustix::net::recvmsg(
        &stream,
        &mut [IoSliceMut::new(&mut first)],
        &mut control,
        RecvFlags::CMSG_CLOEXEC,
    )
    .map_err(|e| io(e.into()))?;
    let mut fds: Vec<OwnedFd> = Vec::new();
    for message in control.drain() {
        if let RecvAncillaryMessage::ScmRights(received) = message {
            fds.extend(received);
        }
    }
    if got.flags.contains(ReturnFlags::CTRUNC) {
        return Err(protocol(
            "more listening sockets than one message carries".into(),
        ));
    }
    let mut text = first[..got.bytes].to_vec();
    let mut reader = (&stream).take(MAX_TEXT);
    while !(text.ends_with(b"\nend\n") || text.starts_with(b"error")) {
        let mut chunk = [0u8; 8192];
        let n = reader.read(&mut chunk).map_err(io)?;
        if n == 0 {
            return Err(protocol(
                "the running proxy closed the handoff midway".into(),
            ));
        }
        text.extend_from_slice(&chunk[..n]);
    }
    let text = String::from_utf8(text).map_err(|_| protocol("the answer is not UTF-8".into()))?;
    let inherited = parse(&text, fds).map_err(protocol)?;
    Ok(Some(Takeover {
        path: path.to_path_buf(),
        stream,
        inherited: Arc::new(inherited),
    }))
}

fn parse(text: &str, fds: Vec<OwnedFd>) -> Result<Inherited, String> {
    let mut lines = text.lines();
    let head = lines.next().unwrap_or_default();
    let (pid, count) = match head.split_whitespace().collect::<Vec<_>>()[..] {
        ["listeners", pid, n] => (pid.parse::<u32>(), n.parse::<usize>()),
        _ => return Err(format!("unexpected answer {head:?}")),
    };
    let (Ok(from_pid), Ok(count)) = (pid, count) else {
        return Err(format!("unexpected answer {head:?}"));
    };
    if count != fds.len() {
        return Err(format!(
            "{count} listening sockets announced, {} received",
            fds.len()
        ));
    }
    let mut health = HashMap::new();
    for line in lines.take_while(|l| *l != "end") {
        let fields: Vec<&str> = line.split('\t').collect();
        let ["target", service, task, address, port, state] = fields[..] else {
            return Err(format!("unexpected line {line:?}"));
        };
        let state = match state {
            "HEALTHY" => Health::Healthy,
            "UNHEALTHY" => Health::Unhealthy,
            _ => continue,
        };
        let Ok(port) = port.parse() else {
            return Err(format!("unexpected line {line:?}"));
        };
        let key = TargetKey {
            task_arn: task.to_string(),
            address: address.to_string(),
            port,
        };
        health.insert((service.to_string(), key), state);
    }
    Ok(Inherited {
        from_pid,
        listeners: Mutex::new(fds.into_iter().map(TcpListener::from).collect()),
        health,
    })
}

/// The old proxy's side of one handoff, up to the successor's answer: sends its listening sockets
/// (the proxy's and `extra`) and its targets' health. The stream when they were sent.
pub(crate) fn give(
    stream: UnixStream,
    shared: &Shared,
    extra: &[TcpListener],
) -> io::Result<Option<UnixStream>> {
    stream.set_read_timeout(Some(ANSWER_WITHIN))?;
    stream.set_write_timeout(Some(ANSWER_WITHIN))?;
    let mut hello = String::new();
    BufReader::new((&stream).take(256)).read_line(&mut hello)?;
    if hello.trim_end() != HELLO {
        (&stream).write_all(b"error: unknown handoff protocol\n")?;
        return Ok(None);
    }
    // Copies of the descriptors, held while they are sent.
    let copies: Vec<OwnedFd> = {
        let sockets = shared.sockets.lock().unwrap_or_else(|p| p.into_inner());
        sockets
            .values()
            .map(|s| s.as_fd())
            .chain(extra.iter().map(|s| s.as_fd()))
            .map(|fd| fd.try_clone_to_owned())
            .collect::<io::Result<_>>()?
    };
    if copies.len() > MAX_FDS {
        (&stream).write_all(b"error: too many listening sockets to hand over\n")?;
        return Ok(None);
    }
    let fds: Vec<BorrowedFd<'_>> = copies.iter().map(|f| f.as_fd()).collect();
    let head = format!("listeners {} {}\n", std::process::id(), fds.len());
    let mut space = vec![MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(fds.len().max(1)))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    if !fds.is_empty() && !control.push(SendAncillaryMessage::ScmRights(&fds)) {
        return Err(io::Error::other("ancillary buffer too small"));
    }
    let sent = rustix::net::sendmsg(
        &stream,
        &[IoSlice::new(head.as_bytes())],
        &mut control,
        SendFlags::NOSIGNAL,
    )?;
    let mut rest = head.as_bytes()[sent..].to_vec();
    for service in shared.snapshot.load().services() {
        for target in &service.targets.targets {
            let state = target.health().as_str();
            rest.extend_from_slice(
                format!(
                    "target\t{}\t{}\t{}\t{}\t{state}\n",
                    service.arn, target.key.task_arn, target.key.address, target.key.port
                )
                .as_bytes(),
            );
        }
    }
    rest.extend_from_slice(b"end\n");
    (&stream).write_all(&rest)?;
    Ok(Some(stream))
}

/// Waits for the successor's `ready`, however long its control plane takes to send the routing
/// table. False when it closed the connection first (it died, or gave up): this proxy goes on.
pub(crate) async fn wait_ready(stream: UnixStream) -> io::Result<bool> {
    use tokio::io::AsyncBufReadExt;
    stream.set_nonblocking(true)?;
    let stream = tokio::net::UnixStream::from_std(stream)?;
    let mut answer = String::new();
    tokio::io::BufReader::new(tokio::io::AsyncReadExt::take(stream, 64))
        .read_line(&mut answer)
        .await?;
    Ok(answer.trim_end() == "ready")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_answer_parses_into_sockets_and_health() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let text = "listeners 42 1\ntarget\tsvc\ttask/1\t10.0.0.1\t80\tHEALTHY\n\
                    target\tsvc\ttask/2\t10.0.0.2\t80\tINITIAL\nend\n";
        let inherited = parse(text, vec![OwnedFd::from(l)]).unwrap();
        assert_eq!(inherited.from_pid(), 42);
        assert_eq!(
            inherited.health.len(),
            1,
            "only settled health carries over"
        );
        assert!(inherited
            .take_listener(SocketAddr::new(addr.ip(), 0))
            .is_none());
        assert!(inherited.take_listener(addr).is_some());
        assert!(inherited.take_listener(addr).is_none(), "taken once");
    }

    #[test]
    fn a_count_that_does_not_match_the_descriptors_is_refused() {
        let err = parse("listeners 42 2\nend\n", Vec::new()).unwrap_err();
        assert_eq!(err, "2 listening sockets announced, 0 received");
    }
}
