//! The client side of TLS to the control plane, shared by agents, proxies and the CLI: which CA
//! to trust (a CA file, or the fingerprint a join token pins) and, for agents and proxies, the
//! certificate to present. The material sits behind a lock and every new connection reads it, so
//! a renewed certificate is used from the next reconnect on without rebuilding any channel.

use crate::identity::PeerIdentity;
use crate::token::{hex, sha256};
use crate::{files, TrustError};
use hyper_util::rt::TokioIo;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::net::TcpStream;
use tonic::codegen::http::Uri;
use tonic::transport::{Channel, Endpoint};

#[derive(Clone)]
enum Trust {
    /// The cluster CA certificate, DER.
    Ca(Vec<u8>),
    /// Only a CA whose certificate has this SHA-256 (the server sends it in its chain).
    Pinned(String),
}

struct Material {
    trust: Trust,
    identity: Option<Identity>,
}

struct Identity {
    peer: Option<PeerIdentity>,
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    /// (not before, not after), Unix ms.
    validity: (i64, i64),
}

/// TLS settings for connections to the control plane. Cheap to clone; clones share material.
#[derive(Clone)]
pub struct ClientTls {
    inner: Arc<RwLock<Material>>,
}

impl std::fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ClientTls(identity: {:?})", self.identity())
    }
}

pub(crate) fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

impl ClientTls {
    /// Trust the CA certificate(s) in this PEM.
    pub fn with_ca_pem(pem: &str) -> Result<Self, TrustError> {
        let der = files::pem_certificates(pem)
            .into_iter()
            .next()
            .ok_or_else(|| {
                TrustError::Certificate("the CA file holds no PEM certificate".into())
            })?;
        Ok(Self::new(Trust::Ca(der)))
    }

    /// Trust only the CA with this fingerprint, as a join token names it.
    pub fn pinned(ca_fingerprint: &str) -> Self {
        Self::new(Trust::Pinned(ca_fingerprint.to_ascii_lowercase()))
    }

    fn new(trust: Trust) -> Self {
        Self {
            inner: Arc::new(RwLock::new(Material {
                trust,
                identity: None,
            })),
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Material> {
        self.inner.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Presents this certificate (PEM, leaf first) and key from now on.
    pub fn set_identity(&self, cert_pem: &str, key_pem: &str) -> Result<(), TrustError> {
        let chain: Vec<CertificateDer<'static>> = files::pem_certificates(cert_pem)
            .into_iter()
            .map(CertificateDer::from)
            .collect();
        let leaf = chain
            .first()
            .ok_or_else(|| TrustError::Certificate("no certificate in PEM".into()))?;
        let validity = crate::identity::validity_ms(leaf)
            .ok_or_else(|| TrustError::Certificate("unreadable certificate".into()))?;
        let peer = PeerIdentity::from_der(leaf);
        let key = files::pem_private_key(key_pem)
            .ok_or_else(|| TrustError::Certificate("no private key in PEM".into()))?;
        let mut m = self.inner.write().unwrap_or_else(|p| p.into_inner());
        m.identity = Some(Identity {
            peer,
            chain,
            key,
            validity,
        });
        Ok(())
    }

    /// Trust the CA from now on (after a join pinned it by fingerprint).
    pub fn set_ca_pem(&self, pem: &str) -> Result<(), TrustError> {
        let der = files::pem_certificates(pem)
            .into_iter()
            .next()
            .ok_or_else(|| TrustError::Certificate("no CA certificate in PEM".into()))?;
        self.inner.write().unwrap_or_else(|p| p.into_inner()).trust = Trust::Ca(der);
        Ok(())
    }

    /// Who the presented certificate says we are.
    pub fn identity(&self) -> Option<PeerIdentity> {
        self.read().identity.as_ref().and_then(|i| i.peer.clone())
    }

    /// (not before, not after) of the presented certificate, Unix ms.
    pub fn validity_ms(&self) -> Option<(i64, i64)> {
        self.read().identity.as_ref().map(|i| i.validity)
    }

    /// SHA-256 of the trusted CA certificate, once it is known.
    pub fn ca_fingerprint(&self) -> String {
        match &self.read().trust {
            Trust::Ca(der) => hex(&sha256(der)),
            Trust::Pinned(fp) => fp.clone(),
        }
    }

    /// A rustls configuration from the current material.
    pub fn client_config(&self) -> Result<Arc<ClientConfig>, TrustError> {
        let m = self.read();
        let provider = provider();
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| TrustError::Certificate(e.to_string()))?;
        let builder = match &m.trust {
            Trust::Ca(der) => {
                let mut roots = RootCertStore::empty();
                roots
                    .add(CertificateDer::from(der.clone()))
                    .map_err(|e| TrustError::Certificate(format!("CA certificate: {e}")))?;
                builder.with_root_certificates(roots)
            }
            Trust::Pinned(fp) => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(PinnedCa {
                    fingerprint: fp.clone(),
                    provider,
                })),
        };
        let mut config = match &m.identity {
            Some(id) => builder
                .with_client_auth_cert(id.chain.clone(), id.key.clone_key())
                .map_err(|e| TrustError::Certificate(format!("client certificate: {e}")))?,
            None => builder.with_no_client_auth(),
        };
        config.alpn_protocols = vec![b"h2".to_vec()];
        Ok(Arc::new(config))
    }

    /// An endpoint for `url` (`https://` or `http://HOST:PORT`) whose connections are this TLS.
    pub fn endpoint(&self, url: &str) -> Result<Endpoint, TrustError> {
        Endpoint::from_shared(plain_scheme(url))
            .map_err(|e| TrustError::BadRequest(format!("server URL {url:?}: {e}")))
    }

    pub async fn connect(&self, endpoint: Endpoint) -> Result<Channel, tonic::transport::Error> {
        endpoint.connect_with_connector(self.connector()).await
    }

    pub fn connect_lazy(&self, endpoint: Endpoint) -> Channel {
        endpoint.connect_with_connector_lazy(self.connector())
    }

    pub fn connector(&self) -> TlsConnector {
        TlsConnector { tls: self.clone() }
    }
}

/// tonic sees plain HTTP/2; the TLS is this crate's connector's.
pub fn plain_scheme(url: &str) -> String {
    match url.strip_prefix("https://") {
        Some(rest) => format!("http://{rest}"),
        None => url.to_string(),
    }
}

/// Opens TCP then TLS with the material current at connect time.
#[derive(Clone)]
pub struct TlsConnector {
    tls: ClientTls,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl tower_service::Service<Uri> for TlsConnector {
    type Response = TokioIo<tokio_rustls::client::TlsStream<TcpStream>>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let tls = self.tls.clone();
        Box::pin(async move {
            let host = uri.host().ok_or("the server URL has no host")?;
            let host = host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_string();
            let port = uri.port_u16().unwrap_or(7070);
            let tcp = tokio::time::timeout(
                Duration::from_secs(5),
                TcpStream::connect((host.as_str(), port)),
            )
            .await
            .map_err(|_| format!("connecting to {host}:{port} timed out"))??;
            let _ = tcp.set_nodelay(true);
            let name = ServerName::try_from(host.clone())
                .map_err(|_| format!("{host:?} is not a valid server name"))?;
            let config = tls.client_config()?;
            let stream = tokio_rustls::TlsConnector::from(config)
                .connect(name, tcp)
                .await?;
            Ok(TokioIo::new(stream))
        })
    }
}

/// Verifies the server against the CA in its own chain, once that CA's fingerprint matches the
/// join token's: the first contact of a new agent, before it has the CA file.
#[derive(Debug)]
struct PinnedCa {
    fingerprint: String,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for PinnedCa {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let ca = intermediates
            .iter()
            .find(|c| {
                crate::token::constant_time_eq(
                    hex(&sha256(c)).as_bytes(),
                    self.fingerprint.as_bytes(),
                )
            })
            .ok_or_else(|| {
                rustls::Error::General(
                    "the server's CA is not the one the join token names (wrong server or token)"
                        .into(),
                )
            })?;
        let mut roots = RootCertStore::empty();
        roots.add(ca.clone().into_owned())?;
        let inner =
            WebPkiServerVerifier::builder_with_provider(Arc::new(roots), self.provider.clone())
                .build()
                .map_err(|e| rustls::Error::General(e.to_string()))?;
        inner.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
