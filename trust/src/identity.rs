//! Who a certificate speaks for: `node:ID` (an agent) or `proxy:ID`, carried as the subject's
//! common name of a certificate the cluster CA issued.

use std::fmt;
use x509_parser::prelude::{FromDer, X509Certificate};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerKind {
    Node,
    Proxy,
}

impl PeerKind {
    pub fn as_str(self) -> &'static str {
        match self {
            PeerKind::Node => "node",
            PeerKind::Proxy => "proxy",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "node" => Some(PeerKind::Node),
            "proxy" => Some(PeerKind::Proxy),
            _ => None,
        }
    }
}

/// The verified identity of an agent or proxy. Put in a request's extensions by the control
/// plane once the peer's certificate checked out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerIdentity {
    pub kind: PeerKind,
    pub id: String,
}

impl PeerIdentity {
    pub fn new(kind: PeerKind, id: impl Into<String>) -> Self {
        Self {
            kind,
            id: id.into(),
        }
    }

    /// `node:ID`: the common name of its certificate.
    pub fn common_name(&self) -> String {
        format!("{}:{}", self.kind.as_str(), self.id)
    }

    pub fn parse(cn: &str) -> Option<Self> {
        let (kind, id) = cn.split_once(':')?;
        let ok = !id.is_empty()
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
        Some(Self::new(PeerKind::parse(kind)?, id)).filter(|_| ok)
    }

    /// From a DER certificate that rustls has already verified against the cluster CA.
    pub fn from_der(der: &[u8]) -> Option<Self> {
        let (_, cert) = X509Certificate::from_der(der).ok()?;
        let cn = cert.subject().iter_common_name().next()?.as_str().ok()?;
        Self::parse(cn)
    }
}

impl fmt::Display for PeerIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.common_name())
    }
}

/// A certificate's validity, in Unix milliseconds: (not before, not after).
pub fn validity_ms(der: &[u8]) -> Option<(i64, i64)> {
    let (_, cert) = X509Certificate::from_der(der).ok()?;
    let v = cert.validity();
    Some((
        v.not_before.timestamp() * 1000,
        v.not_after.timestamp() * 1000,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identities_parse_only_known_kinds_and_plain_ids() {
        let n = PeerIdentity::parse("node:ab12").unwrap();
        assert_eq!(n, PeerIdentity::new(PeerKind::Node, "ab12"));
        assert_eq!(n.common_name(), "node:ab12");
        assert!(PeerIdentity::parse("admin:x").is_none());
        assert!(PeerIdentity::parse("node:").is_none());
        assert!(PeerIdentity::parse("node:a/b").is_none());
    }
}
