//! The key that seals secret values at rest: 32 random bytes in a file kept outside the store
//! (`--secrets-key-file`; servers sharing an etcd share the file, like Kubernetes' encryption
//! configuration), so a copy of the store alone reveals nothing. AES-256-GCM, a fresh nonce a
//! value, the record's name as associated data (a sealed value moved to another name opens
//! to nothing).

use base64::Engine;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use ring::rand::{SecureRandom, SystemRandom};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

static KEY: OnceLock<LessSafeKey> = OnceLock::new();

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// Where `berth dev` and `berth server` keep the key when no --secrets-key-file is given: beside
/// the data directory (`./berth-data` → `./berth-data.secrets-key`), not in it.
pub fn default_path(data_dir: &Path) -> PathBuf {
    let name = data_dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "berth-data".into());
    data_dir
        .parent()
        .unwrap_or(Path::new("."))
        .join(format!("{name}.secrets-key"))
}

/// Reads the key file, making it (owner-only) when `create` and it does not exist, and makes it
/// the process's sealing key.
pub fn install(path: &Path, create: bool) -> Result<(), String> {
    let shown = path.display();
    let bytes = match std::fs::read_to_string(path) {
        Ok(text) => B64
            .decode(text.trim())
            .map_err(|e| format!("secrets key file {shown}: not base64: {e}"))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && create => {
            let mut k = [0u8; 32];
            SystemRandom::new()
                .fill(&mut k)
                .map_err(|_| "no randomness for a secrets key".to_string())?;
            write_owner_only(path, &B64.encode(k))
                .map_err(|e| format!("secrets key file {shown}: {e}"))?;
            k.to_vec()
        }
        Err(e) => return Err(format!("secrets key file {shown}: {e}")),
    };
    let unbound = UnboundKey::new(&AES_256_GCM, &bytes).map_err(|_| {
        format!(
            "secrets key file {shown}: must hold 32 bytes, base64 (it holds {})",
            bytes.len()
        )
    })?;
    // A second install (tests start servers in one process) keeps the first key.
    let _ = KEY.set(LessSafeKey::new(unbound));
    Ok(())
}

fn write_owner_only(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()
}

fn key() -> Result<&'static LessSafeKey, String> {
    KEY.get()
        .ok_or_else(|| "this server has no secrets key (--secrets-key-file)".to_string())
}

/// `value` sealed for the record `name`: base64 of nonce and ciphertext.
pub fn seal(name: &str, value: &[u8]) -> Result<String, String> {
    let key = key()?;
    let mut nonce = [0u8; NONCE_LEN];
    SystemRandom::new()
        .fill(&mut nonce)
        .map_err(|_| "no randomness for a nonce".to_string())?;
    let mut buf = value.to_vec();
    key.seal_in_place_append_tag(
        Nonce::assume_unique_for_key(nonce),
        Aad::from(name.as_bytes()),
        &mut buf,
    )
    .map_err(|_| "sealing failed".to_string())?;
    let mut out = nonce.to_vec();
    out.extend(buf);
    Ok(B64.encode(out))
}

/// The value `sealed` holds, if this key sealed it for `name`.
pub fn open(name: &str, sealed: &str) -> Result<Vec<u8>, String> {
    let key = key()?;
    let raw = B64
        .decode(sealed)
        .map_err(|_| "a sealed value is damaged".to_string())?;
    if raw.len() < NONCE_LEN {
        return Err("a sealed value is damaged".into());
    }
    let (nonce, rest) = raw.split_at(NONCE_LEN);
    let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| "bad nonce".to_string())?;
    let mut buf = rest.to_vec();
    let plain = key
        .open_in_place(nonce, Aad::from(name.as_bytes()), &mut buf)
        .map_err(|_| {
            "a sealed value does not open with this server's secrets key (--secrets-key-file)"
                .to_string()
        })?;
    Ok(plain.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_open_only_under_their_name() {
        let dir = tempfile::tempdir().unwrap();
        install(&dir.path().join("k"), true).unwrap();
        let s = seal("db", b"hunter2").unwrap();
        assert!(!s.contains("hunter2"));
        assert_eq!(open("db", &s).unwrap(), b"hunter2");
        assert!(open("other", &s).is_err());
        assert_eq!(
            default_path(Path::new("/srv/berth-data")),
            PathBuf::from("/srv/berth-data.secrets-key")
        );
    }
}
