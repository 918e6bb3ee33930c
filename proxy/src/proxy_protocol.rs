//! The PROXY protocol (v1 text and v2 binary, haproxy's spec) on the way in: for a Berth behind
//! another load balancer, the listener's connections start with a header naming the real
//! client, which becomes the client address for `X-Forwarded-For` and source-ip conditions.
//! Read byte-exact, so nothing of the HTTP request after it is consumed.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use tokio::io::{AsyncRead, AsyncReadExt};

const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";

/// Reads one PROXY header. `Ok(None)`: a header without a client (v1 UNKNOWN, v2 LOCAL or a
/// non-IP family): keep the connection's own address. Any other start is an error: a listener
/// set for PROXY protocol must not take a client's word for where it comes from.
pub(crate) async fn read_header<S: AsyncRead + Unpin>(
    s: &mut S,
) -> Result<Option<SocketAddr>, String> {
    let mut first = [0u8; 12];
    s.read_exact(&mut first[..5])
        .await
        .map_err(|e| e.to_string())?;
    if &first[..5] == b"PROXY" {
        return v1(s).await;
    }
    s.read_exact(&mut first[5..])
        .await
        .map_err(|e| e.to_string())?;
    if first != V2_SIGNATURE {
        return Err("the connection does not start with a PROXY protocol header".into());
    }
    v2(s).await
}

/// `PROXY TCP4 SRC DST SPORT DPORT\r\n` (at most 107 bytes), after "PROXY".
async fn v1<S: AsyncRead + Unpin>(s: &mut S) -> Result<Option<SocketAddr>, String> {
    let mut line = Vec::with_capacity(64);
    loop {
        let b = s.read_u8().await.map_err(|e| e.to_string())?;
        line.push(b);
        if line.ends_with(b"\r\n") {
            break;
        }
        if line.len() > 102 {
            return Err("PROXY v1 header longer than 107 bytes".into());
        }
    }
    let text = std::str::from_utf8(&line).map_err(|_| "PROXY v1 header is not text")?;
    let parts: Vec<&str> = text.split_whitespace().collect();
    match parts.as_slice() {
        ["UNKNOWN", ..] => Ok(None),
        [family @ ("TCP4" | "TCP6"), src, _dst, sport, _dport] => {
            let ip: IpAddr = src
                .parse()
                .map_err(|_| format!("PROXY v1: bad source {src}"))?;
            if ip.is_ipv4() != (*family == "TCP4") {
                return Err(format!("PROXY v1: {src} is not a {family} address"));
            }
            let port = sport
                .parse()
                .map_err(|_| format!("PROXY v1: bad port {sport}"))?;
            Ok(Some(SocketAddr::new(ip, port)))
        }
        _ => Err(format!("PROXY v1: unreadable header {:?}", text.trim_end())),
    }
}

/// After the signature: version/command, family, length, then the addresses (and TLVs, skipped).
async fn v2<S: AsyncRead + Unpin>(s: &mut S) -> Result<Option<SocketAddr>, String> {
    let mut head = [0u8; 4];
    s.read_exact(&mut head).await.map_err(|e| e.to_string())?;
    if head[0] >> 4 != 2 {
        return Err(format!("PROXY v2: version {} is not 2", head[0] >> 4));
    }
    let len = usize::from(u16::from_be_bytes([head[2], head[3]]));
    let mut rest = vec![0u8; len];
    s.read_exact(&mut rest).await.map_err(|e| e.to_string())?;
    let local = head[0] & 0x0f == 0;
    if local {
        return Ok(None);
    }
    match head[1] >> 4 {
        1 if len >= 12 => {
            let ip = Ipv4Addr::new(rest[0], rest[1], rest[2], rest[3]);
            let port = u16::from_be_bytes([rest[8], rest[9]]);
            Ok(Some(SocketAddr::new(ip.into(), port)))
        }
        2 if len >= 36 => {
            let mut a = [0u8; 16];
            a.copy_from_slice(&rest[..16]);
            let port = u16::from_be_bytes([rest[32], rest[33]]);
            Ok(Some(SocketAddr::new(Ipv6Addr::from(a).into(), port)))
        }
        1 | 2 => Err("PROXY v2: address block too short".into()),
        _ => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn read(bytes: &[u8]) -> (Result<Option<SocketAddr>, String>, Vec<u8>) {
        let mut s = bytes;
        let r = read_header(&mut s).await;
        (r, s.to_vec())
    }

    #[tokio::test]
    async fn v1_and_v2_name_the_client_and_leave_the_request() {
        let (r, rest) =
            read(b"PROXY TCP4 203.0.113.7 10.0.0.1 51000 80\r\nGET / HTTP/1.1\r\n").await;
        assert_eq!(r.unwrap(), Some("203.0.113.7:51000".parse().unwrap()));
        assert_eq!(rest, b"GET / HTTP/1.1\r\n");
        let (r, _) = read(b"PROXY UNKNOWN\r\n").await;
        assert_eq!(r.unwrap(), None);

        let mut v2 = V2_SIGNATURE.to_vec();
        v2.extend_from_slice(&[
            0x21, 0x11, 0, 12, 198, 51, 100, 9, 10, 0, 0, 1, 0xC3, 0x50, 0, 80,
        ]);
        v2.extend_from_slice(b"GET /");
        let (r, rest) = read(&v2).await;
        assert_eq!(r.unwrap(), Some("198.51.100.9:50000".parse().unwrap()));
        assert_eq!(rest, b"GET /");
        let mut local = V2_SIGNATURE.to_vec();
        local.extend_from_slice(&[0x20, 0x00, 0, 0]);
        assert_eq!(read(&local).await.0.unwrap(), None);
    }

    #[tokio::test]
    async fn a_connection_without_a_header_is_refused() {
        assert!(read(b"GET / HTTP/1.1\r\n\r\n").await.0.is_err());
        assert!(read(b"PROXY TCP4 nonsense\r\n").await.0.is_err());
        assert!(read(b"PROXY TCP4 ::1 ::1 1 2\r\n").await.0.is_err());
    }
}
