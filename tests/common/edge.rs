//! What the edge tests share: small HTTP targets on 127.0.0.1 that echo the request's head,
//! curl over HTTP and HTTPS, and a self-signed certificate imported through `aws acm`.

use super::aws::{aws_for, Creds};
use serde_json::Value;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::Command;
use std::time::Duration;

/// A target: answers every request with its name and the request's header lines, until the
/// test ends.
pub fn backend(name: &'static str) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { continue };
            std::thread::spawn(move || {
                let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
                let mut head = Vec::new();
                let mut buf = [0u8; 4096];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let text = String::from_utf8_lossy(&head).to_ascii_lowercase();
                let body = format!("name={name}\n{text}");
                let reply = format!(
                    "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = s.write_all(reply.as_bytes());
            });
        }
    });
    port
}

/// `curl -si`: status, the head and the body.
pub fn curl(url: &str, headers: &[&str]) -> Option<(u16, String, String)> {
    super::setup::tools();
    let mut cmd = Command::new("curl");
    cmd.args(["-s", "-i", "--max-time", "5"]);
    for h in headers {
        cmd.args(["-H", h]);
    }
    let out = cmd.arg(url).output().expect("run curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (head, body) = text.split_once("\r\n\r\n")?;
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    Some((status, head.to_string(), body.to_string()))
}

/// A self-signed certificate for `host`, imported with `aws acm import-certificate`: its ARN.
pub fn import_self_signed(http: &str, c: &Creds, dir: &std::path::Path, host: &str) -> String {
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec![host.to_string()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let (cert_file, key_file) = (dir.join("edge.cert.pem"), dir.join("edge.key.pem"));
    std::fs::write(&cert_file, cert.pem()).unwrap();
    std::fs::write(&key_file, key.serialize_pem()).unwrap();
    let r = aws_for(
        "acm",
        http,
        c,
        &[
            "import-certificate",
            "--certificate",
            &format!("fileb://{}", cert_file.display()),
            "--private-key",
            &format!("fileb://{}", key_file.display()),
        ],
    );
    assert!(r.ok, "aws acm import-certificate: {}{}", r.stdout, r.stderr);
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    v["CertificateArn"].as_str().unwrap().to_string()
}

/// `curl -si -k` of an https:// URL whose host resolves to 127.0.0.1: status, head and body.
pub fn curl_insecure(url: &str, port: u16, headers: &[&str]) -> Option<(u16, String, String)> {
    let host = url.split("://").nth(1)?.split(':').next()?;
    let resolve = format!("{host}:{port}:127.0.0.1");
    let mut all = vec!["-k", "--resolve", resolve.as_str()];
    for h in headers {
        all.extend(["-H", *h]);
    }
    let mut cmd = Command::new("curl");
    cmd.args(["-s", "-i", "--max-time", "5"]).args(&all);
    let out = cmd.arg(url).output().expect("run curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (head, body) = text.split_once("\r\n\r\n")?;
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    Some((status, head.to_string(), body.to_string()))
}

pub fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}
