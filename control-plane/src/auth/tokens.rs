//! Client and join tokens as the control plane keeps them: only the SHA-256 of each secret is
//! stored (sled, `token/ID` and `trust/join`), mirrored in memory so a check does no IO, and
//! compared in constant time. The admin and join tokens are made on the first start and written
//! once, owner-only, to `DATA/admin.token` and `DATA/join.token`.

use crate::error::{Error, Result};
use crate::state::{put, State};
use crate::time;
use berth_proto::v1::AccessToken;
use berth_trust::files;
use berth_trust::token::{constant_time_eq, ClientToken, JoinToken};
use std::collections::HashMap;
use std::path::Path;
use std::sync::RwLock;

pub const ADMIN_TOKEN_FILE: &str = "admin.token";
pub const JOIN_TOKEN_FILE: &str = "join.token";
const JOIN_KEY: &str = "trust/join";
const TOKENS: &str = "token/";

/// What a client token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    ReadOnly,
    ReadWrite,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::ReadOnly => "read-only",
            Role::ReadWrite => "read-write",
            Role::Admin => "admin",
        }
    }

    pub(crate) fn parse(s: &str) -> Option<Self> {
        match s {
            "read-only" => Some(Role::ReadOnly),
            "read-write" => Some(Role::ReadWrite),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
}

pub struct Tokens {
    state: State,
    by_id: RwLock<HashMap<String, AccessToken>>,
    join: RwLock<Option<AccessToken>>,
}

impl Tokens {
    /// Loads the stored hashes; on the first start makes the admin and join tokens and writes
    /// them to `data_dir`.
    pub fn open(state: State, data_dir: &Path, ca_fingerprint: &str) -> Result<Self> {
        let stored: Vec<AccessToken> = state.scan(TOKENS)?;
        let join = state.get::<AccessToken>(JOIN_KEY)?;
        let tokens = Self {
            state,
            by_id: RwLock::new(stored.into_iter().map(|t| (t.id.clone(), t)).collect()),
            join: RwLock::new(join),
        };
        let has_admin = tokens
            .read()
            .values()
            .any(|t| t.role == Role::Admin.as_str());
        if !has_admin {
            let token = ClientToken::generate();
            // The file first: a crash before the record only means a new token next start.
            write_token(&data_dir.join(ADMIN_TOKEN_FILE), &token.reveal())?;
            tokens.store(&token, Role::Admin, "made on the first start")?;
            tracing::info!(id = %token.id, file = %data_dir.join(ADMIN_TOKEN_FILE).display(), "admin token created");
        }
        let join_ok = tokens
            .join
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .is_some();
        if !join_ok {
            let token = JoinToken::generate(ca_fingerprint);
            write_token(&data_dir.join(JOIN_TOKEN_FILE), &token.reveal())?;
            let record = AccessToken {
                id: "join".into(),
                secret_sha256: token.secret_sha256().to_vec(),
                role: "join".into(),
                created_at: time::now(),
                description: "agents and proxies present it once to get a certificate".into(),
            };
            tokens.state.commit(vec![put(JOIN_KEY.into(), &record)])?;
            *tokens.join.write().unwrap_or_else(|p| p.into_inner()) = Some(record);
            tracing::info!(file = %data_dir.join(JOIN_TOKEN_FILE).display(), "join token created");
        }
        Ok(tokens)
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, AccessToken>> {
        self.by_id.read().unwrap_or_else(|p| p.into_inner())
    }

    fn store(&self, token: &ClientToken, role: Role, description: &str) -> Result<()> {
        let record = AccessToken {
            id: token.id.clone(),
            secret_sha256: token.secret_sha256().to_vec(),
            role: role.as_str().into(),
            created_at: time::now(),
            description: description.into(),
        };
        self.state
            .commit(vec![put(format!("{TOKENS}{}", token.id), &record)])?;
        self.by_id
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(token.id.clone(), record);
        Ok(())
    }

    /// A new client token (durable before it is returned). The caller shows it once.
    pub fn create(&self, role: Role, description: &str) -> Result<ClientToken> {
        let token = ClientToken::generate();
        self.store(&token, role, description)?;
        Ok(token)
    }

    /// The role of a presented client token, if it is one of ours.
    pub fn verify(&self, presented: &str) -> Option<Role> {
        let token = ClientToken::parse(presented)?;
        let hash = token.secret_sha256();
        let cached = self.read().get(&token.id).cloned();
        // With several servers a token may have been made on another one: read it once.
        let record = match cached {
            Some(r) => r,
            None => {
                let r = self
                    .state
                    .get::<AccessToken>(&format!("{TOKENS}{}", token.id))
                    .ok()??;
                self.by_id
                    .write()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(token.id.clone(), r.clone());
                r
            }
        };
        constant_time_eq(&hash, &record.secret_sha256)
            .then(|| Role::parse(&record.role))
            .flatten()
    }

    /// Whether a presented join token is this cluster's.
    pub fn verify_join(&self, presented: &str, ca_fingerprint: &str) -> bool {
        let Some(token) = JoinToken::parse(presented) else {
            return false;
        };
        let join = self.join.read().unwrap_or_else(|p| p.into_inner());
        let Some(record) = join.as_ref() else {
            return false;
        };
        let same_ca = constant_time_eq(token.ca_fingerprint.as_bytes(), ca_fingerprint.as_bytes());
        let same_secret = constant_time_eq(&token.secret_sha256(), &record.secret_sha256);
        same_ca & same_secret
    }
}

fn write_token(path: &Path, token: &str) -> Result<()> {
    files::write_secret(path, &format!("{token}\n"))
        .map_err(|e| Error::Client(format!("writing {}: {e}", path.display())))
}
