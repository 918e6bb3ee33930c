//! `berth demo`: the small web server, health probe and exit helper that Berth's self-built
//! image runs, so demos and end-to-end tests need no registry and no other image.

use anyhow::Context;
use clap::{Args, Subcommand};
use http_body_util::{Empty, Full};
use hyper::body::{Bytes, Incoming};
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode, Uri};
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::signal::unix::{signal, SignalKind};

const DEFAULT_PORT: u16 = 80;
const DEFAULT_MESSAGE: &str = "hello from berth-demo";
/// Long enough for hyper to flush the reply to `/admin/exit` before the process goes away.
const EXIT_GRACE: Duration = Duration::from_millis(200);

#[derive(Debug, Subcommand)]
pub enum DemoCommand {
    /// Serve HTTP: `/` names the task and host, `/health` reports health, `/admin/*` flips
    /// health or exits. Env: MESSAGE, FAIL_HEALTH=1, EXIT_AFTER=SECS with EXIT_CODE=N, UPSTREAM=URL
    /// (`/` calls it and answers with its reply, or 502).
    Serve {
        #[arg(long, env = "PORT", default_value_t = DEFAULT_PORT)]
        port: u16,
    },
    /// GET an http:// URL; exit 0 on 2xx/3xx, else print why and exit 1 (a HEALTHCHECK for
    /// images without curl).
    Check {
        url: String,
        /// Seconds for the whole request.
        #[arg(long, default_value_t = 2.0)]
        timeout: f64,
    },
    /// A TCP line echo server that first names the task and the client (from a PROXY protocol
    /// v2 header when one comes), for network load balancer tests.
    Tcp {
        #[arg(long, env = "PORT", default_value_t = 7000)]
        port: u16,
    },
    /// Print `exiting with CODE`, then exit with CODE after `--after` seconds.
    Exit {
        #[arg(allow_negative_numbers = true)]
        code: i32,
        #[arg(long, default_value_t = 0.0)]
        after: f64,
    },
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Without a subcommand, `serve` with its defaults.
    #[command(subcommand)]
    pub command: Option<DemoCommand>,
}

pub async fn run(args: DemoArgs) -> anyhow::Result<()> {
    match args.command {
        Some(DemoCommand::Serve { port }) => serve(port).await,
        Some(DemoCommand::Tcp { port }) => super::demo_tcp::serve(port).await,
        // clap applies `env = "PORT"` only when `serve` is named, so honour it here too.
        None => {
            let port = match std::env::var("PORT") {
                Ok(p) => p
                    .trim()
                    .parse()
                    .with_context(|| format!("PORT={p:?} is not a port number"))?,
                Err(_) => DEFAULT_PORT,
            };
            serve(port).await
        }
        Some(DemoCommand::Check { url, timeout }) => {
            let timeout = seconds(timeout, "--timeout")?;
            match tokio::time::timeout(timeout, check(&url)).await {
                Ok(Ok(status)) => {
                    println!("{url}: {status}");
                    Ok(())
                }
                Ok(Err(e)) => fail(&format!("{url}: {e:#}")),
                Err(_) => fail(&format!("{url}: no answer within {timeout:?}")),
            }
        }
        Some(DemoCommand::Exit { code, after }) => {
            let after = seconds(after, "--after")?;
            say(&format!("exiting with {code}"));
            tokio::time::sleep(after).await;
            std::process::exit(code)
        }
    }
}

fn seconds(secs: f64, flag: &str) -> anyhow::Result<Duration> {
    Duration::try_from_secs_f64(secs)
        .with_context(|| format!("{flag} {secs} is not a number of seconds"))
}

/// Writes one line to stdout now: under Docker stdout is a pipe and the logs must not lag.
fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

fn fail(reason: &str) -> ! {
    eprintln!("unhealthy: {reason}");
    std::process::exit(1)
}

/// What `/` reports, read once: the environment does not change while we run.
struct Identity {
    banner: String,
}

impl Identity {
    fn from_env() -> Self {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let host = var("HOSTNAME")
            .or_else(|| {
                std::fs::read_to_string("/etc/hostname")
                    .ok()
                    .map(|h| h.trim().to_string())
                    .filter(|h| !h.is_empty())
            })
            .unwrap_or_else(|| "-".into());
        let banner = format!(
            "task={} container={} host={} message={}\n",
            var("BERTH_TASK_ARN").as_deref().unwrap_or("-"),
            var("BERTH_CONTAINER_NAME").as_deref().unwrap_or("-"),
            host,
            std::env::var("MESSAGE").unwrap_or_else(|_| DEFAULT_MESSAGE.into()),
        );
        Self { banner }
    }
}

struct State {
    identity: Identity,
    failing: AtomicBool,
    /// ERROR_PERCENT: pages (not /health) answer 500 to this many of every 100 requests.
    error_percent: u64,
    pages_served: std::sync::atomic::AtomicU64,
    /// UPSTREAM: `/` calls it first (`demo_upstream`).
    upstream: Option<super::demo_upstream::Upstream>,
}

async fn serve(port: u16) -> anyhow::Result<()> {
    // As PID 1 in a container SIGTERM's default action is to be ignored, so `docker stop` would
    // wait for SIGKILL. Install the handlers before listening so no early signal is lost.
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;

    if let Ok(after) = std::env::var("EXIT_AFTER") {
        let after = after
            .trim()
            .parse::<f64>()
            .ok()
            .and_then(|s| Duration::try_from_secs_f64(s).ok());
        let after = after.with_context(|| "EXIT_AFTER must be a number of seconds")?;
        let code = match std::env::var("EXIT_CODE") {
            Ok(c) => c
                .trim()
                .parse::<i32>()
                .with_context(|| format!("EXIT_CODE={c:?} is not an integer"))?,
            Err(_) => 0,
        };
        if after.is_zero() {
            say(&format!("berth-demo: EXIT_AFTER=0, exiting with {code}"));
            std::process::exit(code);
        }
        tokio::spawn(async move {
            tokio::time::sleep(after).await;
            say(&format!(
                "berth-demo: EXIT_AFTER elapsed, exiting with {code}"
            ));
            std::process::exit(code);
        });
    }

    let error_percent = match std::env::var("ERROR_PERCENT") {
        Ok(p) => p
            .trim()
            .parse::<u64>()
            .ok()
            .filter(|p| *p <= 100)
            .with_context(|| format!("ERROR_PERCENT={p:?} must be a whole number 0-100"))?,
        Err(_) => 0,
    };
    let state = Arc::new(State {
        identity: Identity::from_env(),
        failing: AtomicBool::new(std::env::var("FAIL_HEALTH").is_ok_and(|v| v.trim() == "1")),
        error_percent,
        pages_served: Default::default(),
        upstream: super::demo_upstream::Upstream::from_env()?,
    });
    let listener = TcpListener::bind(("0.0.0.0", port))
        .await
        .with_context(|| format!("cannot listen on 0.0.0.0:{port}"))?;
    say(&format!("berth-demo listening on 0.0.0.0:{port}"));

    loop {
        let stream = tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Usually out of file descriptors: back off instead of spinning.
                    eprintln!("berth-demo: accept: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let state = state.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let state = state.clone();
                async move {
                    let called = match &state.upstream {
                        Some(up) if req.uri().path() == "/" && req.method() == Method::GET => {
                            Some(up.page(&state.identity.banner).await)
                        }
                        _ => None,
                    };
                    Ok::<_, Infallible>(respond(&req, &state, called))
                }
            });
            // Keep-alive is hyper's default; a client hanging up mid-request is not our error.
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
    say("berth-demo: signal received, exiting");
    std::process::exit(0)
}

/// The answer to `req`; `called`: the answer already made by calling the upstream.
fn respond(
    req: &Request<Incoming>,
    state: &State,
    called: Option<(StatusCode, String)>,
) -> Response<Full<Bytes>> {
    let (status, body) = called.unwrap_or_else(|| route(req, state));
    say(&format!(
        "{} {} {}",
        req.method(),
        req.uri().path(),
        status.as_u16()
    ));
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/plain"),
    );
    resp
}

fn route(req: &Request<Incoming>, state: &State) -> (StatusCode, String) {
    let read = matches!(*req.method(), Method::GET | Method::HEAD);
    let post = *req.method() == Method::POST;
    let page =
        read && !matches!(req.uri().path(), "/health") && !req.uri().path().starts_with("/admin/");
    if page && state.error_percent > 0 {
        let n = state.pages_served.fetch_add(1, Ordering::Relaxed);
        if n % 100 < state.error_percent {
            return (
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("error (ERROR_PERCENT) {}", state.identity.banner),
            );
        }
    }
    match req.uri().path() {
        "/" if read => (StatusCode::OK, state.identity.banner.clone()),
        "/health" if read => {
            if state.failing.load(Ordering::Relaxed) {
                (StatusCode::INTERNAL_SERVER_ERROR, "unhealthy\n".into())
            } else {
                (StatusCode::OK, "ok\n".into())
            }
        }
        "/admin/fail-health" if post => {
            state.failing.store(true, Ordering::Relaxed);
            (StatusCode::OK, "health will now fail\n".into())
        }
        "/admin/heal" if post => {
            state.failing.store(false, Ordering::Relaxed);
            (StatusCode::OK, "health restored\n".into())
        }
        "/admin/exit" if post => {
            let code = req
                .uri()
                .query()
                .unwrap_or("")
                .split('&')
                .find_map(|kv| kv.strip_prefix("code="))
                .map_or(Ok(0), |c| c.parse::<i32>());
            match code {
                Ok(code) => {
                    tokio::spawn(async move {
                        tokio::time::sleep(EXIT_GRACE).await;
                        std::process::exit(code);
                    });
                    (StatusCode::OK, format!("exiting with {code}\n"))
                }
                Err(_) => (StatusCode::BAD_REQUEST, "code must be an integer\n".into()),
            }
        }
        "/" | "/health" | "/admin/fail-health" | "/admin/heal" | "/admin/exit" => (
            StatusCode::METHOD_NOT_ALLOWED,
            "method not allowed\n".into(),
        ),
        // Like a web app behind path rules: any other page answers, naming its path.
        path if read && !path.starts_with("/admin/") => (
            StatusCode::OK,
            format!("path={path} {}", state.identity.banner),
        ),
        _ => (StatusCode::NOT_FOUND, "not found\n".into()),
    }
}

/// One GET over a fresh connection; the status when it is 2xx or 3xx.
pub(super) async fn check(url: &str) -> anyhow::Result<StatusCode> {
    let uri: Uri = url.parse().with_context(|| "not a URL")?;
    if uri.scheme_str() != Some("http") {
        anyhow::bail!("only http:// URLs are supported");
    }
    let host = uri.host().context("the URL has no host")?;
    let port = uri.port_u16().unwrap_or(80);
    // Strip IPv6 brackets, which `connect` does not take.
    let dial = host.trim_start_matches('[').trim_end_matches(']');
    let stream = TcpStream::connect((dial, port)).await.context("connect")?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .context("HTTP handshake")?;
    tokio::spawn(conn);
    let authority = uri.authority().map_or(host, |a| a.as_str());
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let req = Request::get(path)
        .header(hyper::header::HOST, authority)
        .body(Empty::<Bytes>::new())
        .context("building the request")?;
    let status = sender.send_request(req).await.context("request")?.status();
    if status.is_success() || status.is_redirection() {
        Ok(status)
    } else {
        anyhow::bail!("status {status}")
    }
}
