//! The HTTP client instant-acme sends its requests with: one connection a request (ACME is a
//! handful of calls a day), HTTPS verified against the system's roots plus a configured root
//! (`--acme-ca-root`, for a private ACME server such as pebble), plain HTTP for a directory on
//! `http://`. Kept here so the ACME client adds no second TLS stack or root store crate.

use bytes::Bytes;
use instant_acme::{BodyWrapper, BytesResponse, HttpClient};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Where Debian (and most distributions) keep the system's trusted roots.
const SYSTEM_ROOTS: &str = "/etc/ssl/certs/ca-certificates.crt";

pub struct Client {
    tls: Arc<rustls::ClientConfig>,
}

impl Client {
    pub fn new(extra_root: Option<&Path>) -> Result<Self, String> {
        let mut roots = rustls::RootCertStore::empty();
        if let Ok(certs) = CertificateDer::pem_file_iter(SYSTEM_ROOTS) {
            roots.add_parsable_certificates(certs.flatten());
        }
        if let Some(path) = extra_root {
            let certs: Vec<_> = CertificateDer::pem_file_iter(path)
                .map_err(|e| format!("--acme-ca-root {}: {e}", path.display()))?
                .collect::<Result<_, _>>()
                .map_err(|e| format!("--acme-ca-root {}: {e}", path.display()))?;
            let (added, _) = roots.add_parsable_certificates(certs);
            if added == 0 {
                return Err(format!(
                    "--acme-ca-root {}: holds no usable certificate",
                    path.display()
                ));
            }
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Self { tls: Arc::new(tls) })
    }
}

impl HttpClient for Client {
    fn request(
        &self,
        req: http::Request<BodyWrapper<Bytes>>,
    ) -> Pin<Box<dyn Future<Output = Result<BytesResponse, instant_acme::Error>> + Send>> {
        let tls = self.tls.clone();
        Box::pin(async move {
            match tokio::time::timeout(Duration::from_secs(30), send(tls, req)).await {
                Ok(r) => r.map_err(instant_acme::Error::Other),
                Err(_) => Err(instant_acme::Error::Other(
                    "the ACME server did not answer within 30 s".into(),
                )),
            }
        })
    }
}

async fn send(
    tls: Arc<rustls::ClientConfig>,
    req: http::Request<BodyWrapper<Bytes>>,
) -> Result<BytesResponse, BoxError> {
    let uri = req.uri().clone();
    let host = uri.host().ok_or("an ACME URL without a host")?.to_string();
    let https = uri.scheme_str() != Some("http");
    let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
    let tcp = tokio::net::TcpStream::connect((host.as_str(), port)).await?;
    let (mut parts, body) = req.into_parts();
    parts.uri = uri.path_and_query().map_or("/", |p| p.as_str()).parse()?;
    let authority = uri.authority().map_or(host.clone(), |a| a.to_string());
    parts.headers.insert(http::header::HOST, authority.parse()?);
    let req = http::Request::from_parts(parts, body);
    let response = if https {
        let name = ServerName::try_from(host)?;
        let stream = tokio_rustls::TlsConnector::from(tls)
            .connect(name, tcp)
            .await?;
        exchange(hyper_util::rt::TokioIo::new(stream), req).await?
    } else {
        exchange(hyper_util::rt::TokioIo::new(tcp), req).await?
    };
    Ok(BytesResponse::from(response))
}

async fn exchange<I>(
    io: I,
    req: http::Request<BodyWrapper<Bytes>>,
) -> Result<http::Response<hyper::body::Incoming>, BoxError>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender.send_request(req).await?)
}

/// POSTs JSON to a webhook (the DNS-01 hook): its status code.
pub async fn post_json(url: &str, body: String) -> Result<u16, String> {
    let req = http::Request::post(url)
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(BodyWrapper::from(body.into_bytes()))
        .map_err(|e| e.to_string())?;
    let client = Client::new(None)?;
    let tls = client.tls.clone();
    match tokio::time::timeout(Duration::from_secs(30), send(tls, req)).await {
        Ok(Ok(r)) => Ok(r.parts.status.as_u16()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("no answer within 30 s".into()),
    }
}
