//! `berth secret create|list|describe|delete|reveal`: Berth's secret store from the command
//! line. Values are read from a file or stdin (never an argument, which `ps` would show) and only
//! `reveal`, with a read-write token, prints one.

use crate::client::connect;
use crate::output::{self, or_dash, Format, Table};
use anyhow::Context;
use berth_proto::v1::secrets_client::SecretsClient;
use berth_proto::v1::*;
use clap::Subcommand;
use std::path::PathBuf;

#[derive(Debug, Subcommand)]
pub enum SecretCommand {
    /// Store a secret; its value is read from --value-file, or stdin when that is `-`.
    Create {
        name: String,
        #[arg(long)]
        value_file: PathBuf,
        #[arg(long, default_value = "")]
        description: String,
    },
    /// Every secret: name, versions, dates; never a value.
    List,
    /// One secret by name or ARN; never its value.
    Describe { secret: String },
    /// Schedule a secret's deletion (restorable within the window), or delete it now.
    Delete {
        secret: String,
        /// 7-30 days.
        #[arg(long, default_value_t = 30)]
        recovery_window_days: i32,
        #[arg(long)]
        force: bool,
    },
    /// Print a secret's current value (needs a read-write token).
    Reveal { secret: String },
}

fn row(t: &mut Table, s: &SecretSummary) {
    t.row(vec![
        s.name.clone(),
        s.versions.to_string(),
        s.created_date.clone(),
        or_dash(&s.deleted_date),
        s.arn.clone(),
    ]);
}

fn show(fmt: Format, reply: &SecretReply) -> anyhow::Result<()> {
    match fmt {
        Format::Json => output::json(reply),
        Format::Table => {
            let mut t = Table::new(&["NAME", "VERSIONS", "CREATED", "DELETION", "ARN"]);
            if let Some(s) = &reply.secret {
                row(&mut t, s);
            }
            t.print();
            Ok(())
        }
    }
}

pub async fn run(cmd: SecretCommand, server: &str, fmt: Format) -> anyhow::Result<()> {
    // Read the value before connecting, so a missing file is reported as such.
    let value = match &cmd {
        SecretCommand::Create { value_file, .. } if value_file.as_os_str() == "-" => {
            let mut s = String::new();
            std::io::Read::read_to_string(&mut std::io::stdin(), &mut s)
                .context("reading the secret's value from stdin")?;
            Some(s.trim_end_matches('\n').to_string())
        }
        SecretCommand::Create { value_file, .. } => Some(
            std::fs::read_to_string(value_file)
                .with_context(|| format!("cannot read {}", value_file.display()))?
                .trim_end_matches('\n')
                .to_string(),
        ),
        _ => None,
    };
    let mut client = SecretsClient::new(connect(server).await?);
    match cmd {
        SecretCommand::Create {
            name, description, ..
        } => {
            let reply = client
                .create_secret(CreateSecretRequest {
                    name,
                    secret_string: value.unwrap_or_default(),
                    description,
                })
                .await?
                .into_inner();
            show(fmt, &reply)
        }
        SecretCommand::List => {
            let reply = client
                .list_secrets(ListSecretsRequest {})
                .await?
                .into_inner();
            match fmt {
                Format::Json => output::json(&reply),
                Format::Table => {
                    let mut t = Table::new(&["NAME", "VERSIONS", "CREATED", "DELETION", "ARN"]);
                    for s in &reply.secrets {
                        row(&mut t, s);
                    }
                    t.print();
                    Ok(())
                }
            }
        }
        SecretCommand::Describe { secret } => {
            let reply = client
                .describe_secret(SecretRequest { secret_id: secret })
                .await?
                .into_inner();
            show(fmt, &reply)
        }
        SecretCommand::Delete {
            secret,
            recovery_window_days,
            force,
        } => {
            let reply = client
                .delete_secret(DeleteSecretRequest {
                    secret_id: secret,
                    recovery_window_in_days: if force { 0 } else { recovery_window_days },
                    force_delete_without_recovery: force,
                })
                .await?
                .into_inner();
            show(fmt, &reply)
        }
        SecretCommand::Reveal { secret } => {
            let reply = client
                .reveal_secret_value(SecretRequest { secret_id: secret })
                .await?
                .into_inner();
            match fmt {
                Format::Json => output::json(&reply),
                Format::Table => {
                    crate::outln!("{}", reply.secret_string);
                    Ok(())
                }
            }
        }
    }
}
