//! `berth token create [--read-only] [--aws]`: a new client token (or AWS access key for the ECS
//! API), printed once.

use crate::client::connect;
use crate::output::Format;
use berth_proto::v1::tokens_client::TokensClient;
use berth_proto::v1::CreateTokenRequest;

#[derive(Debug, clap::Subcommand)]
pub enum TokenCommand {
    /// A new token (read-write, or read-only: describe and list only). Needs the admin token.
    Create {
        /// Describe and list only; no changes.
        #[arg(long)]
        read_only: bool,
        /// An AWS access key id and secret access key for the aws CLI and SDKs (the ECS API on
        /// the HTTP port) instead of a bearer token.
        #[arg(long)]
        aws: bool,
        /// What the token is for (kept with its hash on the server).
        #[arg(long, default_value = "")]
        description: String,
    },
}

pub async fn run(cmd: TokenCommand, server: &str, fmt: Format) -> anyhow::Result<()> {
    let TokenCommand::Create {
        read_only,
        aws,
        description,
    } = cmd;
    let mut client = TokensClient::new(connect(server).await?);
    let reply = client
        .create_token(CreateTokenRequest {
            read_only,
            description,
            aws,
        })
        .await?
        .into_inner();
    match fmt {
        Format::Json => println!("{}", serde_json::to_string_pretty(&reply)?),
        Format::Table if aws => {
            eprintln!(
                "created {} AWS access key (the secret is shown once)",
                reply.role
            );
            println!("aws_access_key_id = {}", reply.access_key_id);
            println!("aws_secret_access_key = {}", reply.secret_access_key);
        }
        Format::Table => {
            eprintln!(
                "created {} token {} (shown once: the server keeps only its hash)",
                reply.role, reply.id
            );
            println!("{}", reply.token);
        }
    }
    Ok(())
}
