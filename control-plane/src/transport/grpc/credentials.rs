//! `berth.v1.Certificates` (join with the join token, renew over mutual TLS, revoke) and
//! `berth.v1.Tokens` (create, list, revoke client tokens; the admin token only — `auth::need`
//! enforces who may call).

use crate::model::auth::{revoked, Access, Authorizer, Role, Tokens as TokenStore};
use berth_core::ids::new_id;
use berth_proto::v1::certificates_server::Certificates;
use berth_proto::v1::tokens_server::Tokens;
use berth_proto::v1::*;
use berth_trust::{Ca, PeerIdentity, PeerKind};
use std::sync::Arc;
use std::time::Duration;
use tonic::{Request, Response, Status};

pub struct CertificatesApi {
    pub ca: Arc<Ca>,
    pub auth: Arc<Authorizer>,
    /// How long issued certificates last.
    pub lifetime: Duration,
}

impl CertificatesApi {
    fn issue(&self, csr_pem: &str, who: &PeerIdentity) -> Result<CertificateReply, Status> {
        let issued = self
            .ca
            .sign_csr(csr_pem, who, self.lifetime)
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        Ok(CertificateReply {
            certificate_pem: issued.certificate_pem,
            ca_pem: self.ca.cert_pem().to_string(),
            identity: who.common_name(),
            expires_at_ms: issued.expires_at_ms,
        })
    }
}

/// The token store, for an admin caller on a server with auth.
fn admin<'a, T>(
    auth: &'a Authorizer,
    req: &Request<T>,
    method: &str,
) -> Result<&'a TokenStore, Status> {
    let Some(tokens) = auth.tokens() else {
        return Err(Status::failed_precondition(
            "this server runs without auth (berth dev, or --insecure): it has no tokens or certificates",
        ));
    };
    if req.extensions().get::<Access>() != Some(&Access::Token(Role::Admin)) {
        return Err(Status::permission_denied(format!(
            "{method} needs the admin token (DATA/admin.token on the server)"
        )));
    }
    Ok(tokens)
}

/// Runs a blocking store call with the auth's state.
async fn off_thread<R: Send + 'static>(
    auth: &Arc<Authorizer>,
    f: impl FnOnce(&TokenStore) -> crate::state::error::Result<R> + Send + 'static,
) -> Result<R, Status> {
    let auth = auth.clone();
    tokio::task::spawn_blocking(move || match auth.tokens() {
        Some(t) => f(t).map_err(Status::from),
        None => Err(Status::internal("auth was turned off")),
    })
    .await
    .map_err(|e| Status::internal(format!("store call: {e}")))?
}

fn valid_id(id: &str) -> bool {
    (1..=64).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

#[tonic::async_trait]
impl Certificates for CertificatesApi {
    async fn join(&self, req: Request<JoinRequest>) -> Result<Response<CertificateReply>, Status> {
        let r = req.into_inner();
        if !self.auth.verify_join(&r.join_token) {
            tracing::warn!(kind = %r.kind, "join refused: wrong join token");
            return Err(Status::unauthenticated(
                "joinToken: not this cluster's join token (use DATA/join.token of the server you connect to)",
            ));
        }
        let kind = PeerKind::parse(&r.kind).ok_or_else(|| {
            Status::invalid_argument(format!(
                "kind: {} must be node or proxy",
                crate::state::error::quote(&r.kind)
            ))
        })?;
        let id = if r.requested_id.is_empty() {
            new_id(16)
        } else if valid_id(&r.requested_id) {
            r.requested_id.clone()
        } else {
            return Err(Status::invalid_argument(
                "requestedId: 1-64 letters, digits or '-'",
            ));
        };
        let who = PeerIdentity::new(kind, id);
        let check = who.clone();
        if let Some(r) =
            off_thread(&self.auth, move |t| revoked::revoked(t.state(), &check)).await?
        {
            return Err(revoked::refusal(&r));
        }
        let reply = self.issue(&r.csr_pem, &who)?;
        tracing::info!(identity = %who, "joined: certificate issued");
        Ok(Response::new(reply))
    }

    async fn renew_certificate(
        &self,
        req: Request<RenewCertificateRequest>,
    ) -> Result<Response<CertificateReply>, Status> {
        let Some(who) = req.extensions().get::<PeerIdentity>().cloned() else {
            return Err(Status::unauthenticated(
                "renewing needs the current certificate (mutual TLS)",
            ));
        };
        let reply = self.issue(&req.into_inner().csr_pem, &who)?;
        tracing::info!(identity = %who, "certificate renewed");
        Ok(Response::new(reply))
    }

    async fn revoke_certificate(
        &self,
        req: Request<RevokeCertificateRequest>,
    ) -> Result<Response<RevokedIdentity>, Status> {
        admin(&self.auth, &req, "berth.v1.Certificates/RevokeCertificate")?;
        let r = req.into_inner();
        let done = off_thread(&self.auth, move |t| {
            let who = revoked::resolve(t.state(), r.identity.trim())?;
            revoked::revoke(t.state(), &who, &r.reason)
        })
        .await?;
        tracing::warn!(identity = %done.identity, reason = %done.reason, "certificate revoked");
        Ok(Response::new(done))
    }

    async fn list_revoked_certificates(
        &self,
        req: Request<ListRevokedCertificatesRequest>,
    ) -> Result<Response<ListRevokedCertificatesReply>, Status> {
        admin(
            &self.auth,
            &req,
            "berth.v1.Certificates/ListRevokedCertificates",
        )?;
        let revoked = off_thread(&self.auth, |t| revoked::list(t.state())).await?;
        Ok(Response::new(ListRevokedCertificatesReply { revoked }))
    }
}

pub struct TokensApi {
    pub auth: Arc<Authorizer>,
}

#[tonic::async_trait]
impl Tokens for TokensApi {
    async fn create_token(
        &self,
        req: Request<CreateTokenRequest>,
    ) -> Result<Response<CreateTokenReply>, Status> {
        admin(&self.auth, &req, "berth.v1.Tokens/CreateToken")?;
        let r = req.into_inner();
        let role = if r.read_only {
            Role::ReadOnly
        } else {
            Role::ReadWrite
        };
        let auth = self.auth.clone();
        if r.aws {
            let key = tokio::task::spawn_blocking(move || match auth.aws_keys() {
                Some(k) => k.create(role, &r.description).map_err(Status::from),
                None => Err(Status::internal("AWS keys are not set up on this server")),
            })
            .await
            .map_err(|e| Status::internal(format!("creating the key: {e}")))??;
            tracing::info!(id = %key.access_key_id, role = role.as_str(), "AWS access key created");
            return Ok(Response::new(CreateTokenReply {
                id: key.access_key_id.clone(),
                role: role.as_str().into(),
                access_key_id: key.access_key_id,
                secret_access_key: key.secret_access_key,
                ..Default::default()
            }));
        }
        let token = tokio::task::spawn_blocking(move || match auth.tokens() {
            Some(t) => t.create(role, &r.description).map_err(Status::from),
            None => Err(Status::internal("auth was turned off")),
        })
        .await
        .map_err(|e| Status::internal(format!("creating the token: {e}")))??;
        tracing::info!(id = %token.id, role = role.as_str(), "token created");
        Ok(Response::new(CreateTokenReply {
            token: token.reveal(),
            id: token.id.clone(),
            role: role.as_str().into(),
            ..Default::default()
        }))
    }

    async fn list_tokens(
        &self,
        req: Request<ListTokensRequest>,
    ) -> Result<Response<ListTokensReply>, Status> {
        admin(&self.auth, &req, "berth.v1.Tokens/ListTokens")?;
        let tokens = off_thread(&self.auth, |t| t.list()).await?;
        Ok(Response::new(ListTokensReply { tokens }))
    }

    async fn revoke_token(
        &self,
        req: Request<RevokeTokenRequest>,
    ) -> Result<Response<TokenInfo>, Status> {
        admin(&self.auth, &req, "berth.v1.Tokens/RevokeToken")?;
        let id = req.into_inner().id;
        let done = off_thread(&self.auth, move |t| t.revoke(id.trim())).await?;
        tracing::warn!(id = %done.id, kind = %done.kind, "token revoked");
        Ok(Response::new(done))
    }
}
