//! `berth token create [--read-only]`: a new client token, printed once on the last line.

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
        /// What the token is for (kept with its hash on the server).
        #[arg(long, default_value = "")]
        description: String,
    },
}

pub async fn run(cmd: TokenCommand, server: &str, fmt: Format) -> anyhow::Result<()> {
    let TokenCommand::Create {
        read_only,
        description,
    } = cmd;
    let mut client = TokensClient::new(connect(server).await?);
    let reply = client
        .create_token(CreateTokenRequest {
            read_only,
            description,
        })
        .await?
        .into_inner();
    match fmt {
        Format::Json => println!("{}", serde_json::to_string_pretty(&reply)?),
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
