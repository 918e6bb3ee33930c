//! `wrk` (Debian's package) loading a proxy listener in the background, as a user would, and
//! its report read back: requests, failed answers, socket errors.

use std::process::{Child, Command, Stdio};

/// `wrk` in the background; `finish` parses non-2xx responses and socket errors. Killed if
/// dropped unfinished (a failed test).
pub struct Wrk(Option<Child>);

impl Drop for Wrk {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Wrk {
    pub fn start(port: u16, connections: u32, seconds: u32) -> Self {
        Self::start_at(&format!("127.0.0.1:{port}"), connections, seconds)
    }

    /// Loads `http://ADDR/` (HOST:PORT).
    pub fn start_at(addr: &str, connections: u32, seconds: u32) -> Self {
        Self::start_url(&format!("http://{addr}/"), &[], connections, seconds)
    }

    /// Loads `url` (http or https) with extra `-H` headers.
    pub fn start_url(url: &str, headers: &[&str], connections: u32, seconds: u32) -> Self {
        super::setup::tools();
        let child = Command::new("wrk")
            .args(headers.iter().flat_map(|h| ["-H", h]))
            .args([
                "-t",
                "1",
                "-c",
                &connections.to_string(),
                "-d",
                &format!("{seconds}s"),
                "--latency",
            ])
            .arg(url)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("wrk is needed (apt-get install wrk)");
        Wrk(Some(child))
    }

    /// (requests, non-2xx/3xx responses, socket errors), and wrk's report.
    pub fn finish(mut self) -> (u64, u64, u64, String) {
        let child = self.0.take().expect("wrk runs until finished");
        let out = child.wait_with_output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let num = |s: &str| s.trim().trim_end_matches(',').parse::<u64>().unwrap_or(0);
        let requests = text
            .lines()
            .find(|l| l.contains("requests in"))
            .and_then(|l| l.split_whitespace().next())
            .map_or(0, num);
        let non_2xx = text
            .lines()
            .find(|l| l.contains("Non-2xx or 3xx responses:"))
            .and_then(|l| l.rsplit(':').next())
            .map_or(0, num);
        let socket = text
            .lines()
            .find(|l| l.contains("Socket errors:"))
            .map_or(0, |l| {
                l.split(',')
                    .filter_map(|part| part.split_whitespace().last())
                    .map(num)
                    .sum()
            });
        (requests, non_2xx, socket, text)
    }
}
