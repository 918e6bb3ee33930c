//! AWS access keys for the ECS API (`berth token create --aws`): an access key id and a secret
//! access key, which the aws CLI and SDKs sign requests with (SigV4). Verifying a signature
//! needs the secret itself, so unlike bearer tokens it is kept, sealed (ChaCha20-Poly1305) with a
//! key in `DATA/aws-keys.key` (owner-only) and stored as `awskey/ID`; the store alone
//! reveals no secret. Opened keys are mirrored in memory so a check does no IO.

use super::Role;
use crate::state::error::{Error, Result};
use crate::state::State;
use crate::store::Op;
use crate::time;
use berth_trust::files;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, CHACHA20_POLY1305, NONCE_LEN};
use ring::rand::{SecureRandom, SystemRandom};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::Path;
use std::sync::RwLock;

pub const AWS_KEY_FILE: &str = "aws-keys.key";
pub(crate) const PREFIX: &str = "awskey/";

/// A key as it is shown once to its owner.
#[derive(Debug, Clone)]
pub struct AwsKey {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub role: Role,
}

/// What the store holds for a key: the secret only sealed.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Record {
    id: String,
    role: String,
    created_at: String,
    description: String,
    nonce: String,
    sealed: String,
}

pub struct AwsKeys {
    state: State,
    key: LessSafeKey,
    by_id: RwLock<HashMap<String, AwsKey>>,
}

fn err(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Client(format!("AWS keys: {what}: {e}"))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// `len` characters drawn from `alphabet`, uniformly.
fn random_text(rng: &SystemRandom, alphabet: &[u8], len: usize) -> Result<String> {
    let mut out = String::with_capacity(len);
    while out.len() < len {
        let mut b = [0u8; 32];
        rng.fill(&mut b).map_err(|e| err("random", e))?;
        // Rejection sampling keeps every character equally likely.
        let limit = 256 - 256 % alphabet.len();
        for x in b.iter().filter(|x| usize::from(**x) < limit) {
            if out.len() < len {
                out.push(char::from(alphabet[usize::from(*x) % alphabet.len()]));
            }
        }
    }
    Ok(out)
}

/// The sealing key from `DATA/aws-keys.key`, made on the first start.
fn sealing_key(data_dir: &Path, rng: &SystemRandom) -> Result<LessSafeKey> {
    let path = data_dir.join(AWS_KEY_FILE);
    let bytes = match std::fs::read_to_string(&path) {
        Ok(text) => unhex(text.trim())
            .filter(|b| b.len() == 32)
            .ok_or_else(|| err(&path.display().to_string(), "not 64 hex digits"))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut b = vec![0u8; 32];
            rng.fill(&mut b).map_err(|e| err("random", e))?;
            files::write_secret(&path, &format!("{}\n", hex(&b)))
                .map_err(|e| err(&path.display().to_string(), e))?;
            b
        }
        Err(e) => return Err(err(&path.display().to_string(), e)),
    };
    let unbound = UnboundKey::new(&CHACHA20_POLY1305, &bytes).map_err(|e| err("key", e))?;
    Ok(LessSafeKey::new(unbound))
}

impl AwsKeys {
    /// Loads the stored keys and unseals them with the key in `data_dir`.
    pub fn open(state: State, data_dir: &Path) -> Result<Self> {
        let rng = SystemRandom::new();
        let key = sealing_key(data_dir, &rng)?;
        let mut by_id = HashMap::new();
        for (k, bytes) in state.store().scan(PREFIX)? {
            let Ok(r) = serde_json::from_slice::<Record>(&bytes.value) else {
                tracing::warn!(key = %k, "unreadable AWS key record skipped");
                continue;
            };
            match unseal(&key, &r) {
                Some(secret) => {
                    let role = Role::parse(&r.role).unwrap_or(Role::ReadOnly);
                    by_id.insert(
                        r.id.clone(),
                        AwsKey {
                            access_key_id: r.id,
                            secret_access_key: secret,
                            role,
                        },
                    );
                }
                None => {
                    tracing::warn!(id = %r.id, "AWS key does not unseal with DATA/{AWS_KEY_FILE}; skipped")
                }
            }
        }
        Ok(Self {
            state,
            key,
            by_id: RwLock::new(by_id),
        })
    }

    /// A new key, durable before it is returned. The caller shows the secret once.
    pub fn create(&self, role: Role, description: &str) -> Result<AwsKey> {
        let rng = SystemRandom::new();
        let upper = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
        let secret_chars = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let id = format!("AKIA{}", random_text(&rng, upper, 16)?);
        let secret = random_text(&rng, secret_chars, 40)?;
        let mut nonce = [0u8; NONCE_LEN];
        rng.fill(&mut nonce).map_err(|e| err("random", e))?;
        let mut sealed = secret.clone().into_bytes();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(id.as_bytes()),
                &mut sealed,
            )
            .map_err(|e| err("seal", e))?;
        let record = Record {
            id: id.clone(),
            role: role.as_str().into(),
            created_at: time::now(),
            description: description.into(),
            nonce: hex(&nonce),
            sealed: hex(&sealed),
        };
        let bytes = serde_json::to_vec(&record).map_err(|e| err("encode", e))?;
        self.state
            .commit(vec![Op::Put(format!("{PREFIX}{id}"), bytes)])?;
        let key = AwsKey {
            access_key_id: id.clone(),
            secret_access_key: secret,
            role,
        };
        self.by_id
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, key.clone());
        Ok(key)
    }

    /// The key with this access key id, if it is one of ours.
    pub fn get(&self, access_key_id: &str) -> Option<AwsKey> {
        self.by_id
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(access_key_id)
            .cloned()
    }
}

fn unseal(key: &LessSafeKey, r: &Record) -> Option<String> {
    let nonce: [u8; NONCE_LEN] = unhex(&r.nonce)?.try_into().ok()?;
    let mut sealed = unhex(&r.sealed)?;
    let plain = key
        .open_in_place(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(r.id.as_bytes()),
            &mut sealed,
        )
        .ok()?;
    String::from_utf8(plain.to_vec()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::LogStore;
    use std::sync::Arc;

    #[test]
    fn secrets_are_sealed_in_the_store_and_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let state = State::new(Arc::new(LogStore::open(&dir.path().join("s")).unwrap()));
        let keys = AwsKeys::open(state.clone(), dir.path()).unwrap();
        let k = keys.create(Role::ReadOnly, "test").unwrap();
        assert!(k.access_key_id.starts_with("AKIA") && k.access_key_id.len() == 20);
        assert_eq!(k.secret_access_key.len(), 40);
        let raw = state.store().scan(PREFIX).unwrap();
        let text = String::from_utf8_lossy(&raw[0].1.value).into_owned();
        assert!(
            !text.contains(&k.secret_access_key),
            "secret stored in the clear"
        );
        let again = AwsKeys::open(state, dir.path()).unwrap();
        let got = again.get(&k.access_key_id).unwrap();
        assert_eq!(got.secret_access_key, k.secret_access_key);
        assert_eq!(got.role, Role::ReadOnly);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join(AWS_KEY_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "key file readable by others");
    }
}
