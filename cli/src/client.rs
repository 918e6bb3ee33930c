//! The gRPC connection to a Berth server, and turning its errors into one line for people.
//! With `--ca` (or an `https://` server) the connection is TLS verified against the cluster CA;
//! with `--token` every call carries `authorization: Bearer …`.

use anyhow::Context;
use std::path::PathBuf;
use std::sync::OnceLock;
use tonic::metadata::MetadataValue;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};

/// How client commands authenticate; set once from the global flags.
#[derive(Debug, Default, Clone)]
pub struct Credentials {
    pub token: Option<String>,
    pub ca: Option<PathBuf>,
}

static CREDENTIALS: OnceLock<Credentials> = OnceLock::new();

pub fn configure(credentials: Credentials) {
    let _ = CREDENTIALS.set(credentials);
}

pub fn credentials() -> Credentials {
    CREDENTIALS.get().cloned().unwrap_or_default()
}

/// Adds the bearer token to every call.
#[derive(Clone)]
pub struct Bearer(Option<MetadataValue<tonic::metadata::Ascii>>);

impl tonic::service::Interceptor for Bearer {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(v) = &self.0 {
            req.metadata_mut().insert("authorization", v.clone());
        }
        Ok(req)
    }
}

/// A connection to the server, as every client command uses it.
pub type Conn = InterceptedService<Channel, Bearer>;

/// The server the command talks to, for the words of its errors.
static SERVER: OnceLock<String> = OnceLock::new();

/// Connects to `url` (`http://HOST:PORT`, or `https://` with `--ca`).
/// Connects to the first of the servers (`--server` takes several, comma-separated) that
/// answers.
pub async fn connect(urls: &str) -> anyhow::Result<Conn> {
    let _ = SERVER.set(urls.to_string());
    let mut last = None;
    for url in urls.split(',').map(str::trim).filter(|u| !u.is_empty()) {
        match connect_one(url).await {
            Ok(c) => return Ok(c),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| anyhow::anyhow!("--server: no server URL given")))
}

async fn connect_one(url: &str) -> anyhow::Result<Conn> {
    let creds = credentials();
    let bearer = match creds.token.as_deref().map(str::trim) {
        Some(t) if !t.is_empty() => Some(
            format!("Bearer {t}")
                .parse()
                .map_err(|_| anyhow::anyhow!("--token / BERTH_TOKEN: not a valid token"))?,
        ),
        _ => None,
    };
    let tls = match (&creds.ca, url.starts_with("https://")) {
        (Some(ca), _) => {
            let pem = std::fs::read_to_string(ca)
                .with_context(|| format!("--ca {}: cannot read the CA file", ca.display()))?;
            Some(
                berth_trust::ClientTls::with_ca_pem(&pem)
                    .with_context(|| format!("--ca {}", ca.display()))?,
            )
        }
        (None, true) => anyhow::bail!(
            "--server {url}: TLS needs the cluster CA to verify the server: pass --ca FILE or set BERTH_CA (the server writes DATA/ca.crt)"
        ),
        (None, false) => None,
    };
    let plain = berth_trust::client::plain_scheme(url);
    let endpoint = Endpoint::from_shared(plain)
        .with_context(|| format!("--server {url:?} is not a URL like http://127.0.0.1:7070"))?
        .connect_timeout(std::time::Duration::from_secs(5));
    let connected = match &tls {
        Some(tls) => tls.connect(endpoint).await,
        None => endpoint.connect().await,
    };
    let channel = connected.map_err(|e| {
        let cause = std::error::Error::source(&e).map_or(String::new(), |c| format!(": {c}"));
        let text = format!("{e}{cause}");
        let hint = if tls.is_some() && text.contains("InvalidContentType") {
            "the server speaks plaintext, not TLS (berth dev, berth server --insecure): use --server http://HOST:PORT"
        } else if tls.is_some() {
            "is the server's certificate from this CA and valid for this name (--tls-san)?"
        } else {
            "is `berth dev` running? Set --server or BERTH_SERVER"
        };
        anyhow::anyhow!("cannot reach the Berth server at {url} ({e}{cause}); {hint}")
    })?;
    Ok(InterceptedService::new(channel, Bearer(bearer)))
}

/// A gRPC status becomes its message alone (it already names the field and the fix); a plaintext
/// client talking to a TLS server gets told so.
pub fn describe_error(e: &anyhow::Error) -> String {
    if let Some(status) = e.downcast_ref::<tonic::Status>() {
        let transport = matches!(
            status.code(),
            tonic::Code::Unknown
                | tonic::Code::Unavailable
                | tonic::Code::Internal
                | tonic::Code::Cancelled
        );
        let plain = SERVER.get().filter(|u| !u.starts_with("https://"));
        if let Some(url) = plain.filter(|_| transport) {
            if speaks_tls(url) {
                return format!(
                    "{}: the server at {url} speaks TLS (berth server), and this client spoke plaintext: use --server https://HOST:PORT with --ca DATA/ca.crt (or BERTH_CA)",
                    status.message()
                );
            }
        }
        return status.message().to_string();
    }
    format!("{e:#}")
}

/// Whether the server at `url` answers an HTTP/2 preface with a TLS record (an alert): a
/// moment's look, only once a call has already failed.
fn speaks_tls(url: &str) -> bool {
    use std::io::{Read, Write};
    use std::net::ToSocketAddrs;
    let hostport = url
        .split("://")
        .nth(1)
        .unwrap_or(url)
        .split('/')
        .next()
        .unwrap_or_default();
    let Some(addr) = hostport.to_socket_addrs().ok().and_then(|mut a| a.next()) else {
        return false;
    };
    let wait = std::time::Duration::from_secs(2);
    let Ok(mut s) = std::net::TcpStream::connect_timeout(&addr, wait) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(wait));
    let mut first = [0u8; 1];
    s.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").is_ok()
        && s.read(&mut first).is_ok_and(|n| n == 1)
        && matches!(first[0], 0x15 | 0x16)
}
