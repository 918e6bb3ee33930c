//! HAProxy as the second reference: Debian's package, started in the foreground from a generated
//! config equivalent to nginx's (round robin over the same two backends, keep-alive to clients
//! and to the backends with idle connections shared between clients, the same forwarding headers,
//! no logging), with as many threads as nginx has worker processes; and an HTTPS frontend beside
//! the HTTP one when the bench runs HTTPS (TLS 1.3 only, the bench's certificate, X25519 first).

use anyhow::{bail, Context};
use std::net::SocketAddr;
use std::path::Path;

use super::tls::BenchCert;

pub const HAPROXY: &str = "/usr/sbin/haproxy";

pub async fn start_haproxy(
    dir: &Path,
    workers: usize,
    port: u16,
    https: Option<(u16, &BenchCert)>,
    backends: [SocketAddr; 2],
) -> anyhow::Result<tokio::process::Child> {
    let https_frontend = https.map_or(String::new(), |(port, cert)| {
        format!(
            r#"
frontend bench_https
    bind 127.0.0.1:{port} ssl crt {} ssl-min-ver TLSv1.3 curves X25519:P-256:P-384
    option forwardfor
    http-request set-header X-Forwarded-Proto https
    http-request set-header X-Forwarded-Port %[dst_port]
    default_backend backends
"#,
            cert.combined_file.display()
        )
    });
    let config = format!(
        r#"global
    nbthread {workers}
    maxconn 4096

defaults
    mode http
    option http-keep-alive
    timeout connect 2s
    timeout client 65s
    timeout server 60s
    timeout http-keep-alive 65s
    # Idle backend connections serve any client's next request, as nginx's upstream keepalive.
    http-reuse always

frontend bench
    bind 127.0.0.1:{port}
    # The same forwarding headers Berth's proxy adds.
    option forwardfor
    http-request set-header X-Forwarded-Proto http
    http-request set-header X-Forwarded-Port %[dst_port]
    default_backend backends
{https_frontend}
backend backends
    balance roundrobin
    server b1 {a}
    server b2 {b}
"#,
        a = backends[0],
        b = backends[1],
    );
    let conf = dir.join("haproxy.cfg");
    std::fs::write(&conf, config).with_context(|| format!("writing {}", conf.display()))?;
    let log = dir.join("haproxy.log");
    let stderr =
        std::fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
    let mut child = tokio::process::Command::new(HAPROXY)
        // -db: foreground, no daemon; -f: this config only.
        .arg("-db")
        .arg("-f")
        .arg(&conf)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(stderr)
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {HAPROXY}"))?;
    if let Err(e) = super::wait_until_serving(port, "HAProxy").await {
        stop_haproxy(&mut child).await;
        let log = std::fs::read_to_string(&log).unwrap_or_default();
        bail!("{e}\nHAProxy's output:\n{log}");
    }
    Ok(child)
}

/// SIGUSR1 (soft stop: finish the connections, then exit) to the process we started.
pub async fn stop_haproxy(child: &mut tokio::process::Child) {
    super::stop_with(child, "-USR1").await;
}
