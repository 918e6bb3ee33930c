//! `berth cert revoke node:ID|proxy:ID|NODE` and `berth cert list`: agent and proxy certificates
//! the control plane refuses from now on (`berth node revoke NODE` is the same for a node).

use crate::client::connect;
use crate::output::{self, or_dash, Format, Table};
use berth_proto::v1::certificates_client::CertificatesClient;
use berth_proto::v1::{ListRevokedCertificatesRequest, RevokeCertificateRequest};

#[derive(Debug, clap::Subcommand)]
pub enum CertCommand {
    /// Refuses an agent's or proxy's certificates from the next call on: its open stream ends
    /// and it can neither renew nor join again under that id. Needs the admin token.
    Revoke {
        /// node:ID or proxy:ID (the certificate's name), or a node's id or name.
        identity: String,
        /// Why (kept with the revocation and shown to the refused host).
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// The revoked identities. Needs the admin token.
    List,
}

pub async fn run(cmd: CertCommand, server: &str, fmt: Format) -> anyhow::Result<()> {
    let mut client = CertificatesClient::new(connect(server).await?);
    match cmd {
        CertCommand::Revoke { identity, reason } => {
            let reply = client
                .revoke_certificate(RevokeCertificateRequest { identity, reason })
                .await?
                .into_inner();
            if fmt == Format::Json {
                return output::json(&reply);
            }
            eprintln!(
                "{} revoked at {}: refused from its next call on, its stream closed",
                reply.identity, reply.revoked_at
            );
            Ok(())
        }
        CertCommand::List => {
            let reply = client
                .list_revoked_certificates(ListRevokedCertificatesRequest {})
                .await?
                .into_inner();
            if fmt == Format::Json {
                return output::json(&reply);
            }
            let mut t = Table::new(&["IDENTITY", "REVOKED", "REASON"]);
            for r in &reply.revoked {
                t.row(vec![
                    r.identity.clone(),
                    r.revoked_at.clone(),
                    or_dash(&r.reason),
                ]);
            }
            t.print();
            Ok(())
        }
    }
}
