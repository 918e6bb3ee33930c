//! The flags that bound what clients may hold or ask for — connection hygiene on every listener
//! (nginx's defaults), the largest desired count — and the rules that keep `berth dev` local and
//! a server's HTTP port encrypted.

use super::agent::parse_duration;
use berth_control_plane as cp;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// Connection bounds of an HTTP port (the control plane's, `berth proxy --http`, `berth agent
/// --metrics-addr`).
#[derive(Debug, Clone, clap::Args)]
pub struct HttpLimitArgs {
    /// How long a request's headers (or a TLS handshake) may take from its first byte (nginx's
    /// client_header_timeout).
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub http_header_timeout: Duration,
    /// How long a keep-alive connection may sit with no request and no traffic (nginx's
    /// keepalive_timeout).
    #[arg(long, default_value = "75s", value_parser = parse_duration)]
    pub http_idle_timeout: Duration,
    /// Open connections at most; more are closed as soon as they are accepted.
    #[arg(long, default_value_t = 1024)]
    pub http_max_connections: usize,
    /// The largest request body (nginx's client_max_body_size), e.g. 1m, 512k, 65536.
    #[arg(long, default_value = "1m", value_parser = parse_size)]
    pub http_max_body: usize,
}

impl HttpLimitArgs {
    pub fn limits(&self) -> cp::transport::http::ConnLimits {
        cp::transport::http::ConnLimits {
            header_timeout: self.http_header_timeout,
            idle_timeout: self.http_idle_timeout,
            max_connections: self.http_max_connections.max(1),
            max_body: self.http_max_body,
        }
    }
}

/// Connection bounds of the load balancer's listener ports.
#[derive(Debug, Clone, clap::Args)]
pub struct LbLimitArgs {
    /// How long a client may take to send a request's headers once they have started.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub lb_header_timeout: Duration,
    /// How long a client connection may sit idle between requests.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub lb_idle_timeout: Duration,
    /// Open client connections per listener port at most; more are closed when accepted.
    #[arg(long, default_value_t = 4096)]
    pub lb_max_connections: usize,
}

impl LbLimitArgs {
    pub fn apply(&self, config: &mut berth_proxy::Config) {
        config.header_read_timeout = self.lb_header_timeout;
        config.idle_timeout = self.lb_idle_timeout;
        config.max_connections = self.lb_max_connections.max(1);
    }
}

/// `berth dev` and `berth server`: the bounds, and who may reach the HTTP port.
#[derive(Debug, Clone, clap::Args)]
pub struct ServeLimitArgs {
    #[command(flatten)]
    pub http: HttpLimitArgs,
    #[command(flatten)]
    pub lb: LbLimitArgs,
    /// Open connections on the gRPC port at most (agents, proxies and clients); more are closed
    /// as soon as they are accepted.
    #[arg(long, default_value_t = 4096)]
    pub grpc_max_connections: usize,
    /// The largest desiredCount a service may have (ECS's quota); larger is refused.
    #[arg(long, default_value_t = berth_core::limits::DEFAULT_MAX_DESIRED_COUNT)]
    pub max_desired_count: i32,
    /// server only: serve the HTTP port in plaintext (it uses the gRPC port's certificate
    /// otherwise). Bearer tokens then cross the network readable.
    #[arg(long)]
    pub http_insecure: bool,
    /// dev only: a Host name the HTTP port answers besides loopback names (repeatable).
    #[arg(long = "allow-host")]
    pub allow_hosts: Vec<String>,
}

/// Where dev and server listen, as the checks see it.
pub struct Listening {
    pub grpc: SocketAddr,
    pub http: SocketAddr,
    pub proxy_bind: Option<IpAddr>,
}

impl ServeLimitArgs {
    /// Checks the listen addresses against the mode and fills `config`. `secure`: TLS and
    /// tokens are on (server, or dev with --secure).
    pub fn apply(
        &self,
        dev: bool,
        secure: bool,
        at: &Listening,
        config: &mut cp::Config,
    ) -> anyhow::Result<()> {
        if self.max_desired_count < 1 {
            anyhow::bail!(
                "--max-desired-count {}: must be 1 or more",
                self.max_desired_count
            );
        }
        if dev && !secure {
            let open = [
                ("--listen", Some(at.grpc.ip())),
                ("--http", Some(at.http.ip())),
                ("--proxy-bind", at.proxy_bind),
            ];
            for (flag, ip) in open {
                if let Some(ip) = ip.filter(|ip| !ip.is_loopback()) {
                    anyhow::bail!(
                        "{flag} {ip}: berth dev serves without auth (its API can start host-network tasks), so only on loopback (127.0.0.1); use --secure, or berth server"
                    );
                }
            }
        }
        if !dev && secure && self.http_insecure && !at.http.ip().is_loopback() {
            crate::say!(
                "berth server: WARNING: --http-insecure on {}: bearer tokens and the console cross the network unencrypted",
                at.http
            );
        }
        if !dev && !secure && !at.http.ip().is_loopback() {
            crate::say!(
                "berth server: WARNING: --insecure on --http {}: anyone who reaches this port controls the cluster",
                at.http
            );
        }
        if !dev && !self.allow_hosts.is_empty() {
            anyhow::bail!(
                "--allow-host is for berth dev; berth server answers any Host and checks tokens"
            );
        }
        config.limits.max_desired_count = self.max_desired_count;
        config.grpc_max_connections = self.grpc_max_connections.max(1);
        config.http.limits = self.http.limits();
        config.http.plaintext = self.http_insecure;
        // dev's API is open: only pages of this machine's own names may call it.
        config.http.allowed_hosts = (dev && !secure).then(|| self.allow_hosts.clone());
        Ok(())
    }
}

/// `1m`, `512k`, `64KiB`, `65536`: bytes.
pub fn parse_size(s: &str) -> Result<usize, String> {
    let t = s.trim().to_ascii_lowercase();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: usize = num
        .parse()
        .map_err(|_| format!("{s:?} is not a size like 1m, 512k or 65536"))?;
    let mult = match unit.trim() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1024,
        "m" | "mb" | "mib" => 1024 * 1024,
        "g" | "gb" | "gib" => 1024 * 1024 * 1024,
        _ => return Err(format!("{s:?} is not a size like 1m, 512k or 65536")),
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("{s:?} is too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_size("1m").unwrap(), 1024 * 1024);
        assert_eq!(parse_size("512k").unwrap(), 512 * 1024);
        assert_eq!(parse_size("64KiB").unwrap(), 65536);
        assert_eq!(parse_size("100").unwrap(), 100);
        assert!(parse_size("lots").is_err());
    }
}
