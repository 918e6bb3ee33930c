//! `berth demo tcp`: a line echo server for TCP load balancing tests. Each connection first gets
//! one line naming the task and the client as the server sees it: the address in a PROXY protocol
//! v2 header when the connection starts with one (`client=IP:PORT proxy=v2`), else the socket's
//! peer (`proxy=none`). Then every line received is sent back.

use anyhow::Context;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::signal::unix::{signal, SignalKind};

const SIGNATURE: &[u8; 12] = b"\r\n\r\n\0\r\nQUIT\n";

pub(super) async fn serve(port: u16) -> anyhow::Result<()> {
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let listener = TcpListener::bind(("0.0.0.0", port))
        .await
        .with_context(|| format!("cannot listen on 0.0.0.0:{port}"))?;
    println!("berth-demo tcp echo listening on 0.0.0.0:{port}");
    let task = std::env::var("BERTH_TASK_ARN").unwrap_or_else(|_| "-".into());
    loop {
        let (stream, peer) = tokio::select! {
            _ = term.recv() => std::process::exit(0),
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(_) => {
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let task = task.clone();
        tokio::spawn(async move {
            let _ = echo(stream, peer, &task).await;
        });
    }
}

async fn echo(mut stream: TcpStream, peer: std::net::SocketAddr, task: &str) -> anyhow::Result<()> {
    // A PROXY v2 header arrives before anything the client sends; a bare client (a health check
    // that only connects, or a direct test) may send nothing, so wait only briefly for one.
    let mut head = [0u8; 16];
    let mut got = 0;
    let deadline = tokio::time::sleep(std::time::Duration::from_millis(300));
    tokio::pin!(deadline);
    while got < head.len() {
        tokio::select! {
            n = stream.read(&mut head[got..]) => match n? {
                0 => return Ok(()),
                n => got += n,
            },
            _ = &mut deadline => break,
        }
        if head[..got] != SIGNATURE[..got.min(12)] {
            break;
        }
    }
    let mut pending = Vec::new();
    let line = if got == 16 && head[..12] == *SIGNATURE {
        let len = u16::from_be_bytes([head[14], head[15]]) as usize;
        let mut addr = vec![0u8; len];
        stream.read_exact(&mut addr).await?;
        let client = match head[13] {
            0x11 if len >= 12 => format!(
                "{}:{}",
                std::net::Ipv4Addr::new(addr[0], addr[1], addr[2], addr[3]),
                u16::from_be_bytes([addr[8], addr[9]])
            ),
            0x21 if len >= 36 => {
                let mut ip = [0u8; 16];
                ip.copy_from_slice(&addr[..16]);
                format!(
                    "[{}]:{}",
                    std::net::Ipv6Addr::from(ip),
                    u16::from_be_bytes([addr[32], addr[33]])
                )
            }
            _ => "unknown".into(),
        };
        format!("task={task} client={client} proxy=v2\n")
    } else {
        pending.extend_from_slice(&head[..got]);
        format!("task={task} client={peer} proxy=none\n")
    };
    stream.write_all(line.as_bytes()).await?;
    let (read, mut write) = stream.into_split();
    write.write_all(&pending).await?;
    let mut lines = BufReader::new(read).lines();
    while let Some(l) = lines.next_line().await? {
        write.write_all(format!("{l}\n").as_bytes()).await?;
    }
    Ok(())
}
