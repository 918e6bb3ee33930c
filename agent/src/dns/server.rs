//! The resolver's UDP loop: each query is answered from the current zone, or relayed as it came
//! to the node's upstream resolvers (`/etc/resolv.conf`) and their reply relayed back.

use super::zone::{answer, Answer, Zone};
use hickory_proto::op::{Message, ResponseCode};
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::net::UdpSocket;

/// How long an upstream resolver gets before the next one is tried.
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(2);

/// The nameservers `/etc/resolv.conf`-style `text` lists, on port 53; `skip` (this resolver's own
/// address) is left out, so a host that points at it does not loop.
pub fn upstreams(text: &str, skip: SocketAddr) -> Vec<SocketAddr> {
    text.lines()
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            (words.next() == Some("nameserver")).then(|| words.next())?
        })
        .filter_map(|ip| ip.parse::<std::net::IpAddr>().ok())
        .map(|ip| SocketAddr::new(ip, 53))
        .filter(|a| *a != skip)
        .collect()
}

/// Serves queries on `socket` until the task is dropped.
pub async fn serve(socket: UdpSocket, zone: Arc<RwLock<Arc<Zone>>>, upstream: Vec<SocketAddr>) {
    let socket = Arc::new(socket);
    let upstream = Arc::new(upstream);
    let mut buf = vec![0u8; 4096];
    loop {
        let (n, from) = match socket.recv_from(&mut buf).await {
            Ok(x) => x,
            Err(e) => {
                tracing::debug!(error = %e, "DNS receive failed");
                continue;
            }
        };
        let query = buf[..n].to_vec();
        let Ok(msg) = Message::from_vec(&query) else {
            continue;
        };
        let current = zone.read().map(|z| z.clone()).unwrap_or_default();
        match answer(&current, &msg) {
            Answer::Local(reply) => {
                if let Ok(bytes) = reply.to_vec() {
                    let _ = socket.send_to(&bytes, from).await;
                }
            }
            Answer::Forward => {
                let (socket, upstream) = (socket.clone(), upstream.clone());
                tokio::spawn(async move {
                    let reply = match forward(&query, &upstream).await {
                        Some(r) => r,
                        None => {
                            let m =
                                Message::error_msg(msg.id(), msg.op_code(), ResponseCode::ServFail);
                            m.to_vec().unwrap_or_default()
                        }
                    };
                    let _ = socket.send_to(&reply, from).await;
                });
            }
        }
    }
}

/// The first upstream reply to `query`, each resolver tried in turn.
async fn forward(query: &[u8], upstream: &[SocketAddr]) -> Option<Vec<u8>> {
    for server in upstream {
        let bind: SocketAddr = if server.is_ipv4() {
            "0.0.0.0:0".parse().ok()?
        } else {
            "[::]:0".parse().ok()?
        };
        let Ok(s) = UdpSocket::bind(bind).await else {
            continue;
        };
        if s.send_to(query, server).await.is_err() {
            continue;
        }
        let mut buf = vec![0u8; 4096];
        if let Ok(Ok((n, _))) = tokio::time::timeout(UPSTREAM_TIMEOUT, s.recv_from(&mut buf)).await
        {
            // The reply to this query, not a stray datagram.
            if n >= 2 && buf[..2] == query[..2] {
                buf.truncate(n);
                return Some(buf);
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstreams_come_from_resolv_conf_without_ourselves() {
        let me: SocketAddr = "172.17.0.1:53".parse().unwrap();
        let text = "# comment\nsearch example\nnameserver 127.0.0.53\nnameserver 172.17.0.1\nnameserver ::1\nnameserver bogus\n";
        let got = upstreams(text, me);
        assert_eq!(
            got,
            vec![
                "127.0.0.53:53".parse::<SocketAddr>().unwrap(),
                "[::1]:53".parse().unwrap()
            ]
        );
    }
}
