//! `berth demo serve` with `UPSTREAM=http://api:8080/`: every page calls the upstream first and
//! answers with its own banner followed by the upstream's answer, or 502 when the upstream could
//! not be reached or did not answer 2xx: a `web` service calling `api` through Service Connect.
//!
//! The demo image is a static binary on an empty root, where the C library cannot load its name
//! service modules: the upstream's name is looked up in /etc/hosts here (where Service Connect
//! puts its aliases), then through DNS.

use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper::{Request, StatusCode, Uri};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use std::net::IpAddr;
use std::time::Duration;

/// How long an upstream call may take in all.
const TIMEOUT: Duration = Duration::from_secs(10);

pub(super) struct Upstream {
    url: Uri,
    host: String,
    port: u16,
    client: Client<HttpConnector, Empty<Bytes>>,
}

/// `name`'s address in a hosts file's text.
fn from_hosts(hosts: &str, name: &str) -> Option<IpAddr> {
    hosts.lines().find_map(|line| {
        let line = line.split('#').next().unwrap_or_default();
        let mut fields = line.split_whitespace();
        let ip: IpAddr = fields.next()?.parse().ok()?;
        fields.any(|n| n.eq_ignore_ascii_case(name)).then_some(ip)
    })
}

impl Upstream {
    /// From `UPSTREAM`; None when it is unset; an error naming it when it is no http:// URL.
    pub fn from_env() -> anyhow::Result<Option<Self>> {
        let Some(raw) = std::env::var("UPSTREAM")
            .ok()
            .filter(|v| !v.trim().is_empty())
        else {
            return Ok(None);
        };
        let url: Uri = raw
            .trim()
            .parse()
            .map_err(|_| anyhow::anyhow!("UPSTREAM={raw:?} is not a URL"))?;
        if url.scheme_str() != Some("http") {
            anyhow::bail!("UPSTREAM={raw:?}: only http:// URLs are supported");
        }
        let host = url
            .host()
            .ok_or_else(|| anyhow::anyhow!("UPSTREAM={raw:?} has no host"))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(Duration::from_secs(2)));
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(connector);
        Ok(Some(Self {
            port: url.port_u16().unwrap_or(80),
            url,
            host,
            client,
        }))
    }

    async fn address(&self) -> Result<IpAddr, String> {
        if let Ok(ip) = self.host.parse() {
            return Ok(ip);
        }
        let hosts = std::fs::read_to_string("/etc/hosts").unwrap_or_default();
        if let Some(ip) = from_hosts(&hosts, &self.host) {
            return Ok(ip);
        }
        tokio::net::lookup_host((self.host.as_str(), self.port))
            .await
            .map_err(|e| format!("cannot resolve {}: {e}", self.host))?
            .next()
            .map(|a| a.ip())
            .ok_or_else(|| format!("{} has no address", self.host))
    }

    /// The upstream's answer (status and body), or why there is none.
    pub async fn call(&self) -> Result<(StatusCode, String), String> {
        let ip = self.address().await?;
        let dial = match ip {
            IpAddr::V6(v6) => format!("[{v6}]"),
            IpAddr::V4(v4) => v4.to_string(),
        };
        let path = self.url.path_and_query().map_or("/", |p| p.as_str());
        let uri = format!("http://{dial}:{}{path}", self.port);
        let authority = self
            .url
            .authority()
            .map_or(self.host.as_str(), |a| a.as_str());
        let req = Request::get(uri)
            .header(hyper::header::HOST, authority)
            .body(Empty::new())
            .map_err(|e| e.to_string())?;
        let call = async {
            let resp = self
                .client
                .request(req)
                .await
                .map_err(|e| format!("{e:?}"))?;
            let status = resp.status();
            let body = resp
                .into_body()
                .collect()
                .await
                .map_err(|e| e.to_string())?
                .to_bytes();
            Ok((status, String::from_utf8_lossy(&body).into_owned()))
        };
        tokio::time::timeout(TIMEOUT, call)
            .await
            .unwrap_or_else(|_| Err(format!("no answer within {TIMEOUT:?}")))
    }

    /// A page's answer: 200 with `banner` and the upstream's answer, or 502 saying why not.
    pub async fn page(&self, banner: &str) -> (StatusCode, String) {
        match self.call().await {
            Ok((status, body)) if status.is_success() => {
                (StatusCode::OK, format!("{banner}upstream: {body}"))
            }
            Ok((status, body)) => (
                StatusCode::BAD_GATEWAY,
                format!("{banner}upstream {} answered {status}: {body}", self.url),
            ),
            Err(e) => (
                StatusCode::BAD_GATEWAY,
                format!("{banner}upstream {} failed: {e}\n", self.url),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::from_hosts;

    #[test]
    fn names_are_found_in_a_hosts_file() {
        let hosts = "127.0.0.1 localhost\n# comment api\n172.17.0.1\tapi redis # aliases\n";
        assert_eq!(from_hosts(hosts, "api"), Some([172, 17, 0, 1].into()));
        assert_eq!(from_hosts(hosts, "REDIS"), Some([172, 17, 0, 1].into()));
        assert_eq!(from_hosts(hosts, "web"), None);
    }
}
