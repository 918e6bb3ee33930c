//! Headless Chromium through Debian's `chromedriver`, driven with `fantoccini` behind a small
//! blocking face (the test reads as a user's steps): navigation, elements, scripts and
//! screenshots. chromedriver and its browsers run inside the test's network namespace, ended on
//! drop.

use crate::common::free_port;
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{json, Value};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

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
        crate::common::setup::tools();
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
    /// Drives the client's connection; every call blocks on it.
    rt: tokio::runtime::Runtime,
    client: Option<Client>,
    _profile: tempfile::TempDir,
}

/// chromedriver's capabilities for a headless Chromium that reaches only `host_ip`.
fn capabilities(profile: &Path, host_ip: &str) -> serde_json::Map<String, Value> {
    let caps = json!({
        "browserName": "chrome",
        "goog:chromeOptions": {
            "binary": "/usr/bin/chromium",
            "args": [
                "--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                "--disable-gpu", "--window-size=1400,1500",
                format!("--user-data-dir={}", profile.display()),
                // Tests never touch the internet: no update checks, reports or lookups
                // of any name (only IP literals are reached), and the sandbox's network
                // namespace has no route out should anything still try.
                "--no-first-run", "--no-default-browser-check", "--no-pings",
                "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--disable-default-apps", "--disable-extensions",
                "--disable-domain-reliability", "--disable-breakpad",
                "--disable-client-side-phishing-detection", "--metrics-recording-only",
                "--disable-features=OptimizationHints,MediaRouter,Translate,AutofillServerCommunication,DnsOverHttps",
                format!("--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE {host_ip}"),
                "--disable-quic",
            ]
        }
    });
    match caps {
        Value::Object(m) => m,
        _ => unreachable!("a JSON object literal"),
    }
}

impl Driver {
    /// Starts chromedriver and a headless Chromium session inside `sandbox`.
    pub fn start(sandbox: &Sandbox) -> Driver {
        let port = free_port();
        let child = Command::new("ip")
            .args(["netns", "exec", &sandbox.ns, "chromedriver"])
            .arg(format!("--port={port}"))
            .arg(format!("--allowed-ips={}", sandbox.host_ip))
            .arg("--allowed-origins=*")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "chromedriver cannot start ({e}): apt-get install -y chromium chromium-driver"
                )
            });
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("a runtime for the WebDriver client");
        let profile = tempfile::tempdir().unwrap();
        let mut d = Driver {
            child,
            rt,
            client: None,
            _profile: profile,
        };
        let url = format!("http://{}:{port}", sandbox.browser_ip);
        let mut builder = ClientBuilder::new(HttpConnector::new());
        builder.capabilities(capabilities(d._profile.path(), &sandbox.host_ip));
        // chromedriver answers once it listens: until then the session cannot be made.
        let deadline = Instant::now() + Duration::from_secs(30);
        let client = loop {
            match d.rt.block_on(builder.connect(&url)) {
                Ok(c) => break c,
                Err(e) if Instant::now() > deadline => {
                    panic!("no WebDriver session within 30 s: {e}")
                }
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        };
        d.client = Some(client);
        d
    }

    fn client(&self) -> &Client {
        self.client.as_ref().expect("a session, made in start")
    }

    pub fn goto(&self, url: &str) {
        self.rt
            .block_on(self.client().goto(url))
            .unwrap_or_else(|e| panic!("WebDriver goto {url}: {e}"));
    }

    /// The first element matching the CSS selector, if any.
    pub fn find(&self, css: &str) -> Option<fantoccini::elements::Element> {
        self.rt.block_on(self.client().find(Locator::Css(css))).ok()
    }

    /// Waits for the element to appear.
    pub fn wait_find(&self, css: &str, limit: Duration) -> fantoccini::elements::Element {
        crate::common::wait_for(limit, &format!("element {css}"), || self.find(css))
    }

    pub fn click(&self, css: &str) {
        let el = self.wait_find(css, Duration::from_secs(20));
        self.rt
            .block_on(el.click())
            .unwrap_or_else(|e| panic!("WebDriver click {css}: {e}"));
    }

    /// Clears the field and types the text into it.
    pub fn type_into(&self, css: &str, text: &str) {
        let el = self.wait_find(css, Duration::from_secs(20));
        self.rt
            .block_on(async {
                el.clear().await?;
                el.send_keys(text).await
            })
            .unwrap_or_else(|e| panic!("WebDriver typing into {css}: {e}"));
    }

    /// Runs `script` (a function body; `arguments` holds `args`) and returns its result.
    pub fn script(&self, script: &str, args: Value) -> Value {
        let args = match args {
            Value::Array(a) => a,
            other => vec![other],
        };
        self.rt
            .block_on(self.client().execute(script, args))
            .unwrap_or_else(|e| panic!("WebDriver script: {e}"))
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
        let png = self
            .rt
            .block_on(self.client().screenshot())
            .map_err(|e| e.to_string())?;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
        }
        std::fs::write(path, png).map_err(|e| e.to_string())
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        if let Some(client) = self.client.take() {
            // The timer is made inside the runtime: it needs its clock.
            let close =
                async { tokio::time::timeout(Duration::from_secs(10), client.close()).await };
            let _ = self.rt.block_on(close);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        // Any browser process left behind is in the sandbox's namespace: `Sandbox` ends them.
    }
}
