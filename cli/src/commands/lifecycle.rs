//! How the long-running commands (`dev`, `server`, `agent`, `proxy`) end and hand over: waiting
//! for SIGTERM or Ctrl-C, and starting this binary again, as its own successor, on SIGHUP.

use anyhow::Context;

/// Returns on SIGTERM or Ctrl-C.
pub async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

/// Starts `argv[0] argv[1..]` with this process's stdio, and reaps it in the background.
pub fn start_successor() -> anyhow::Result<u32> {
    let mut args = std::env::args_os();
    let program = args.next().context("no program name in argv")?;
    let mut child = tokio::process::Command::new(&program)
        .args(args)
        .stdin(std::process::Stdio::null())
        .spawn()
        .with_context(|| format!("starting {}", program.to_string_lossy()))?;
    let pid = child.id().context("the new process exited at once")?;
    tokio::spawn(async move {
        if let Ok(status) = child.wait().await {
            if !status.success() {
                crate::say!("berth proxy: the new process {pid} exited: {status}");
            }
        }
    });
    Ok(pid)
}
