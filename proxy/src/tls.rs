//! HTTPS listeners: TLS by rustls on the listener ports the routing table names, the
//! certificate chosen by SNI (exact name, then `*.` wildcard, then the listener's default), ALPN
//! offering h2 and http/1.1, and the ELBv2 security policy mapped onto rustls' versions and
//! cipher suites. Also the ACME HTTP-01 answers the control plane asks every proxy to give.
//! Built once per table change into an `ArcSwap`, so a handshake reads one snapshot.

use crate::Shared;
use berth_proto::v1::{AcmeChallenge, TlsCertificate, TlsListener};
use rustls::crypto::ring::{default_provider, sign::any_supported_type};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{CipherSuite, ServerConfig, SupportedProtocolVersion};
use std::collections::HashMap;
use std::sync::Arc;

/// What the handshakes and the challenge answers read.
#[derive(Default)]
pub(crate) struct Tls {
    /// Listener port → its TLS settings and the table entry they were built from.
    pub ports: HashMap<u16, (TlsListener, Arc<ServerConfig>)>,
    /// ACME HTTP-01: token → key authorization.
    pub challenges: HashMap<String, String>,
}

impl Tls {
    pub fn acceptor(&self, port: u16) -> Option<tokio_rustls::TlsAcceptor> {
        self.ports
            .get(&port)
            .map(|(_, c)| tokio_rustls::TlsAcceptor::from(c.clone()))
    }
}

/// Makes the table's TLS listeners and challenges current, rebuilding only the ports whose
/// certificates or policy changed (so their session caches carry over).
pub(crate) fn apply(
    shared: &Shared,
    listeners: &[TlsListener],
    challenges: &[AcmeChallenge],
    http2: bool,
) {
    let old = shared.tls.load();
    let mut ports = HashMap::new();
    for l in listeners {
        let Some(port) = u16::try_from(l.port).ok().filter(|p| *p > 0) else {
            continue;
        };
        if let Some((source, config)) = old.ports.get(&port).filter(|(s, _)| s == l) {
            ports.insert(port, (source.clone(), config.clone()));
            continue;
        }
        match server_config(l, http2) {
            Ok(config) => {
                tracing::info!(
                    port,
                    certificates = l.certificates.len(),
                    policy = %l.ssl_policy,
                    "HTTPS listener ready"
                );
                ports.insert(port, (l.clone(), Arc::new(config)));
            }
            Err(e) => tracing::warn!(port, "HTTPS listener not served: {e}"),
        }
    }
    let challenges = challenges
        .iter()
        .map(|c| (c.token.clone(), c.key_authorization.clone()))
        .collect();
    shared.tls.store(Arc::new(Tls { ports, challenges }));
}

/// The OpenSSL name of a rustls suite, as the ELBv2 policies list ciphers.
fn openssl_name(s: CipherSuite) -> &'static str {
    match s {
        CipherSuite::TLS13_AES_128_GCM_SHA256 => "TLS_AES_128_GCM_SHA256",
        CipherSuite::TLS13_AES_256_GCM_SHA384 => "TLS_AES_256_GCM_SHA384",
        CipherSuite::TLS13_CHACHA20_POLY1305_SHA256 => "TLS_CHACHA20_POLY1305_SHA256",
        CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256 => "ECDHE-ECDSA-AES128-GCM-SHA256",
        CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256 => "ECDHE-RSA-AES128-GCM-SHA256",
        CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384 => "ECDHE-ECDSA-AES256-GCM-SHA384",
        CipherSuite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384 => "ECDHE-RSA-AES256-GCM-SHA384",
        CipherSuite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256 => {
            "ECDHE-ECDSA-CHACHA20-POLY1305"
        }
        CipherSuite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256 => "ECDHE-RSA-CHACHA20-POLY1305",
        _ => "",
    }
}

fn server_config(l: &TlsListener, http2: bool) -> Result<ServerConfig, String> {
    let policy = berth_core::tls::policy(&l.ssl_policy)
        .or_else(|| berth_core::tls::policy(berth_core::tls::DEFAULT_POLICY))
        .ok_or("no security policy")?;
    let mut provider = default_provider();
    provider
        .cipher_suites
        .retain(|s| policy.ciphers.contains(&openssl_name(s.suite())));
    let versions: Vec<&'static SupportedProtocolVersion> = policy
        .protocols
        .iter()
        .filter_map(|p| match *p {
            "TLSv1.3" => Some(&rustls::version::TLS13),
            "TLSv1.2" => Some(&rustls::version::TLS12),
            _ => None,
        })
        .collect();
    let resolver = Sni::build(&l.certificates)?;
    let mut config = ServerConfig::builder_with_provider(Arc::new(provider))
        .with_protocol_versions(&versions)
        .map_err(|e| format!("policy {}: {e}", policy.name))?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(resolver));
    config.alpn_protocols = if http2 {
        vec![b"h2".to_vec(), b"http/1.1".to_vec()]
    } else {
        vec![b"http/1.1".to_vec()]
    };
    Ok(config)
}

/// Certificates by the names they cover.
#[derive(Debug)]
struct Sni {
    exact: HashMap<String, Arc<CertifiedKey>>,
    /// `*.example.com` under `example.com`.
    wildcard: HashMap<String, Arc<CertifiedKey>>,
    default: Arc<CertifiedKey>,
}

fn certified(c: &TlsCertificate) -> Result<Arc<CertifiedKey>, String> {
    let chain: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(c.chain_pem.as_bytes())
            .collect::<Result<_, _>>()
            .map_err(|e| format!("certificate {}: {e}", c.arn))?;
    // The key's own error could quote it; say only which certificate.
    let key = PrivateKeyDer::from_pem_slice(c.key_pem.as_bytes())
        .map_err(|_| format!("certificate {}: its key does not parse", c.arn))?;
    let key = any_supported_type(&key)
        .map_err(|_| format!("certificate {}: an unsupported key type", c.arn))?;
    Ok(Arc::new(CertifiedKey::new(chain, key)))
}

impl Sni {
    fn build(certs: &[TlsCertificate]) -> Result<Self, String> {
        let mut exact = HashMap::new();
        let mut wildcard = HashMap::new();
        let mut default = None;
        for c in certs {
            let key = match certified(c) {
                Ok(k) => k,
                Err(e) => {
                    tracing::warn!("{e}; not served");
                    continue;
                }
            };
            default.get_or_insert_with(|| key.clone());
            for n in &c.names {
                let n = n.to_ascii_lowercase();
                match n.strip_prefix("*.") {
                    Some(parent) => wildcard.entry(parent.to_string()),
                    None => exact.entry(n),
                }
                .or_insert_with(|| key.clone());
            }
        }
        Ok(Self {
            exact,
            wildcard,
            default: default.ok_or("no usable certificate")?,
        })
    }
}

impl ResolvesServerCert for Sni {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let Some(name) = hello.server_name() else {
            return Some(self.default.clone());
        };
        let name = name.to_ascii_lowercase();
        let found = self.exact.get(&name).or_else(|| {
            name.split_once('.')
                .and_then(|(_, parent)| self.wildcard.get(parent))
        });
        Some(found.unwrap_or(&self.default).clone())
    }
}

/// The answer to `GET /.well-known/acme-challenge/TOKEN` when TOKEN is a challenge in progress.
pub(crate) fn acme_answer(shared: &Shared, path: &str) -> Option<String> {
    let token = path.strip_prefix("/.well-known/acme-challenge/")?;
    shared.tls.load().challenges.get(token).cloned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert(names: &[&str]) -> TlsCertificate {
        let c = rcgen::generate_simple_self_signed(
            names.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
        )
        .unwrap();
        TlsCertificate {
            arn: names[0].into(),
            chain_pem: c.cert.pem(),
            key_pem: c.signing_key.serialize_pem(),
            names: names.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn names_pick_their_certificate_and_others_get_the_default() {
        let sni = Sni::build(&[cert(&["a.test"]), cert(&["b.test", "*.c.test"])]).unwrap();
        let a = sni.exact.get("a.test").unwrap();
        let b = sni.exact.get("b.test").unwrap();
        assert!(!Arc::ptr_eq(a, b));
        assert!(Arc::ptr_eq(sni.wildcard.get("c.test").unwrap(), b));
        assert!(Arc::ptr_eq(&sni.default, a));
    }

    #[test]
    fn the_policies_map_onto_rustls_suites() {
        for p in berth_core::tls::POLICIES {
            let l = TlsListener {
                port: 443,
                ssl_policy: p.name.into(),
                certificates: vec![cert(&["a.test"])],
            };
            let config = server_config(&l, true).unwrap();
            let offered: Vec<&str> = config
                .crypto_provider()
                .cipher_suites
                .iter()
                .map(|s| openssl_name(s.suite()))
                .collect();
            let mut want: Vec<&str> = p.ciphers.to_vec();
            let mut got = offered.clone();
            want.sort();
            got.sort();
            assert_eq!(got, want, "{}", p.name);
        }
    }
}
