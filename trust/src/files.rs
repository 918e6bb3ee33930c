//! Reading and writing trust material. Secrets (keys, tokens) are written owner-only and
//! atomically, so a crash never leaves half a key.

use crate::TrustError;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::io::Write;
use std::path::Path;

pub fn read(path: &Path) -> Result<String, TrustError> {
    std::fs::read_to_string(path).map_err(|source| TrustError::File {
        path: path.to_path_buf(),
        source,
    })
}

fn write(path: &Path, contents: &str, mode: u32) -> Result<(), TrustError> {
    let err = |source| TrustError::File {
        path: path.to_path_buf(),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(err)?;
    }
    let tmp = path.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    let mut f = opts.open(&tmp).map_err(err)?;
    f.write_all(contents.as_bytes()).map_err(err)?;
    f.sync_all().map_err(err)?;
    std::fs::rename(&tmp, path).map_err(err)
}

/// Owner read/write only (0600).
pub fn write_secret(path: &Path, contents: &str) -> Result<(), TrustError> {
    write(path, contents, 0o600)
}

/// Not secret (a certificate), yet owner-only too: it lives among the secrets of a data
/// directory that no one else may read.
pub fn write_public(path: &Path, contents: &str) -> Result<(), TrustError> {
    write(path, contents, 0o600)
}

/// Every certificate in a PEM text, DER.
pub fn pem_certificates(pem: &str) -> Vec<Vec<u8>> {
    CertificateDer::pem_slice_iter(pem.as_bytes())
        .filter_map(Result::ok)
        .map(|c| c.to_vec())
        .collect()
}

pub fn pem_private_key(pem: &str) -> Option<PrivateKeyDer<'static>> {
    PrivateKeyDer::from_pem_slice(pem.as_bytes()).ok()
}

/// Creates `dir` (owner-only, 0700) if missing, and takes every group and other permission off
/// it and off `owned` (the entries Berth keeps there: files, or directories with all they
/// hold): a data directory holds the store (environment values, secrets among them) and keys.
/// Nothing else under `dir` is touched, so a `--data .` never rewrites a user's tree. Symbolic
/// links are left alone.
pub fn owner_only(dir: &Path, owned: &[&str]) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir)?;
    restrict_one(dir)?;
    for name in owned {
        let path = dir.join(name);
        if std::fs::symlink_metadata(&path).is_ok() {
            restrict(&path)?;
        }
    }
    Ok(())
}

#[cfg(unix)]
fn restrict_one(path: &Path) -> std::io::Result<bool> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::symlink_metadata(path)?;
    if meta.file_type().is_symlink() {
        return Ok(false);
    }
    let mode = meta.permissions().mode();
    if mode & 0o077 != 0 {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode & !0o077))?;
    }
    Ok(meta.is_dir())
}

#[cfg(not(unix))]
fn restrict_one(_: &Path) -> std::io::Result<bool> {
    Ok(false)
}

fn restrict(path: &Path) -> std::io::Result<()> {
    if restrict_one(path)? {
        for entry in std::fs::read_dir(path)? {
            restrict(&entry?.path())?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    #[test]
    fn a_data_directory_is_made_owner_only_through_and_through() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("data");
        std::fs::create_dir_all(data.join("store")).unwrap();
        std::fs::write(data.join("store/db"), "x").unwrap();
        for p in [data.clone(), data.join("store")] {
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        std::fs::set_permissions(
            data.join("store/db"),
            std::fs::Permissions::from_mode(0o644),
        )
        .unwrap();
        std::fs::write(data.join("notes.txt"), "the user's").unwrap();
        std::fs::set_permissions(
            data.join("notes.txt"),
            std::fs::Permissions::from_mode(0o644),
        )
        .unwrap();
        owner_only(&data, &["store", "ca.key"]).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&data), 0o700);
        assert_eq!(mode(&data.join("store")), 0o700);
        assert_eq!(mode(&data.join("store/db")), 0o600);
        assert_eq!(
            mode(&data.join("notes.txt")),
            0o644,
            "not Berth's: untouched"
        );
        let fresh = tmp.path().join("fresh/deeper");
        owner_only(&fresh, &[]).unwrap();
        assert_eq!(mode(&fresh), 0o700);
    }
}
