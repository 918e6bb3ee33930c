//! The HTTPS side of `berth bench proxy`: one self-signed ECDSA P-256 certificate (rcgen) that
//! every proxy serves, written into the bench's scratch directory for nginx and HAProxy and put
//! in the routing table for Berth's proxy; and a probe that waits until a proxy completes a
//! TLS 1.3 handshake with that certificate and answers 200.

use anyhow::{bail, Context};
use berth_proto::v1::{TlsCertificate, TlsListener};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The name the certificate covers and the probe asks for (wrk sends no name it could match:
/// every proxy serves this certificate as its default).
const NAME: &str = "bench";

/// The ELBv2 policy that allows TLS 1.3 only, with its three cipher suites: what nginx and
/// HAProxy are set to as well.
pub const POLICY: &str = "ELBSecurityPolicy-TLS13-1-3-2021-06";

/// How each side's TLS is set, for the report.
pub const SETTINGS: &str = "TLS 1.3 only, one self-signed ECDSA P-256 certificate served by \
    all, X25519 key exchange first, no ALPN (HTTP/1.1), no session resumption (wrk resumes none)";

/// The certificate and key, PEM, and where the reference proxies read them.
pub struct BenchCert {
    pub cert_pem: String,
    pub key_pem: String,
    /// The certificate, for nginx.
    pub cert_file: PathBuf,
    /// The key (PKCS#8), for nginx.
    pub key_file: PathBuf,
    /// The certificate then the key in one file, as HAProxy's `crt` takes them.
    pub combined_file: PathBuf,
}

impl BenchCert {
    /// A fresh self-signed certificate for [`NAME`], written into `dir` (removed with it).
    pub fn generate(dir: &Path) -> anyhow::Result<Self> {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
            .context("generating an ECDSA P-256 key")?;
        let cert = rcgen::CertificateParams::new(vec![NAME.to_string()])
            .and_then(|params| params.self_signed(&key))
            .context("making the bench's self-signed certificate")?;
        let made = BenchCert {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            cert_file: dir.join("bench.crt"),
            key_file: dir.join("bench.key"),
            combined_file: dir.join("bench.pem"),
        };
        let write = |path: &Path, text: &str| {
            std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
        };
        write(&made.cert_file, &made.cert_pem)?;
        write(&made.key_file, &made.key_pem)?;
        write(
            &made.combined_file,
            &format!("{}{}", made.cert_pem, made.key_pem),
        )?;
        Ok(made)
    }

    /// The HTTPS listener Berth's proxy gets on `port`: this certificate, TLS 1.3 only.
    pub fn listener(&self, port: u16) -> TlsListener {
        TlsListener {
            port: i32::from(port),
            ssl_policy: POLICY.into(),
            certificates: vec![TlsCertificate {
                arn: "arn:berth:bench:certificate/bench".into(),
                chain_pem: self.cert_pem.clone(),
                key_pem: self.key_pem.clone(),
                names: vec![NAME.into()],
            }],
        }
    }

    /// A client that trusts this certificate only, TLS 1.3 only.
    pub fn client(&self) -> anyhow::Result<tokio_rustls::TlsConnector> {
        let der = CertificateDer::from_pem_slice(self.cert_pem.as_bytes())
            .context("reading back the bench's certificate")?;
        let mut roots = rustls::RootCertStore::empty();
        roots.add(der).context("trusting the bench's certificate")?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .context("a TLS 1.3 client")?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
    }
}

/// Waits up to 15 s until `GET /` over TLS 1.3 to 127.0.0.1:`port`, verifying the bench's
/// certificate, answers 200.
pub async fn wait_until_serving(
    port: u16,
    what: &str,
    client: &tokio_rustls::TlsConnector,
) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let last = match get_status(port, client).await {
            Ok(200) => return Ok(()),
            Ok(status) => format!("status {status}"),
            Err(e) => format!("{e:#}"),
        };
        if tokio::time::Instant::now() > deadline {
            bail!("{what} did not answer 200 over TLS on 127.0.0.1:{port} within 15 s: {last}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn get_status(port: u16, client: &tokio_rustls::TlsConnector) -> anyhow::Result<u16> {
    let exchange = async {
        let tcp = TcpStream::connect(("127.0.0.1", port)).await?;
        let name = ServerName::try_from(NAME).context("server name")?;
        let mut tls = client.connect(name, tcp).await.context("TLS handshake")?;
        tls.write_all(b"GET / HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
            .await?;
        let mut buf = Vec::new();
        // A peer may close without close_notify after the answer; what was read still counts.
        let _ = tls.read_to_end(&mut buf).await;
        let text = String::from_utf8_lossy(&buf);
        text.split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .context("no HTTP status in the answer")
    };
    tokio::time::timeout(Duration::from_secs(2), exchange)
        .await
        .context("no answer within 2 s")?
}
