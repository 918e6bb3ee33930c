//! The cluster CA: created once in the server's data directory (`ca.crt`, `ca.key`), it signs
//! the control plane's serving certificate (fresh at every start, for the names clients use) and
//! the certificates of agents and proxies (from their CSRs: only the public key is taken, the
//! subject is the identity the control plane decided).

use crate::identity::PeerIdentity;
use crate::token::{hex, sha256};
use crate::{files, TrustError};
use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType, SerialNumber,
};
use std::path::Path;
use std::time::Duration;
use time::OffsetDateTime;

pub const CA_CERT_FILE: &str = "ca.crt";
pub const CA_KEY_FILE: &str = "ca.key";

pub struct Ca {
    cert_pem: String,
    cert_der: Vec<u8>,
    key: KeyPair,
    fingerprint: String,
}

impl std::fmt::Debug for Ca {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Ca({})", self.fingerprint)
    }
}

/// A certificate issued to an agent or proxy.
#[derive(Debug, Clone)]
pub struct Issued {
    pub certificate_pem: String,
    pub expires_at_ms: i64,
}

fn rcgen_err(what: &str) -> impl Fn(rcgen::Error) -> TrustError + '_ {
    move |e| TrustError::Certificate(format!("{what}: {e}"))
}

fn random_serial() -> SerialNumber {
    let mut b = [0u8; 16];
    rand::Rng::fill(&mut rand::rng(), &mut b);
    b[0] &= 0x7f;
    SerialNumber::from_slice(&b)
}

/// Certificates start a little in the past so a clock slightly behind still accepts them.
fn validity(params: &mut CertificateParams, lifetime: Duration) -> i64 {
    let now = OffsetDateTime::now_utc();
    let backdate = (lifetime / 10).min(Duration::from_secs(300));
    params.not_before = now - backdate;
    params.not_after = now + lifetime;
    (params.not_after.unix_timestamp_nanos() / 1_000_000) as i64
}

impl Ca {
    /// Reads `ca.crt` and `ca.key` in `dir`, or creates them (the key readable by the owner only).
    pub fn load_or_create(dir: &Path) -> Result<Self, TrustError> {
        let (cert_path, key_path) = (dir.join(CA_CERT_FILE), dir.join(CA_KEY_FILE));
        if cert_path.exists() && key_path.exists() {
            let cert_pem = files::read(&cert_path)?;
            let key_pem = files::read(&key_path)?;
            let key = KeyPair::from_pem(&key_pem).map_err(rcgen_err("ca.key"))?;
            return Self::from_parts(cert_pem, key);
        }
        let key = KeyPair::generate().map_err(rcgen_err("CA key"))?;
        let mut params = CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.distinguished_name.push(
            DnType::CommonName,
            format!("Berth cluster CA {}", crate::token::random_hex(8)),
        );
        params
            .distinguished_name
            .push(DnType::OrganizationName, "berth");
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        params.serial_number = Some(random_serial());
        validity(&mut params, Duration::from_secs(10 * 365 * 86400));
        let cert = params.self_signed(&key).map_err(rcgen_err("CA"))?;
        files::write_secret(&key_path, &key.serialize_pem())?;
        files::write_public(&cert_path, &cert.pem())?;
        Self::from_parts(cert.pem(), key)
    }

    fn from_parts(cert_pem: String, key: KeyPair) -> Result<Self, TrustError> {
        let cert_der = files::pem_certificates(&cert_pem)
            .into_iter()
            .next()
            .ok_or_else(|| TrustError::Certificate("ca.crt holds no certificate".into()))?;
        let fingerprint = hex(&sha256(&cert_der));
        Ok(Self {
            cert_pem,
            cert_der,
            key,
            fingerprint,
        })
    }

    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// SHA-256 of the CA certificate (DER), hex: what a join token pins.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    fn issuer(&self) -> Result<Issuer<'static, &KeyPair>, TrustError> {
        Issuer::from_ca_cert_der(&self.cert_der.clone().into(), &self.key)
            .map_err(rcgen_err("CA certificate"))
    }

    /// The control plane's serving certificate for `names` (DNS names or IPs): returns the chain
    /// (leaf, then the CA, so a joining agent can pin the CA) and the new key, both PEM.
    pub fn issue_server(
        &self,
        names: &[String],
        lifetime: Duration,
    ) -> Result<(String, String), TrustError> {
        let key = KeyPair::generate().map_err(rcgen_err("server key"))?;
        let mut params = CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, "berth control plane");
        params.subject_alt_names = names
            .iter()
            .map(|n| match n.parse::<std::net::IpAddr>() {
                Ok(ip) => Ok(SanType::IpAddress(ip)),
                Err(_) => n.clone().try_into().map(SanType::DnsName).map_err(|_| {
                    TrustError::Certificate(format!(
                        "--tls-san {n:?}: not a DNS name or IP address"
                    ))
                }),
            })
            .collect::<Result<_, _>>()?;
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.serial_number = Some(random_serial());
        validity(&mut params, lifetime);
        let cert = params
            .signed_by(&key, &self.issuer()?)
            .map_err(rcgen_err("server certificate"))?;
        Ok((
            format!("{}{}", cert.pem(), self.cert_pem),
            key.serialize_pem(),
        ))
    }

    fn client_params(identity: &PeerIdentity, lifetime: Duration) -> (CertificateParams, i64) {
        let mut params = CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, identity.common_name());
        params
            .distinguished_name
            .push(DnType::OrganizationName, "berth");
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.serial_number = Some(random_serial());
        let expires = validity(&mut params, lifetime);
        (params, expires)
    }

    /// Signs a CSR (its signature proves the requester holds the key) for `identity`.
    pub fn sign_csr(
        &self,
        csr_pem: &str,
        identity: &PeerIdentity,
        lifetime: Duration,
    ) -> Result<Issued, TrustError> {
        let csr = CertificateSigningRequestParams::from_pem(csr_pem).map_err(|e| {
            TrustError::BadRequest(format!("csrPem: not a valid PEM certificate request ({e})"))
        })?;
        let (params, expires_at_ms) = Self::client_params(identity, lifetime);
        let cert = params
            .signed_by(&csr.public_key, &self.issuer()?)
            .map_err(rcgen_err("certificate"))?;
        Ok(Issued {
            certificate_pem: cert.pem(),
            expires_at_ms,
        })
    }

    /// A certificate and key for a client in this same process (the server's own proxy).
    pub fn issue_local(
        &self,
        identity: &PeerIdentity,
        lifetime: Duration,
    ) -> Result<(Issued, String), TrustError> {
        let key = KeyPair::generate().map_err(rcgen_err("key"))?;
        let (params, expires_at_ms) = Self::client_params(identity, lifetime);
        let cert = params
            .signed_by(&key, &self.issuer()?)
            .map_err(rcgen_err("certificate"))?;
        Ok((
            Issued {
                certificate_pem: cert.pem(),
                expires_at_ms,
            },
            key.serialize_pem(),
        ))
    }
}

/// A new key and a CSR for it (the subject is left to the CA), both PEM.
pub fn new_key_and_csr() -> Result<(String, String), TrustError> {
    let key = KeyPair::generate().map_err(rcgen_err("key"))?;
    let csr = CertificateParams::default()
        .serialize_request(&key)
        .map_err(rcgen_err("certificate request"))?
        .pem()
        .map_err(rcgen_err("certificate request"))?;
    Ok((key.serialize_pem(), csr))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::{validity_ms, PeerKind};

    #[test]
    fn a_signed_csr_carries_the_identity_the_ca_chose_and_the_lifetime() {
        let dir = tempfile::tempdir().unwrap();
        let ca = Ca::load_or_create(dir.path()).unwrap();
        let again = Ca::load_or_create(dir.path()).unwrap();
        assert_eq!(
            ca.fingerprint(),
            again.fingerprint(),
            "kept across restarts"
        );
        let (_key, csr) = new_key_and_csr().unwrap();
        let who = PeerIdentity::new(PeerKind::Node, "abc123");
        let issued = ca.sign_csr(&csr, &who, Duration::from_secs(60)).unwrap();
        let der = files::pem_certificates(&issued.certificate_pem).remove(0);
        assert_eq!(PeerIdentity::from_der(&der), Some(who));
        let (nb, na) = validity_ms(&der).unwrap();
        assert!(na - nb >= 60_000 && na - nb <= 67_000, "{nb} {na}");
        assert!(ca
            .sign_csr(
                "not a csr",
                &PeerIdentity::new(PeerKind::Node, "x"),
                Duration::from_secs(1)
            )
            .is_err());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(CA_KEY_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
