//! A small WebDriver client over a plain TCP connection, enough to drive headless Chromium
//! through Debian's `chromedriver`: sessions, navigation, elements, scripts and screenshots.
//! chromedriver and its browsers run in their own process group, killed on drop.

use crate::common::free_port;
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The key a WebDriver element reference is stored under.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A network namespace for the browser with one veth pair to this host and no other route:
/// whatever Chromium tries to send elsewhere fails inside the namespace and never leaves the
/// machine (the workplace forbids outside traffic, and Chromium has background chatter no flag
/// fully silences). Berth listens on the host end, so the browser reaches it there.
pub struct Sandbox {
    ns: String,
    host_veth: String,
    /// This host's address on the pair: where the browser reaches Berth.
    pub host_ip: String,
    /// The browser's address on the pair: where chromedriver listens.
    pub browser_ip: String,
}

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("ip {}: {e} (apt-get install iproute2)", args.join(" ")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

impl Sandbox {
    pub fn new() -> Sandbox {
        let id = std::process::id() % 16_000;
        let (a, b) = (id / 64, (id % 64) * 4);
        let sandbox = Sandbox {
            ns: format!("berth-browser-{id}"),
            host_veth: format!("bbh{id}"),
            host_ip: format!("10.213.{a}.{}", b + 1),
            browser_ip: format!("10.213.{a}.{}", b + 2),
        };
        sandbox.remove();
        let browser_veth = format!("bbn{id}");
        let (ns, host_veth) = (sandbox.ns.as_str(), sandbox.host_veth.as_str());
        let host_cidr = format!("{}/30", sandbox.host_ip);
        let browser_cidr = format!("{}/30", sandbox.browser_ip);
        let steps: [&[&str]; 8] = [
            &["netns", "add", ns],
            &[
                "link",
                "add",
                host_veth,
                "type",
                "veth",
                "peer",
                "name",
                &browser_veth,
            ],
            &["link", "set", &browser_veth, "netns", ns],
            &["addr", "add", &host_cidr, "dev", host_veth],
            &["link", "set", host_veth, "up"],
            &["-n", ns, "addr", "add", &browser_cidr, "dev", &browser_veth],
            &["-n", ns, "link", "set", &browser_veth, "up"],
            &["-n", ns, "link", "set", "lo", "up"],
        ];
        for step in steps {
            if let Err(e) = ip(step) {
                panic!("the browser's network namespace: {e}");
            }
        }
        sandbox
    }

    /// Ends every process left in the namespace, one pid at a time. (Never `kill -9 -PGID`:
    /// procps-ng 4.0.2's kill, Debian 12's, took that for "every process on the machine".)
    fn kill_all(&self) {
        let Ok(out) = Command::new("ip")
            .args(["netns", "pids", &self.ns])
            .output()
        else {
            return;
        };
        let pids = String::from_utf8_lossy(&out.stdout);
        let pids: Vec<&str> = pids
            .split_whitespace()
            .filter(|p| p.parse::<u32>().is_ok_and(|n| n > 1))
            .collect();
        if !pids.is_empty() {
            let _ = Command::new("kill").arg("-9").args(&pids).status();
        }
    }

    fn remove(&self) {
        self.kill_all();
        let _ = ip(&["netns", "del", &self.ns]);
        let _ = ip(&["link", "del", &self.host_veth]);
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        self.remove();
    }
}

pub struct Driver {
    child: Child,
    addr: String,
    port: u16,
    session: String,
    _profile: tempfile::TempDir,
}

/// One HTTP/1.1 exchange with chromedriver: (status, JSON body).
fn exchange(
    addr: &str,
    port: u16,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> std::io::Result<(u16, Value)> {
    let mut s = TcpStream::connect((addr, port))?;
    s.set_read_timeout(Some(Duration::from_secs(90)))?;
    let payload = body.map(Value::to_string).unwrap_or_default();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}:{port}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{payload}",
        payload.len()
    )?;
    // chromedriver keeps the connection open: read the head, then exactly the body.
    let mut raw = Vec::new();
    let mut buf = [0u8; 16384];
    let head_end = loop {
        if let Some(i) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = s.read(&mut buf)?;
        if n == 0 {
            break raw.len();
        }
        raw.extend_from_slice(&buf[..n]);
    };
    let head = String::from_utf8_lossy(&raw[..head_end]).to_string();
    let header = |name: &str| {
        head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_string())
        })
    };
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let chunked = header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked"));
    let length = header("content-length").and_then(|v| v.parse::<usize>().ok());
    loop {
        let got = raw.len() - head_end;
        let done = match length {
            Some(n) => got >= n,
            None if chunked => raw.ends_with(b"0\r\n\r\n"),
            None => false,
        };
        if done {
            break;
        }
        let n = s.read(&mut buf)?;
        if n == 0 {
            break;
        }
        raw.extend_from_slice(&buf[..n]);
    }
    let body = String::from_utf8_lossy(&raw[head_end..]).to_string();
    let body = if chunked { dechunk(&body) } else { body };
    let value = serde_json::from_str(&body).unwrap_or(Value::String(body));
    Ok((status, value))
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].trim_start_matches("\r\n");
    }
    out
}

impl Driver {
    /// Starts chromedriver and a headless Chromium session inside `sandbox`.
    pub fn start(sandbox: &Sandbox) -> Driver {
        let port = free_port();
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &sandbox.ns, "chromedriver"])
            .arg(format!("--port={port}"))
            .arg(format!("--allowed-ips={}", sandbox.host_ip))
            .arg("--allowed-origins=*")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let child = cmd.spawn().unwrap_or_else(|e| {
            panic!("chromedriver cannot start ({e}): apt-get install -y chromium chromium-driver")
        });
        let profile = tempfile::tempdir().unwrap();
        let mut d = Driver {
            child,
            addr: sandbox.browser_ip.clone(),
            port,
            session: String::new(),
            _profile: profile,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match exchange(&d.addr, port, "GET", "/status", None) {
                Ok((200, v)) if v["value"]["ready"] == true => break,
                _ if Instant::now() > deadline => panic!("chromedriver not ready within 30 s"),
                _ => std::thread::sleep(Duration::from_millis(100)),
            }
        }
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                    "--disable-gpu", "--window-size=1400,1500",
                    format!("--user-data-dir={}", d._profile.path().display()),
                    // Tests never touch the internet: no update checks, reports or lookups
                    // of any name (only IP literals are reached), and the sandbox's network
                    // namespace has no route out should anything still try.
                    "--no-first-run", "--no-default-browser-check", "--no-pings",
                    "--disable-background-networking", "--disable-component-update",
                    "--disable-sync", "--disable-default-apps", "--disable-extensions",
                    "--disable-domain-reliability", "--disable-breakpad",
                    "--disable-client-side-phishing-detection", "--metrics-recording-only",
                    "--disable-features=OptimizationHints,MediaRouter,Translate,AutofillServerCommunication,DnsOverHttps",
                    format!("--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE {}", sandbox.host_ip),
                    "--disable-quic",
                ]
            }
        }}});
        let v = d.call("POST", "/session", Some(caps));
        d.session = v["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {v}"))
            .to_string();
        d
    }

    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        self.try_call(method, path, body)
            .unwrap_or_else(|e| panic!("WebDriver {method} {path}: {e}"))
    }

    fn try_call(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, String> {
        let (status, v) = exchange(&self.addr, self.port, method, path, body.as_ref())
            .map_err(|e| e.to_string())?;
        if status != 200 {
            return Err(format!("{status}: {}", v["value"]));
        }
        Ok(v["value"].clone())
    }

    fn session_path(&self, rest: &str) -> String {
        format!("/session/{}{rest}", self.session)
    }

    pub fn goto(&self, url: &str) {
        self.call(
            "POST",
            &self.session_path("/url"),
            Some(json!({ "url": url })),
        );
    }

    /// The first element matching the CSS selector, if any.
    pub fn find(&self, css: &str) -> Option<String> {
        let body = json!({"using": "css selector", "value": css});
        self.try_call("POST", &self.session_path("/element"), Some(body))
            .ok()
            .and_then(|v| v[ELEMENT].as_str().map(String::from))
    }

    /// Waits for the element to appear.
    pub fn wait_find(&self, css: &str, limit: Duration) -> String {
        crate::common::wait_for(limit, &format!("element {css}"), || self.find(css))
    }

    pub fn click(&self, css: &str) {
        let el = self.wait_find(css, Duration::from_secs(20));
        self.call(
            "POST",
            &self.session_path(&format!("/element/{el}/click")),
            Some(json!({})),
        );
    }

    /// Clears the field and types the text into it.
    pub fn type_into(&self, css: &str, text: &str) {
        let el = self.wait_find(css, Duration::from_secs(20));
        self.call(
            "POST",
            &self.session_path(&format!("/element/{el}/clear")),
            Some(json!({})),
        );
        self.call(
            "POST",
            &self.session_path(&format!("/element/{el}/value")),
            Some(json!({ "text": text })),
        );
    }

    /// Runs `script` (a function body; `arguments` holds `args`) and returns its result.
    pub fn script(&self, script: &str, args: Value) -> Value {
        self.call(
            "POST",
            &self.session_path("/execute/sync"),
            Some(json!({"script": script, "args": args})),
        )
    }

    /// The visible text of the first match ("" when there is none).
    pub fn text(&self, css: &str) -> String {
        self.script(
            "const e = document.querySelector(arguments[0]); return e ? e.innerText : '';",
            json!([css]),
        )
        .as_str()
        .unwrap_or_default()
        .to_string()
    }

    /// Saves a PNG of the viewport.
    pub fn screenshot(&self, path: &Path) -> Result<(), String> {
        use base64::Engine;
        let v = self.try_call("GET", &self.session_path("/screenshot"), None)?;
        let png = base64::engine::general_purpose::STANDARD
            .decode(v.as_str().unwrap_or_default())
            .map_err(|e| e.to_string())?;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
        }
        std::fs::write(path, png).map_err(|e| e.to_string())
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let _ = exchange(
                &self.addr,
                self.port,
                "DELETE",
                &self.session_path(""),
                None,
            );
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        // Any browser process left behind is in the sandbox's namespace: `Sandbox` ends them.
    }
}
