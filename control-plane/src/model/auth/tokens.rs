//! Client and join tokens as the control plane keeps them: only the SHA-256 of each secret is
//! stored (`token/ID` and `trust/join`), compared in constant time. Every check reads the record
//! from the store — no cache — so a revoke takes effect on the very next call, on every server
//! sharing the store. The admin and join tokens are made on the first start and written once,
//! owner-only, to `DATA/admin.token` and `DATA/join.token`.

use crate::state::error::{Error, Result};
use crate::state::{put, State};
use crate::store::Compare;
use crate::time;
use berth_proto::v1::{AccessToken, TokenInfo};
use berth_trust::files;
use berth_trust::token::{constant_time_eq, ClientToken, JoinToken};
use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;

pub const ADMIN_TOKEN_FILE: &str = "admin.token";
pub const JOIN_TOKEN_FILE: &str = "join.token";
const JOIN_KEY: &str = "trust/join";
pub(crate) const TOKENS: &str = "token/";
/// `last_used_at` is written at most this often per token and server.
const USE_RESOLUTION_MS: i64 = 60_000;

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

/// Why a presented token was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// Not a token of this store (mistyped, another cluster's, or unreadable).
    Unknown,
    /// Ours, but revoked at this time.
    Revoked { id: String, at: String },
}

pub struct Tokens {
    state: State,
    /// When this server last wrote each token's `last_used_at` (a throttle, not a cache: the
    /// record itself is read on every check).
    used: Mutex<HashMap<String, i64>>,
}

impl Tokens {
    /// Opens the tokens; on the first start makes the admin and join tokens and writes them to
    /// `data_dir`.
    pub fn open(state: State, data_dir: &Path, ca_fingerprint: &str) -> Result<Self> {
        let tokens = Self {
            state,
            used: Mutex::default(),
        };
        let stored: Vec<AccessToken> = tokens.state.scan(TOKENS)?;
        if !stored.iter().any(|t| t.role == Role::Admin.as_str()) {
            let token = ClientToken::generate();
            // The file first: a crash before the record only means a new token next start.
            write_token(&data_dir.join(ADMIN_TOKEN_FILE), &token.reveal())?;
            tokens.store(&token, Role::Admin, "made on the first start")?;
            tracing::info!(id = %token.id, file = %data_dir.join(ADMIN_TOKEN_FILE).display(), "admin token created");
        }
        if tokens.state.get::<AccessToken>(JOIN_KEY)?.is_none() {
            let token = JoinToken::generate(ca_fingerprint);
            write_token(&data_dir.join(JOIN_TOKEN_FILE), &token.reveal())?;
            let record = AccessToken {
                id: "join".into(),
                secret_sha256: token.secret_sha256().to_vec(),
                role: "join".into(),
                created_at: time::now(),
                description: "agents and proxies present it once to get a certificate".into(),
                ..Default::default()
            };
            tokens.state.commit(vec![put(JOIN_KEY.into(), &record)])?;
            tracing::info!(file = %data_dir.join(JOIN_TOKEN_FILE).display(), "join token created");
        }
        Ok(tokens)
    }

    fn store(&self, token: &ClientToken, role: Role, description: &str) -> Result<()> {
        let record = AccessToken {
            id: token.id.clone(),
            secret_sha256: token.secret_sha256().to_vec(),
            role: role.as_str().into(),
            created_at: time::now(),
            description: description.into(),
            ..Default::default()
        };
        self.state
            .commit(vec![put(format!("{TOKENS}{}", token.id), &record)])
    }

    /// A new client token (durable before it is returned). The caller shows it once.
    pub fn create(&self, role: Role, description: &str) -> Result<ClientToken> {
        let token = ClientToken::generate();
        self.store(&token, role, description)?;
        Ok(token)
    }

    /// The role of a presented client token, read from the store now.
    pub fn verify(&self, presented: &str) -> std::result::Result<Role, Refused> {
        let token = ClientToken::parse(presented).ok_or(Refused::Unknown)?;
        let key = format!("{TOKENS}{}", token.id);
        let (record, revision) = match self.state.get_versioned::<AccessToken>(&key) {
            Ok(Some(found)) => found,
            Ok(None) => return Err(Refused::Unknown),
            Err(e) => {
                tracing::warn!(error = %e, "cannot read a token from the store; refusing it");
                return Err(Refused::Unknown);
            }
        };
        if !constant_time_eq(&token.secret_sha256(), &record.secret_sha256) {
            return Err(Refused::Unknown);
        }
        if !record.revoked_at.is_empty() {
            return Err(Refused::Revoked {
                id: record.id,
                at: record.revoked_at,
            });
        }
        let role = Role::parse(&record.role).ok_or(Refused::Unknown)?;
        self.note_use(key, record, revision);
        Ok(role)
    }

    /// Records `last_used_at`, at most once a minute per token, off the request's path. The
    /// write compares the revision it read, so it can never undo a revoke that came between.
    fn note_use(&self, key: String, mut record: AccessToken, revision: u64) {
        let now = time::now_millis();
        {
            let mut used = self.used.lock().unwrap_or_else(|p| p.into_inner());
            let last = used
                .get(&record.id)
                .copied()
                .unwrap_or_else(|| time::parse_rfc3339(&record.last_used_at).unwrap_or(i64::MIN));
            if now.saturating_sub(last) < USE_RESOLUTION_MS {
                return;
            }
            used.insert(record.id.clone(), now);
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        record.last_used_at = time::rfc3339(now);
        let state = self.state.clone();
        runtime.spawn_blocking(move || {
            let compare = Compare::ModRevision {
                key: key.clone(),
                revision,
            };
            if let Err(e) = state.txn(&[compare], vec![put(key, &record)]) {
                tracing::debug!(error = %e, "cannot record a token's last use");
            }
        });
    }

    /// Every token, the join token first; never a secret or its hash.
    pub fn list(&self) -> Result<Vec<TokenInfo>> {
        let join = self.state.get::<AccessToken>(JOIN_KEY)?;
        let mut stored: Vec<AccessToken> = self.state.scan(TOKENS)?;
        stored.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id)));
        Ok(join.into_iter().chain(stored).map(info).collect())
    }

    /// Revokes client token `id` from the next call on. Revoking one already revoked changes
    /// nothing. The join token and the admin token are refused, naming why.
    pub fn revoke(&self, id: &str) -> Result<TokenInfo> {
        if id == "join" {
            return Err(Error::Client(
                "id: the join token cannot be revoked (agents and proxies would have no way to join); revoke a node's or proxy's certificate with `berth node revoke NODE` or `berth cert revoke proxy:ID`".into(),
            ));
        }
        let key = format!("{TOKENS}{id}");
        self.state.update(|tx| {
            let Some(mut record) = tx.get::<AccessToken>(&key)? else {
                return Err(Error::NotFound {
                    kind: "Token",
                    name: crate::state::error::cut(id),
                    hint: "`berth token list` shows every token's id".into(),
                });
            };
            if record.role == Role::Admin.as_str() {
                return Err(Error::Client(format!(
                    "id: {id} is the admin token, which revoking would leave no one able to make or revoke tokens; revoke the read-write and read-only tokens instead"
                )));
            }
            if !record.revoked_at.is_empty() {
                return Ok((info(record), Vec::new()));
            }
            record.revoked_at = time::now();
            let op = put(key.clone(), &record);
            Ok((info(record), vec![op]))
        })
    }

    /// Whether a presented join token is this cluster's (read from the store now).
    pub fn verify_join(&self, presented: &str, ca_fingerprint: &str) -> bool {
        let Some(token) = JoinToken::parse(presented) else {
            return false;
        };
        let Ok(Some(record)) = self.state.get::<AccessToken>(JOIN_KEY) else {
            return false;
        };
        let same_ca = constant_time_eq(token.ca_fingerprint.as_bytes(), ca_fingerprint.as_bytes());
        let same_secret = constant_time_eq(&token.secret_sha256(), &record.secret_sha256);
        same_ca & same_secret & record.revoked_at.is_empty()
    }

    pub(crate) fn state(&self) -> &State {
        &self.state
    }
}

fn info(t: AccessToken) -> TokenInfo {
    TokenInfo {
        id: t.id,
        kind: t.role,
        description: t.description,
        created_at: t.created_at,
        last_used_at: t.last_used_at,
        revoked_at: t.revoked_at,
    }
}

fn write_token(path: &Path, token: &str) -> Result<()> {
    files::write_secret(path, &format!("{token}\n"))
        .map_err(|e| Error::Client(format!("writing {}: {e}", path.display())))
}
