//! `berth operator snapshot save|restore|inspect`: backups of the control plane's store, as
//! Nomad's `operator snapshot` and etcd's `etcdctl snapshot` take them.

use crate::client::connect;
use crate::output::{self, Format};
use anyhow::Context;
use berth_control_plane::store::{self, backup, snapshot_file::SnapshotInfo};
use berth_proto::v1::operator_client::OperatorClient;
use berth_proto::v1::SaveSnapshotRequest;
use std::io::Write;
use std::path::{Path, PathBuf};

#[derive(Debug, clap::Subcommand)]
pub enum OperatorCommand {
    /// Backups of the store: save one from a running server, inspect, restore.
    #[command(subcommand)]
    Snapshot(SnapshotCommand),
}

#[derive(Debug, clap::Subcommand)]
pub enum SnapshotCommand {
    /// A consistent copy of the running server's store (embedded or etcd) to FILE. Needs the
    /// admin token.
    Save { file: PathBuf },
    /// FILE's revision, key count and checksum; fails when it is not whole.
    Inspect { file: PathBuf },
    /// FILE into a new, empty store: --data DIR (embedded), or --etcd URLS (an empty prefix).
    Restore {
        file: PathBuf,
        /// The data directory to start `berth dev`/`berth server` on afterwards.
        #[arg(long, required_unless_present = "etcd", conflicts_with = "etcd")]
        data: Option<PathBuf>,
        /// etcd client URLs, comma-separated.
        #[arg(long, value_delimiter = ',')]
        etcd: Vec<String>,
        #[arg(long, default_value = "/berth/")]
        etcd_prefix: String,
        /// etcd user (its password from BERTH_ETCD_PASSWORD).
        #[arg(long)]
        etcd_user: Option<String>,
        /// The CA etcd's certificate is from (PEM).
        #[arg(long)]
        etcd_cacert: Option<PathBuf>,
    },
}

pub async fn run(cmd: OperatorCommand, server: &str, fmt: Format) -> anyhow::Result<()> {
    let OperatorCommand::Snapshot(cmd) = cmd;
    match cmd {
        SnapshotCommand::Save { file } => save(server, &file, fmt).await,
        SnapshotCommand::Inspect { file } => {
            let info = blocking(move || backup::inspect(&file)).await?;
            show(&info, fmt, None)
        }
        SnapshotCommand::Restore {
            file,
            data,
            etcd,
            etcd_prefix,
            etcd_user,
            etcd_cacert,
        } => {
            let info = match data {
                Some(dir) => {
                    let f = file.clone();
                    let info = blocking(move || backup::restore_embedded(&f, &dir)).await?;
                    eprintln!("restored: start `berth dev` or `berth server` with this --data");
                    info
                }
                None => {
                    let opts = etcd_options(etcd, etcd_prefix, etcd_user, etcd_cacert)?;
                    let f = file.clone();
                    blocking(move || {
                        let etcd = store::EtcdStore::connect(opts)?;
                        backup::restore_etcd(&f, &etcd)
                    })
                    .await?
                }
            };
            show(&info, fmt, Some("restored"))
        }
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, store::StoreError> + Send + 'static,
) -> anyhow::Result<T> {
    Ok(tokio::task::spawn_blocking(f).await??)
}

/// Streams the server's snapshot into FILE.tmp, checks it whole, then moves it into place.
async fn save(server: &str, file: &Path, fmt: Format) -> anyhow::Result<()> {
    let mut client = OperatorClient::new(connect(server).await?).max_decoding_message_size(8 << 20);
    let mut stream = client
        .save_snapshot(SaveSnapshotRequest {})
        .await?
        .into_inner();
    let tmp = file.with_extension("partial");
    let mut out =
        std::fs::File::create(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
    while let Some(chunk) = stream.message().await? {
        out.write_all(&chunk.data)
            .with_context(|| format!("writing {}", tmp.display()))?;
    }
    out.sync_all()?;
    drop(out);
    let t = tmp.clone();
    let info = match blocking(move || backup::inspect(&t)).await {
        Ok(info) => info,
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            return Err(e.context("the snapshot received is not whole; nothing was saved"));
        }
    };
    std::fs::rename(&tmp, file).with_context(|| format!("moving it to {}", file.display()))?;
    show(&info, fmt, Some("saved"))
}

fn show(info: &SnapshotInfo, fmt: Format, done: Option<&str>) -> anyhow::Result<()> {
    if fmt == Format::Json {
        return output::json(info);
    }
    if let Some(done) = done {
        eprintln!("{done}");
    }
    println!("revision: {}", info.revision);
    println!("keys:     {}", info.keys);
    println!("bytes:    {}", info.bytes);
    println!("checksum: {}", info.checksum);
    Ok(())
}

fn etcd_options(
    endpoints: Vec<String>,
    prefix: String,
    user: Option<String>,
    cacert: Option<PathBuf>,
) -> anyhow::Result<store::EtcdOptions> {
    let user = match user {
        Some(u) => Some((
            u,
            std::env::var("BERTH_ETCD_PASSWORD")
                .context("--etcd-user: set its password in BERTH_ETCD_PASSWORD")?,
        )),
        None => None,
    };
    let ca_pem = cacert
        .map(|p| std::fs::read(&p).with_context(|| format!("--etcd-cacert {}", p.display())))
        .transpose()?;
    Ok(store::EtcdOptions {
        endpoints,
        prefix,
        user,
        ca_pem,
        identity_pem: None,
        max_txn_ops: store::DEFAULT_MAX_TXN_OPS,
    })
}
