//! nginx as the reference: Debian's package, started from a generated production-style config
//! (worker processes, keep-alive to the upstreams, no access log) in a scratch directory, with
//! an HTTPS server beside the HTTP one when the bench runs HTTPS (TLS 1.3 only, the bench's
//! certificate, X25519 first).

use anyhow::{bail, Context};
use std::net::SocketAddr;
use std::path::Path;

use super::tls::BenchCert;

pub const NGINX: &str = "/usr/sbin/nginx";

pub async fn start_nginx(
    dir: &Path,
    workers: usize,
    port: u16,
    https: Option<(u16, &BenchCert)>,
    backends: [SocketAddr; 2],
) -> anyhow::Result<tokio::process::Child> {
    let d = dir.display();
    // The same forwarding headers Berth's proxy adds, to the same upstreams.
    let location = r#"location / {
            proxy_pass http://backends;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_set_header X-Forwarded-Port $server_port;
        }"#;
    let https_server = https.map_or(String::new(), |(port, cert)| {
        format!(
            r#"
    server {{
        listen 127.0.0.1:{port} ssl;
        ssl_certificate {};
        ssl_certificate_key {};
        ssl_protocols TLSv1.3;
        ssl_ecdh_curve X25519:prime256v1:secp384r1;
        {location}
    }}"#,
            cert.cert_file.display(),
            cert.key_file.display(),
        )
    });
    let config = format!(
        r#"worker_processes {workers};
daemon off;
master_process on;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    keepalive_timeout 65s;
    keepalive_requests 1000000;
    client_body_temp_path {d}/client_body;
    proxy_temp_path {d}/proxy_temp;
    fastcgi_temp_path {d}/fastcgi_temp;
    uwsgi_temp_path {d}/uwsgi_temp;
    scgi_temp_path {d}/scgi_temp;
    upstream backends {{
        server {a};
        server {b};
        keepalive 64;
        keepalive_requests 1000000;
    }}
    server {{
        listen 127.0.0.1:{port};
        {location}
    }}{https_server}
}}
"#,
        a = backends[0],
        b = backends[1],
    );
    let conf = dir.join("nginx.conf");
    std::fs::write(&conf, config).with_context(|| format!("writing {}", conf.display()))?;
    let mut child = tokio::process::Command::new(NGINX)
        .arg("-p")
        .arg(dir)
        .arg("-e")
        .arg(dir.join("error.log"))
        .arg("-c")
        .arg(&conf)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {NGINX}"))?;
    if let Err(e) = super::wait_until_serving(port, "nginx").await {
        stop_nginx(&mut child).await;
        let log = std::fs::read_to_string(dir.join("error.log")).unwrap_or_default();
        bail!("{e}\nnginx's error log:\n{log}");
    }
    Ok(child)
}

/// SIGQUIT (graceful) to the master process we started, which takes its workers with it.
pub async fn stop_nginx(child: &mut tokio::process::Child) {
    super::stop_with(child, "-QUIT").await;
}
