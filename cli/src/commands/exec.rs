//! `berth exec TASK [-i] [-t] -- CMD…`: a command in a running task's container, on whatever
//! node runs it, through the control plane. Output is written as it comes; berth exits with the
//! command's exit status. With `-t` on a terminal, the terminal is raw while the command runs
//! and its size follows this window's.

use crate::client::connect;
use crate::terminal::{self, RawMode};
use berth_proto::v1::tasks_client::TasksClient;
use berth_proto::v1::{ExecInput, ExecStart, TerminalSize};
use std::io::{Read, Write};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

#[derive(Debug, clap::Args)]
pub struct ExecArgs {
    pub task: String,
    #[arg(long, default_value = "")]
    pub cluster: String,
    /// The container (default: the task's first).
    #[arg(long, default_value = "")]
    pub container: String,
    /// Send this stdin to the command (its end ends the command's stdin).
    #[arg(short, long)]
    pub interactive: bool,
    /// Give the command a terminal; with -i on a terminal, keys go to it as typed.
    #[arg(short, long)]
    pub tty: bool,
    /// The command and its arguments, after `--`.
    #[arg(last = true, required = true, value_name = "CMD")]
    pub command: Vec<String>,
}

/// The remote command's non-zero exit status, for `main` to exit with (it prints nothing).
#[derive(Debug)]
pub struct Exited(pub i32);

impl std::fmt::Display for Exited {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the command exited {}", self.0)
    }
}

impl std::error::Error for Exited {}

pub async fn run(args: ExecArgs, server: &str) -> anyhow::Result<()> {
    let raw = args.tty && args.interactive && terminal::stdin_is_terminal();
    let size = args
        .tty
        .then(terminal::size)
        .flatten()
        .map(|(rows, cols)| TerminalSize { rows, cols });
    let (tx, rx) = mpsc::channel::<ExecInput>(64);
    let start = ExecStart {
        cluster: args.cluster,
        task: args.task,
        container: args.container,
        command: args.command,
        tty: args.tty,
        stdin: args.interactive,
        size,
    };
    let _ = tx
        .send(ExecInput {
            start: Some(start),
            ..Default::default()
        })
        .await;
    let mut client = TasksClient::new(connect(server).await?);
    // Errors (no such task, a read-only token, …) come here, before the terminal turns raw.
    let mut output = client
        .exec_task(ReceiverStream::new(rx))
        .await?
        .into_inner();
    let _raw = if raw { Some(RawMode::enter()?) } else { None };
    if args.interactive {
        forward_stdin(tx.clone());
    }
    let mut winch = signal(SignalKind::window_change())?;
    // Raw, the keyboard sends no signals; one from elsewhere must still restore the terminal.
    let mut term = signal(SignalKind::terminate())?;
    let mut hangup = signal(SignalKind::hangup())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    let (mut stdout, mut stderr) = (std::io::stdout(), std::io::stderr());
    let code = loop {
        tokio::select! {
            m = output.message() => {
                let Some(m) = m? else {
                    anyhow::bail!("the exec ended without the command's exit status");
                };
                if !m.stdout.is_empty() {
                    stdout.write_all(&m.stdout)?;
                    stdout.flush()?;
                }
                if !m.stderr.is_empty() {
                    stderr.write_all(&m.stderr)?;
                    stderr.flush()?;
                }
                if let Some(code) = m.exit_code {
                    break code;
                }
            }
            _ = winch.recv() => {
                if let Some((rows, cols)) = terminal::size() {
                    let resize = Some(TerminalSize { rows, cols });
                    let _ = tx.send(ExecInput { resize, ..Default::default() }).await;
                }
            }
            _ = term.recv() => break 143,
            _ = hangup.recv() => break 129,
            _ = interrupt.recv() => break 130,
        }
    };
    if code == 0 {
        Ok(())
    } else {
        Err(Exited(code).into())
    }
}

/// Reads stdin on a thread of its own (a blocking read must not hold the runtime's shutdown),
/// sending what it reads, then its end.
fn forward_stdin(tx: mpsc::Sender<ExecInput>) {
    std::thread::spawn(move || {
        let mut stdin = std::io::stdin();
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            match stdin.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let m = ExecInput {
                        stdin: buf[..n].to_vec(),
                        ..Default::default()
                    };
                    if tx.blocking_send(m).is_err() {
                        return;
                    }
                }
            }
        }
        let _ = tx.blocking_send(ExecInput {
            stdin_closed: true,
            ..Default::default()
        });
    });
}
