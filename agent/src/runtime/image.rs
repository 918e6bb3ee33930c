//! Images built offline with `docker import`: the running `berth` executable and the shared
//! libraries it has loaded become a scratch image, so demos and tests never need a registry.

use bollard::query_parameters::{CreateImageOptionsBuilder, RemoveImageOptions};
use bollard::Docker;
use futures_util::StreamExt;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

/// Where the executable lands in the image, and so the entrypoint.
const EXE_IN_IMAGE: &str = "/berth";
const SOURCE_ENV: &str = "BERTH_IMAGE_SOURCE";
/// The running executable itself: unlike `current_exe()`'s path it still names the binary we
/// are when that file has since been rebuilt or deleted.
const SELF_EXE: &str = "/proc/self/exe";
const PT_INTERP: u32 = 3;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageOutcome {
    Built,
    /// The reference already holds an image of this executable with this command.
    AlreadyCurrent,
}

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("image reference {reference:?}: {reason}")]
    Reference {
        reference: String,
        reason: &'static str,
    },
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: not a 64-bit little-endian ELF file ({reason})")]
    Elf { path: PathBuf, reason: &'static str },
    #[error("archiving {path}: {source}")]
    Archive {
        path: String,
        source: std::io::Error,
    },
    #[error("building the root filesystem: {0}")]
    Builder(String),
    #[error("inspecting image {reference}: {message}")]
    Inspect { reference: String, message: String },
    #[error("importing image {reference}: {message}")]
    Import { reference: String, message: String },
}

/// An image whose root filesystem is this very `berth` executable plus the shared libraries it
/// needs, with `ENTRYPOINT ["/berth"]` and `CMD` = `cmd`. Rebuilt only when the executable (by
/// size, mtime and crate version), `cmd` or `exposed_port` changed.
pub async fn ensure_self_image(
    docker: &Docker,
    reference: &str,
    cmd: &[&str],
    exposed_port: Option<u16>,
) -> Result<ImageOutcome, ImageError> {
    ensure_binary_image(
        docker,
        reference,
        Path::new(SELF_EXE),
        EXE_IN_IMAGE,
        cmd,
        exposed_port,
    )
    .await
}

/// An image of another executable on this host (`etcd` for `berth lab up --ha`), at `in_image`
/// with the shared libraries this process has loaded (the C library and its loader, which is
/// all a Go binary such as etcd needs besides itself).
pub async fn ensure_binary_image(
    docker: &Docker,
    reference: &str,
    exe: &Path,
    in_image: &str,
    cmd: &[&str],
    exposed_port: Option<u16>,
) -> Result<ImageOutcome, ImageError> {
    let (repo, tag) = split_reference(reference)?;
    let exe = exe.to_path_buf();
    let in_image = in_image.to_string();
    let source = format!("{SOURCE_ENV}={}", fingerprint(&exe)?);
    let cmd: Vec<String> = cmd.iter().map(|s| s.to_string()).collect();
    let ports: BTreeSet<String> = exposed_port
        .map(|p| format!("{p}/tcp"))
        .into_iter()
        .collect();

    // The image this build replaces, removed afterwards so rebuilds do not pile up.
    let mut stale = None;
    match docker.inspect_image(reference).await {
        Ok(image) => {
            let config = image.config.unwrap_or_default();
            let current = config.env.unwrap_or_default().contains(&source)
                && config.entrypoint.unwrap_or_default() == [in_image.clone()]
                && config.cmd.unwrap_or_default() == cmd
                && config
                    .exposed_ports
                    .unwrap_or_default()
                    .into_iter()
                    .collect::<BTreeSet<_>>()
                    == ports;
            if current {
                return Ok(ImageOutcome::AlreadyCurrent);
            }
            stale = image.id;
        }
        Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 404, ..
        }) => {}
        Err(e) => {
            return Err(ImageError::Inspect {
                reference: reference.into(),
                message: message(e),
            })
        }
    }

    // Reading and archiving tens of megabytes is blocking work.
    let entry = in_image.clone();
    let archive = tokio::task::spawn_blocking(move || root_fs(&exe, &entry))
        .await
        .map_err(|e| ImageError::Builder(e.to_string()))??;

    let json = |v: &[String]| serde_json::to_string(v).unwrap_or_else(|_| "[]".into());
    let mut changes = vec![
        format!("ENTRYPOINT {}", json(std::slice::from_ref(&in_image))),
        format!("CMD {}", json(&cmd)),
        format!("ENV {source}"),
    ];
    changes.extend(ports.iter().map(|p| format!("EXPOSE {p}")));
    let options = CreateImageOptionsBuilder::default()
        .from_src("-")
        .repo(repo)
        .tag(tag)
        .changes(changes)
        .build();
    let mut progress = docker.create_image(
        Some(options),
        Some(bollard::body_full(archive.into())),
        None,
    );
    while let Some(item) = progress.next().await {
        item.map_err(|e| ImageError::Import {
            reference: reference.into(),
            message: message(e),
        })?;
    }
    tracing::info!(
        image = reference,
        "built an image of this host's executable"
    );
    if let Some(id) = stale {
        // Docker refuses while a container still uses it or another tag names it; then it
        // rightly stays.
        if let Err(e) = docker
            .remove_image(&id, None::<RemoveImageOptions>, None)
            .await
        {
            tracing::debug!(image = %id, error = %message(e), "kept the replaced image");
        }
    }
    Ok(ImageOutcome::Built)
}

fn message(e: bollard::errors::Error) -> String {
    match e {
        bollard::errors::Error::DockerResponseServerError { message, .. } => message,
        bollard::errors::Error::DockerStreamError { error } => error,
        other => other.to_string(),
    }
}

/// `repo[:tag]`, the tag defaulting to `latest`. A colon before the last `/` is a registry port.
fn split_reference(reference: &str) -> Result<(&str, &str), ImageError> {
    let bad = |reason| ImageError::Reference {
        reference: reference.into(),
        reason,
    };
    if reference.contains('@') {
        return Err(bad("a digest cannot name an imported image"));
    }
    let name_start = reference.rfind('/').map_or(0, |i| i + 1);
    let (repo, tag) = match reference[name_start..].rfind(':') {
        Some(i) => (
            &reference[..name_start + i],
            &reference[name_start + i + 1..],
        ),
        None => (reference, "latest"),
    };
    if repo.is_empty() || tag.is_empty() {
        return Err(bad("expected NAME or NAME:TAG"));
    }
    Ok((repo, tag))
}

/// Identifies the executable's build: a rebuilt binary changes size or mtime, a release the version.
fn fingerprint(exe: &Path) -> Result<String, ImageError> {
    let meta = std::fs::metadata(exe).map_err(|source| ImageError::Read {
        path: exe.into(),
        source,
    })?;
    let mtime_ns = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    Ok(format!(
        "{}-{}-{}",
        meta.len(),
        mtime_ns,
        env!("CARGO_PKG_VERSION")
    ))
}

/// The image's root filesystem as an uncompressed tar.
fn root_fs(exe: &Path, in_image: &str) -> Result<Vec<u8>, ImageError> {
    let read = |path: &Path| {
        std::fs::read(path).map_err(|source| ImageError::Read {
            path: path.into(),
            source,
        })
    };
    let exe_bytes = read(exe)?;
    let interpreter = elf_interpreter(&exe_bytes).map_err(|reason| ImageError::Elf {
        path: exe.into(),
        reason,
    })?;

    let maps_path = Path::new("/proc/self/maps");
    let maps = std::fs::read_to_string(maps_path).map_err(|source| ImageError::Read {
        path: maps_path.into(),
        source,
    })?;
    // A static executable has neither an interpreter nor mapped libraries: just itself.
    let mut libraries = mapped_libraries(&maps);
    libraries.extend(interpreter);

    let mut files: BTreeMap<String, (Vec<u8>, u32)> = BTreeMap::new();
    files.insert(in_image.into(), (exe_bytes, 0o755));
    for lib in libraries {
        let path = Path::new(&lib);
        // `read` and `metadata` follow symlinks (the interpreter usually is one): the image
        // holds a plain copy at the path the loader asks for.
        let mode = std::fs::metadata(path).map_err(|source| ImageError::Read {
            path: path.into(),
            source,
        })?;
        files.insert(lib.clone(), (read(path)?, mode_bits(&mode)));
    }

    let mut dirs: BTreeMap<String, u32> =
        [("/tmp".to_string(), 0o1777), ("/etc".to_string(), 0o755)].into();
    for file in files.keys() {
        for dir in Path::new(file).ancestors().skip(1) {
            let dir = dir.to_string_lossy();
            if dir != "/" {
                dirs.entry(dir.into_owned()).or_insert(0o755);
            }
        }
    }

    let mut tar = tar::Builder::new(Vec::new());
    // BTreeMap order puts every directory before its children.
    for (dir, mode) in &dirs {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Directory);
        header.set_mode(*mode);
        header.set_size(0);
        let name = format!("{}/", dir.trim_start_matches('/'));
        tar.append_data(&mut header, &name, std::io::empty())
            .map_err(|source| ImageError::Archive {
                path: dir.clone(),
                source,
            })?;
    }
    for (path, (bytes, mode)) in &files {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Regular);
        header.set_mode(*mode);
        header.set_size(bytes.len() as u64);
        tar.append_data(&mut header, path.trim_start_matches('/'), bytes.as_slice())
            .map_err(|source| ImageError::Archive {
                path: path.clone(),
                source,
            })?;
    }
    tar.into_inner().map_err(|source| ImageError::Archive {
        path: "(end of archive)".into(),
        source,
    })
}

#[cfg(unix)]
fn mode_bits(meta: &std::fs::Metadata) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    meta.permissions().mode() & 0o7777
}

#[cfg(not(unix))]
fn mode_bits(_meta: &std::fs::Metadata) -> u32 {
    0o755
}

/// Absolute paths of the shared objects in a `/proc/PID/maps` listing, each once.
fn mapped_libraries(maps: &str) -> BTreeSet<String> {
    maps.lines()
        .filter_map(|line| {
            // address perms offset dev inode pathname; the pathname may itself hold spaces.
            let mut rest = line;
            for _ in 0..5 {
                rest = rest.trim_start().split_once(' ')?.1;
            }
            // A library replaced on disk since it was loaded: the file now at its path is what a
            // fresh process would load, so take that.
            let path = rest.trim().trim_end_matches(" (deleted)");
            let name = Path::new(path).file_name()?.to_str()?;
            (path.starts_with('/') && name.contains(".so")).then(|| path.to_string())
        })
        .collect()
}

/// The PT_INTERP path of an ELF64 little-endian executable; `None` when it is static.
fn elf_interpreter(elf: &[u8]) -> Result<Option<String>, &'static str> {
    let bytes = |off: usize, len: usize| off.checked_add(len).and_then(|end| elf.get(off..end));
    let u16_at = |off| bytes(off, 2).map(|b| u16::from_le_bytes([b[0], b[1]]));
    let u32_at = |off| {
        bytes(off, 4)
            .and_then(|b| b.try_into().ok())
            .map(u32::from_le_bytes)
    };
    let u64_at = |off| {
        bytes(off, 8)
            .and_then(|b| b.try_into().ok())
            .map(u64::from_le_bytes)
            .and_then(|v| usize::try_from(v).ok())
    };
    const TRUNCATED: &str = "truncated headers";

    if bytes(0, 4) != Some(b"\x7fELF".as_slice()) {
        return Err("no ELF magic");
    }
    if elf.get(4) != Some(&2) || elf.get(5) != Some(&1) {
        return Err("wrong class or byte order");
    }
    let phoff = u64_at(0x20).ok_or(TRUNCATED)?;
    let phentsize = usize::from(u16_at(0x36).ok_or(TRUNCATED)?);
    let phnum = usize::from(u16_at(0x38).ok_or(TRUNCATED)?);
    for i in 0..phnum {
        let ph = i
            .checked_mul(phentsize)
            .and_then(|o| o.checked_add(phoff))
            .ok_or(TRUNCATED)?;
        if u32_at(ph).ok_or(TRUNCATED)? != PT_INTERP {
            continue;
        }
        let offset = u64_at(ph + 8).ok_or(TRUNCATED)?;
        let size = u64_at(ph + 32).ok_or(TRUNCATED)?;
        let raw = bytes(offset, size).ok_or("interpreter path outside the file")?;
        let path = std::str::from_utf8(raw).map_err(|_| "interpreter path is not UTF-8")?;
        let path = path.trim_end_matches('\0');
        if !path.starts_with('/') {
            return Err("interpreter path is not absolute");
        }
        return Ok(Some(path.to_string()));
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_split_into_repo_and_tag() {
        assert_eq!(
            split_reference("berth-demo:latest").ok(),
            Some(("berth-demo", "latest"))
        );
        assert_eq!(
            split_reference("berth-demo").ok(),
            Some(("berth-demo", "latest"))
        );
        assert_eq!(
            split_reference("localhost:5000/a/b").ok(),
            Some(("localhost:5000/a/b", "latest"))
        );
        assert_eq!(
            split_reference("localhost:5000/b:v2").ok(),
            Some(("localhost:5000/b", "v2"))
        );
        assert!(split_reference("b@sha256:00").is_err());
        assert!(split_reference(":v1").is_err());
        assert!(split_reference("b:").is_err());
    }

    #[test]
    fn maps_yield_each_shared_object_once() {
        let maps = "\
5581a000-5581b000 r--p 00000000 08:01 123 /usr/local/bin/berth
7f00-7f01 r--p 00000000 08:01 456    /usr/lib/x86_64-linux-gnu/libc.so.6
7f01-7f02 r-xp 00001000 08:01 456    /usr/lib/x86_64-linux-gnu/libc.so.6
7f02-7f03 rw-p 00000000 00:00 0
7f03-7f04 r--p 00000000 08:01 789    /opt/my libs/libz.so.1 (deleted)
7ffd-7ffe r-xp 00000000 00:00 0      [vdso]
";
        let libs: Vec<_> = mapped_libraries(maps).into_iter().collect();
        assert_eq!(
            libs,
            [
                "/opt/my libs/libz.so.1",
                "/usr/lib/x86_64-linux-gnu/libc.so.6"
            ]
        );
    }

    #[test]
    fn interpreter_is_read_from_program_headers() {
        let Ok(exe) = std::fs::read(SELF_EXE) else {
            return;
        };
        // The test binary is linked like berth; a static build legitimately has none.
        if let Some(interp) = elf_interpreter(&exe).expect("the test binary is ELF64") {
            assert!(interp.contains("ld-"), "unexpected interpreter {interp}");
        }
    }

    #[test]
    fn non_elf_and_truncated_files_are_rejected() {
        assert!(elf_interpreter(b"#!/bin/sh\n").is_err());
        assert!(elf_interpreter(b"\x7fELF\x02\x01\x01").is_err());
        assert!(elf_interpreter(b"\x7fELF").is_err());
    }
}
