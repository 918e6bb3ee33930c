//! `berth token create [--read-only] [--aws]`: a new client token (or AWS access key for the ECS
//! API), printed once; `berth token list` (never a secret) and `berth token revoke ID`.

use crate::client::connect;
use crate::output::{self, or_dash, Format, Table};
use berth_proto::v1::tokens_client::TokensClient;
use berth_proto::v1::{CreateTokenRequest, ListTokensRequest, RevokeTokenRequest, TokenInfo};

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
    /// Every token: id, kind, created, last used, revoked; never a secret. Needs the admin token.
    List,
    /// Refuses the token from its very next call on, on every server. Needs the admin token.
    Revoke {
        /// The token's id (`berth token list`; a token reads berth_ID_SECRET).
        id: String,
    },
}

pub async fn run(cmd: TokenCommand, server: &str, fmt: Format) -> anyhow::Result<()> {
    let mut client = TokensClient::new(connect(server).await?);
    match cmd {
        TokenCommand::Create {
            read_only,
            aws,
            description,
        } => {
            let request = CreateTokenRequest {
                read_only,
                description,
                aws,
            };
            create(&mut client, request, fmt).await
        }
        TokenCommand::List => {
            let reply = client.list_tokens(ListTokensRequest {}).await?.into_inner();
            if fmt == Format::Json {
                return output::json(&reply);
            }
            table(&reply.tokens);
            Ok(())
        }
        TokenCommand::Revoke { id } => {
            let reply = client
                .revoke_token(RevokeTokenRequest { id })
                .await?
                .into_inner();
            if fmt == Format::Json {
                return output::json(&reply);
            }
            eprintln!(
                "token {} ({}) revoked at {}: refused from its next call on",
                reply.id, reply.kind, reply.revoked_at
            );
            Ok(())
        }
    }
}

async fn create(
    client: &mut TokensClient<crate::client::Conn>,
    request: CreateTokenRequest,
    fmt: Format,
) -> anyhow::Result<()> {
    let aws = request.aws;
    let reply = client.create_token(request).await?.into_inner();
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

fn table(tokens: &[TokenInfo]) {
    let mut t = Table::new(&[
        "ID",
        "KIND",
        "CREATED",
        "LAST USED",
        "REVOKED",
        "DESCRIPTION",
    ]);
    for k in tokens {
        t.row(vec![
            k.id.clone(),
            k.kind.clone(),
            or_dash(&k.created_at),
            or_dash(&k.last_used_at),
            or_dash(&k.revoked_at),
            or_dash(&k.description),
        ]);
    }
    t.print();
}
