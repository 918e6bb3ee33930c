//! Berth's own log lines on stderr: text for people (coloured only when stderr is a terminal and
//! `NO_COLOR` is unset) or one JSON object a line for collectors, filtered `RUST_LOG`-style.

use std::io::IsTerminal;
use tracing_subscriber::EnvFilter;

/// How log lines are written (`--log-format`, `BERTH_LOG_FORMAT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// The filter: `BERTH_LOG`, else `RUST_LOG`, else `default` (`info` for servers, `warn` for
/// clients). A filter that does not parse falls back to the default with a warning, so a typo
/// never silences a server.
fn filter(default: &str) -> (EnvFilter, Option<String>) {
    for var in ["BERTH_LOG", "RUST_LOG"] {
        let Ok(value) = std::env::var(var) else {
            continue;
        };
        return match EnvFilter::try_new(&value) {
            Ok(f) => (f, None),
            Err(e) => (
                EnvFilter::new(default),
                Some(format!("{var}={value:?} is not a log filter ({e}); logging at {default}, e.g. {var}=info,berth_control_plane=debug")),
            ),
        };
    }
    (EnvFilter::new(default), None)
}

/// Whether text lines may carry ANSI colour: only on a terminal, and never with `NO_COLOR`.
fn colour() -> bool {
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

pub fn init(format: LogFormat, verbose_default: bool) {
    let _ = FORMAT.set(format);
    let default = if verbose_default { "info" } else { "warn" };
    let (filter, bad) = filter(default);
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.with_ansi(colour()).init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .init(),
    }
    if let Some(message) = bad {
        tracing::warn!("{message}");
    }
}

/// The format chosen at start, for the lines long-running commands print themselves.
static FORMAT: std::sync::OnceLock<LogFormat> = std::sync::OnceLock::new();

/// `eprintln!` for a long-running command's own lines (`berth dev: ready`): as they are in text
/// mode, one JSON object (`timestamp`, `level`, `message`, `target`) with `--log-format json`, so
/// every line of stderr parses. Printed whatever the filter, as the text lines always were.
#[macro_export]
macro_rules! say {
    ($($t:tt)*) => { $crate::logging::say(&format!($($t)*)) };
}

pub fn say(line: &str) {
    if FORMAT.get().copied().unwrap_or_default() == LogFormat::Text {
        eprintln!("{line}");
        return;
    }
    let level = if line.starts_with("error:") {
        "ERROR"
    } else if line.contains("WARNING") || line.contains(": warning:") {
        "WARN"
    } else {
        "INFO"
    };
    let object = serde_json::json!({
        "timestamp": berth_proto::time::rfc3339(berth_proto::time::now_millis()),
        "level": level,
        "message": line,
        "target": "berth",
    });
    eprintln!("{object}");
}
