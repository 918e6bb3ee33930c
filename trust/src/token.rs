//! Token formats. A client token is `berth_ID_SECRET`: the id finds the record, the secret is
//! compared (as a SHA-256, in constant time) with the stored hash. A join token is
//! `BERTHJOIN1-CAFINGERPRINT-SECRET`, as Docker swarm's: the fingerprint lets a new agent check
//! it reached the right control plane before it sends anything.

use rand::Rng;
use std::fmt;

/// Random lowercase hex, `len` characters.
pub fn random_hex(len: usize) -> String {
    let mut rng = rand::rng();
    (0..len)
        .map(|_| char::from_digit(rng.random_range(0..16), 16).unwrap_or('0'))
        .collect()
}

pub fn sha256(data: &[u8]) -> [u8; 32] {
    let d = ring::digest::digest(&ring::digest::SHA256, data);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Equal length and content, in time that depends only on the length.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

const CLIENT_PREFIX: &str = "berth_";
const JOIN_PREFIX: &str = "BERTHJOIN1-";

/// A client token taken apart. `Debug` never shows the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct ClientToken {
    pub id: String,
    pub secret: String,
}

impl ClientToken {
    pub fn generate() -> Self {
        Self {
            id: random_hex(12),
            secret: random_hex(48),
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        let rest = s.trim().strip_prefix(CLIENT_PREFIX)?;
        let (id, secret) = rest.split_once('_')?;
        let hex_only = |x: &str| !x.is_empty() && x.bytes().all(|b| b.is_ascii_hexdigit());
        (hex_only(id) && hex_only(secret)).then(|| Self {
            id: id.to_string(),
            secret: secret.to_string(),
        })
    }

    /// The text a user passes as `--token`.
    pub fn reveal(&self) -> String {
        format!("{CLIENT_PREFIX}{}_{}", self.id, self.secret)
    }

    pub fn secret_sha256(&self) -> [u8; 32] {
        sha256(self.secret.as_bytes())
    }
}

impl fmt::Debug for ClientToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ClientToken({}, secret hidden)", self.id)
    }
}

/// A join token taken apart. `Debug` never shows the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct JoinToken {
    /// SHA-256 of the cluster CA certificate (DER), hex.
    pub ca_fingerprint: String,
    pub secret: String,
}

impl JoinToken {
    pub fn generate(ca_fingerprint: &str) -> Self {
        Self {
            ca_fingerprint: ca_fingerprint.to_string(),
            secret: random_hex(48),
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        let rest = s.trim().strip_prefix(JOIN_PREFIX)?;
        let (fp, secret) = rest.split_once('-')?;
        let hex_only = |x: &str| !x.is_empty() && x.bytes().all(|b| b.is_ascii_hexdigit());
        (fp.len() == 64 && hex_only(fp) && hex_only(secret)).then(|| Self {
            ca_fingerprint: fp.to_ascii_lowercase(),
            secret: secret.to_string(),
        })
    }

    pub fn reveal(&self) -> String {
        format!("{JOIN_PREFIX}{}-{}", self.ca_fingerprint, self.secret)
    }

    pub fn secret_sha256(&self) -> [u8; 32] {
        sha256(self.secret.as_bytes())
    }
}

impl fmt::Debug for JoinToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "JoinToken(ca {}, secret hidden)", self.ca_fingerprint)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_tokens_round_trip_and_hide_their_secret() {
        let t = ClientToken::generate();
        let parsed = ClientToken::parse(&t.reveal()).unwrap();
        assert_eq!(parsed, t);
        assert!(!format!("{t:?}").contains(&t.secret));
        assert!(ClientToken::parse("berth_abc").is_none());
        assert!(ClientToken::parse("Bearer berth_a_b").is_none());
    }

    #[test]
    fn join_tokens_carry_the_ca_fingerprint() {
        let fp = hex(&sha256(b"ca"));
        let t = JoinToken::generate(&fp);
        let parsed = JoinToken::parse(&format!(" {}\n", t.reveal())).unwrap();
        assert_eq!(parsed.ca_fingerprint, fp);
        assert_eq!(parsed.secret, t.secret);
        assert!(JoinToken::parse("BERTHJOIN1-abc-def").is_none());
    }

    #[test]
    fn comparison_needs_equal_bytes() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
