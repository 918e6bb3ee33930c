//! Who may call what. Every gRPC call passes `Authorizer::check` (in
//! `transport::grpc::auth_layer::AuthLayer`) before it reaches a service:
//!
//! - open: gRPC health and reflection, and `Certificates/Join` (the join token is its credential);
//! - a verified peer certificate from the cluster CA that is not revoked (`revoked`):
//!   `berth.agent.v1.AgentSessions/*` (a node's), `berth.v1.Endpoints/*` (a proxy's),
//!   `Certificates/RenewCertificate` (either);
//! - the admin token: `Tokens/*`, `Certificates/RevokeCertificate` and `ListRevokedCertificates`;
//! - a bearer token (`authorization: Bearer berth_…`) for everything else: `Describe*`, `List*`
//!   and `Get*` methods need read-only, `Tokens/*` the admin token, any other method (so any RPC
//!   added later, until it is named here) a read-write token.
//!
//! Another front end that calls the service impls directly (the JSON HTTP API) must call
//! `Authorizer::authorize(&metadata, "/berth.v1.Clusters/CreateCluster")` with the request's
//! metadata (forward `Authorization: Bearer …` as the `authorization` key) before the impl,
//! return the `Status` it gives, and on success insert the returned `Access` into the
//! `tonic::Request`'s extensions (as the gRPC layer does; `Tokens/CreateToken` checks it):
//!
//! ```ignore
//! let access = plane.auth.authorize(req.metadata(), "/berth.v1.Clusters/CreateCluster")?;
//! req.extensions_mut().insert(access);
//! let reply = ClustersApi { state }.create_cluster(req).await?;
//! ```

pub mod aws_keys;
pub mod revoked;
pub mod tokens;
pub mod trust;

pub use aws_keys::{AwsKey, AwsKeys, AWS_KEY_FILE};
pub use tokens::{Refused, Role, Tokens, ADMIN_TOKEN_FILE, JOIN_TOKEN_FILE};

use berth_trust::{PeerIdentity, PeerKind};
use std::path::PathBuf;
use tonic::metadata::MetadataMap;
use tonic::Status;

/// What a method needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    Open,
    Peer(Option<PeerKind>),
    Token(Role),
}

/// What the caller turned out to be; handlers find it in the request's extensions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Access {
    /// Auth is off (`berth dev`, `berth server --insecure`).
    Unchecked,
    Open,
    Token(Role),
    Peer(PeerIdentity),
}

/// The rule for a gRPC path `/package.Service/Method`.
pub fn need(path: &str) -> Need {
    let path = path.strip_prefix('/').unwrap_or(path);
    let (service, method) = path.split_once('/').unwrap_or((path, ""));
    match service {
        "grpc.health.v1.Health"
        | "grpc.reflection.v1.ServerReflection"
        | "grpc.reflection.v1alpha.ServerReflection" => Need::Open,
        "berth.v1.Certificates" if method == "Join" => Need::Open,
        "berth.v1.Certificates" if method.starts_with("Revoke") || method.starts_with("List") => {
            Need::Token(Role::Admin)
        }
        "berth.v1.Certificates" => Need::Peer(None),
        "berth.agent.v1.AgentSessions" => Need::Peer(Some(PeerKind::Node)),
        // Agents watch too, for their DNS resolvers' records (`discovery_only`), and their
        // Service Connect proxies watch and report target health with the node's certificate.
        "berth.v1.Endpoints" if method == "WatchEndpoints" || method == "ReportTargetHealth" => {
            Need::Peer(None)
        }
        "berth.v1.Endpoints" => Need::Peer(Some(PeerKind::Proxy)),
        "berth.v1.Tokens" | "berth.v1.Operator" => Need::Token(Role::Admin),
        _ if ["Describe", "List", "Get"]
            .iter()
            .any(|p| method.starts_with(p)) =>
        {
            Need::Token(Role::ReadOnly)
        }
        _ => Need::Token(Role::ReadWrite),
    }
}

/// The control plane's auth: off, or tokens + the cluster CA's fingerprint.
pub struct Authorizer {
    mode: Mode,
}

enum Mode {
    Off,
    On {
        tokens: Box<Tokens>,
        ca_fingerprint: String,
        admin_token_file: PathBuf,
        aws: Option<Box<AwsKeys>>,
    },
}

/// Why a SigV4-signed request (the ECS API) was refused; the ECS transport names each as AWS does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AwsDenied {
    /// No `Authorization: AWS4-HMAC-SHA256 …` header on a server that needs one.
    Unsigned,
    /// The access key id is not one of this server's.
    UnknownKey(String),
    /// The signature does not verify with the key's secret (or the request is malformed).
    BadSignature(String),
    /// A valid key whose role may not call this operation.
    Forbidden(String),
}

impl Authorizer {
    pub fn off() -> Self {
        Self { mode: Mode::Off }
    }

    pub fn on(tokens: Tokens, ca_fingerprint: String, admin_token_file: PathBuf) -> Self {
        Self {
            mode: Mode::On {
                tokens: Box::new(tokens),
                ca_fingerprint,
                admin_token_file,
                aws: None,
            },
        }
    }

    /// Also verifies SigV4 signatures made with these AWS access keys (the ECS API).
    pub fn with_aws_keys(mut self, keys: AwsKeys) -> Self {
        if let Mode::On { aws, .. } = &mut self.mode {
            *aws = Some(Box::new(keys));
        }
        self
    }

    pub fn aws_keys(&self) -> Option<&AwsKeys> {
        match &self.mode {
            Mode::On { aws, .. } => aws.as_deref(),
            Mode::Off => None,
        }
    }

    /// The check for a SigV4-signed call of `path` (`/ecs.AmazonEC2ContainerServiceV20141113/
    /// ListClusters`): the key must be ours, `verify` must accept its secret, and its role must
    /// cover the method by the same rule as tokens (`need`). With auth off, anything passes
    /// and nothing is verified (`berth dev`).
    pub fn authorize_aws(
        &self,
        access_key_id: Option<&str>,
        verify: impl FnOnce(&str) -> Result<(), String>,
        path: &str,
    ) -> Result<Access, AwsDenied> {
        let Mode::On { aws, .. } = &self.mode else {
            return Ok(Access::Unchecked);
        };
        let Some(id) = access_key_id else {
            return Err(AwsDenied::Unsigned);
        };
        let key = aws
            .as_ref()
            .and_then(|k| k.get(id))
            .ok_or_else(|| AwsDenied::UnknownKey(id.to_string()))?;
        verify(&key.secret_access_key).map_err(AwsDenied::BadSignature)?;
        let needed = match need(path) {
            Need::Token(r) => r,
            // Peer-only and open methods are not reachable with a key.
            _ => Role::Admin,
        };
        if key.role >= needed {
            Ok(Access::Token(key.role))
        } else {
            let method = path.rsplit('/').next().unwrap_or(path);
            Err(AwsDenied::Forbidden(format!(
                "access key {id} is {}: it may call only Describe* and List* operations, not {method}; `berth token create --aws` makes a read-write key",
                key.role.as_str()
            )))
        }
    }

    pub fn enabled(&self) -> bool {
        matches!(self.mode, Mode::On { .. })
    }

    pub fn tokens(&self) -> Option<&Tokens> {
        match &self.mode {
            Mode::On { tokens, .. } => Some(tokens),
            Mode::Off => None,
        }
    }

    /// Whether `presented` is this cluster's join token.
    pub fn verify_join(&self, presented: &str) -> bool {
        match &self.mode {
            Mode::On {
                tokens,
                ca_fingerprint,
                ..
            } => tokens.verify_join(presented, ca_fingerprint),
            Mode::Off => false,
        }
    }

    /// The bearer-token check for `path` (`/berth.v1.Clusters/CreateCluster`), for callers
    /// without a TLS peer (the HTTP API). Methods for agents and proxies are refused here.
    pub fn authorize(&self, metadata: &MetadataMap, path: &str) -> Result<Access, Status> {
        let bearer = metadata.get("authorization").and_then(|v| v.to_str().ok());
        self.check(bearer, None, path)
    }

    /// The whole check: the `authorization` header's value and the verified peer certificate's
    /// identity, if any.
    pub fn check(
        &self,
        authorization: Option<&str>,
        peer: Option<PeerIdentity>,
        path: &str,
    ) -> Result<Access, Status> {
        let Mode::On {
            tokens,
            admin_token_file,
            ..
        } = &self.mode
        else {
            return Ok(Access::Unchecked);
        };
        let method = path.trim_start_matches('/');
        match need(path) {
            Need::Open => Ok(Access::Open),
            Need::Peer(kind) => match peer {
                Some(p) if kind.is_none_or(|k| k == p.kind) => {
                    match revoked::revoked(tokens.state(), &p) {
                        Ok(None) => Ok(Access::Peer(p)),
                        Ok(Some(r)) => Err(revoked::refusal(&r)),
                        Err(e) => Err(Status::unavailable(format!(
                            "cannot check {p}'s certificate against the revocations: {e}"
                        ))),
                    }
                }
                Some(p) => Err(Status::permission_denied(format!(
                    "{method} is for {} certificates; this one is {p}",
                    kind.map_or("agent or proxy", PeerKind::as_str)
                ))),
                None => Err(Status::unauthenticated(format!(
                    "{method} needs a certificate from the cluster CA: start the agent or proxy with --join-token (DATA/join.token on the server)"
                ))),
            },
            Need::Token(needed) => {
                let Some(value) = authorization else {
                    return Err(Status::unauthenticated(format!(
                        "this Berth server needs a token: pass --token or set BERTH_TOKEN (the admin token is in {} on the server; `berth token create` makes more)",
                        admin_token_file.display()
                    )));
                };
                let presented = value
                    .strip_prefix("Bearer ")
                    .or_else(|| value.strip_prefix("bearer "))
                    .unwrap_or("");
                let role = tokens.verify(presented).map_err(|refused| match refused {
                    Refused::Unknown => Status::unauthenticated(format!(
                        "the token is not valid for this server (mistyped, or from another cluster); the admin token is in {} on the server",
                        admin_token_file.display()
                    )),
                    Refused::Revoked { id, at } => Status::unauthenticated(format!(
                        "token {id} was revoked at {at}; ask an admin for a new one (`berth token create`)"
                    )),
                })?;
                if role >= needed {
                    Ok(Access::Token(role))
                } else {
                    Err(Status::permission_denied(match needed {
                        Role::Admin => format!(
                            "{method} needs the admin token (DATA/admin.token on the server); this token is {}",
                            role.as_str()
                        ),
                        _ => format!(
                            "{method} changes state and needs a read-write token (`berth token create`); this token is {}",
                            role.as_str()
                        ),
                    }))
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_map_to_what_they_need() {
        assert_eq!(
            need("/berth.v1.Clusters/ListClusters"),
            Need::Token(Role::ReadOnly)
        );
        assert_eq!(need("/berth.v1.Tasks/GetLogs"), Need::Token(Role::ReadOnly));
        // A command in a container can change anything in it: a write.
        assert_eq!(
            need("/berth.v1.Tasks/ExecTask"),
            Need::Token(Role::ReadWrite)
        );
        assert_eq!(
            need("/berth.agent.v1.AgentSessions/Exec"),
            Need::Peer(Some(PeerKind::Node))
        );
        assert_eq!(
            need("/berth.v1.Clusters/CreateCluster"),
            Need::Token(Role::ReadWrite)
        );
        assert_eq!(
            need("/berth.v1.Stacks/ApplyStack"),
            Need::Token(Role::ReadWrite)
        );
        assert_eq!(
            need("/berth.v1.Tokens/CreateToken"),
            Need::Token(Role::Admin)
        );
        assert_eq!(need("/berth.v1.Certificates/Join"), Need::Open);
        assert_eq!(
            need("/berth.v1.Certificates/RevokeCertificate"),
            Need::Token(Role::Admin)
        );
        assert_eq!(
            need("/berth.v1.Certificates/RenewCertificate"),
            Need::Peer(None)
        );
        assert_eq!(need("/grpc.health.v1.Health/Check"), Need::Open);
        assert_eq!(
            need("/berth.agent.v1.AgentSessions/Session"),
            Need::Peer(Some(PeerKind::Node))
        );
        assert_eq!(need("/berth.v1.Endpoints/WatchEndpoints"), Need::Peer(None));
        // A node's Service Connect proxy reports with the node's certificate.
        assert_eq!(
            need("/berth.v1.Endpoints/ReportTargetHealth"),
            Need::Peer(None)
        );
    }
}
