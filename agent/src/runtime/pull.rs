//! Getting a task's image: the node's pull policy (as ECS_IMAGE_PULL_BEHAVIOR), the registry
//! login from the node's Docker `config.json` (`--registry-auth`, read at each pull so a rotated
//! password needs no restart), and the digest the container runs, for `imageDigest`.

use super::{DockerRuntime, RuntimeError};
use base64::Engine;
use bollard::auth::DockerCredentials;
use bollard::query_parameters::CreateImageOptionsBuilder;
use futures_util::StreamExt;
use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Mutex;

/// When the agent pulls a task's image, as ECS's ECS_IMAGE_PULL_BEHAVIOR.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum PullPolicy {
    /// Pull at every task start; when the pull fails, run the cached image if there is one.
    #[default]
    Default,
    /// Pull at every task start; a failed pull fails the task.
    Always,
    /// Pull the first time this agent needs the image, then use the cached one.
    Once,
    /// Use the cached image when there is one; pull only when there is none.
    PreferCached,
}

impl std::str::FromStr for PullPolicy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "default" => Ok(Self::Default),
            "always" => Ok(Self::Always),
            "once" => Ok(Self::Once),
            "prefer-cached" => Ok(Self::PreferCached),
            _ => Err(format!(
                "{s:?} is not a pull policy: default, always, once or prefer-cached"
            )),
        }
    }
}

/// The node's pull settings.
#[derive(Debug, Default)]
pub struct PullConfig {
    pub policy: PullPolicy,
    /// A Docker `config.json` with `auths` for private registries.
    pub registry_auth: Option<PathBuf>,
    /// Images this agent has pulled (for `once`).
    pulled: Mutex<HashSet<String>>,
}

impl PullConfig {
    pub fn new(policy: PullPolicy, registry_auth: Option<PathBuf>) -> Self {
        Self {
            policy,
            registry_auth,
            pulled: Mutex::default(),
        }
    }
}

/// The registry an image reference names: its first path part when that looks like a host
/// (has a dot or a port, or is localhost), otherwise Docker Hub.
pub fn registry_of(image: &str) -> &str {
    match image.split_once('/') {
        Some((first, _)) if first.contains('.') || first.contains(':') || first == "localhost" => {
            first
        }
        _ => "docker.io",
    }
}

/// The login for `registry` in a Docker config.json (`auths.HOST.auth`, base64 of USER:PASS,
/// or `username` and `password`), if it has one.
fn credentials(text: &str, registry: &str) -> Option<DockerCredentials> {
    let v: serde_json::Value = serde_json::from_str(text).ok()?;
    let auths = v.get("auths")?.as_object()?;
    let host_of = |k: &str| {
        let k = k
            .trim_start_matches("https://")
            .trim_start_matches("http://");
        k.split('/').next().unwrap_or(k).to_string()
    };
    let hub = |h: &str| matches!(h, "docker.io" | "index.docker.io" | "registry-1.docker.io");
    let (_, entry) = auths.iter().find(|(k, _)| {
        let h = host_of(k);
        h == registry || (hub(&h) && hub(registry))
    })?;
    let (username, password) = match entry.get("auth").and_then(|a| a.as_str()) {
        Some(a) => {
            let raw = base64::engine::general_purpose::STANDARD.decode(a).ok()?;
            let s = String::from_utf8(raw).ok()?;
            let (u, p) = s.split_once(':')?;
            (u.to_string(), p.to_string())
        }
        None => (
            entry.get("username")?.as_str()?.to_string(),
            entry.get("password")?.as_str()?.to_string(),
        ),
    };
    Some(DockerCredentials {
        username: Some(username),
        password: Some(password),
        serveraddress: Some(registry.to_string()),
        ..Default::default()
    })
}

impl DockerRuntime {
    /// This runtime with the node's pull policy and registry logins.
    pub fn with_pull(mut self, config: PullConfig) -> Self {
        self.pull = std::sync::Arc::new(config);
        self
    }

    /// Makes `image` present as the node's pull policy says.
    pub(super) async fn ensure_image_now(
        &self,
        image: &str,
        login: Option<(String, String)>,
    ) -> Result<(), RuntimeError> {
        let local = match self.docker.inspect_image(image).await {
            Ok(i) => Some(i),
            Err(e) if super::docker::not_found(&e) => None,
            Err(e) => {
                return Err(RuntimeError::Image {
                    image: image.into(),
                    message: super::docker::message(e),
                })
            }
        };
        // An image built or imported on this node has no registry digest: nothing to pull.
        let from_registry = local
            .as_ref()
            .is_some_and(|i| i.repo_digests.as_ref().is_some_and(|d| !d.is_empty()));
        let pulled_before = self
            .pull
            .pulled
            .lock()
            .map(|p| p.contains(image))
            .unwrap_or(false);
        let cached = local.is_some();
        let skip = match self.pull.policy {
            PullPolicy::Always => false,
            PullPolicy::PreferCached => cached,
            PullPolicy::Once => cached && (pulled_before || !from_registry),
            PullPolicy::Default => cached && !from_registry,
        };
        if skip {
            return Ok(());
        }
        match self.pull_image(image, login).await {
            Ok(()) => {
                if let Ok(mut p) = self.pull.pulled.lock() {
                    p.insert(image.to_string());
                }
                Ok(())
            }
            Err(e) if cached && self.pull.policy == PullPolicy::Default => {
                tracing::warn!(%image, error = %e, "pull failed; running the cached image");
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    async fn pull_image(
        &self,
        image: &str,
        login: Option<(String, String)>,
    ) -> Result<(), RuntimeError> {
        let registry = registry_of(image);
        let creds = match (&self.pull.registry_auth, login) {
            (_, Some((username, password))) => Some(DockerCredentials {
                username: Some(username),
                password: Some(password),
                serveraddress: Some(registry.to_string()),
                ..Default::default()
            }),
            (Some(path), None) => {
                let text = std::fs::read_to_string(path).map_err(|e| RuntimeError::Image {
                    image: image.into(),
                    message: format!("cannot read --registry-auth {}: {e}", path.display()),
                })?;
                credentials(&text, registry)
            }
            (None, None) => None,
        };
        tracing::info!(%image, %registry, "pulling image");
        let opts = CreateImageOptionsBuilder::new().from_image(image).build();
        let mut pull = self.docker.create_image(Some(opts), None, creds);
        while let Some(item) = pull.next().await {
            item.map_err(|e| RuntimeError::Image {
                image: image.into(),
                message: format!(
                    "pull from registry {registry} failed: {}",
                    super::docker::message(e)
                ),
            })?;
        }
        Ok(())
    }

    /// The digest of the image `image` names now (`sha256:…`): its registry digest when it came
    /// from a registry, else its local id.
    pub(super) async fn image_digest_now(&self, image: &str) -> Option<String> {
        let i = self.docker.inspect_image(image).await.ok()?;
        let repo = image.rsplit_once('@').map_or(image, |(r, _)| r);
        let repo = match repo.rsplit_once(':') {
            Some((r, tag)) if !tag.contains('/') => r,
            _ => repo,
        };
        i.repo_digests
            .unwrap_or_default()
            .iter()
            .find_map(|d| {
                d.split_once('@')
                    .filter(|(r, _)| *r == repo)
                    .map(|(_, digest)| digest.to_string())
            })
            .or(i.id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registries_are_named_as_docker_names_them() {
        assert_eq!(registry_of("127.0.0.1:5000/app:v1"), "127.0.0.1:5000");
        assert_eq!(registry_of("ghcr.io/o/app"), "ghcr.io");
        assert_eq!(registry_of("localhost/app"), "localhost");
        assert_eq!(registry_of("library/redis"), "docker.io");
        assert_eq!(registry_of("redis:7"), "docker.io");
    }

    #[test]
    fn logins_are_read_from_a_docker_config() {
        let auth = base64::engine::general_purpose::STANDARD.encode("ann:s3cret");
        let text = format!(
            r#"{{"auths": {{"https://127.0.0.1:5000": {{"auth": "{auth}"}},
                "ghcr.io": {{"username": "bob", "password": "pw"}}}}}}"#
        );
        let c = credentials(&text, "127.0.0.1:5000").unwrap();
        assert_eq!(c.username.as_deref(), Some("ann"));
        assert_eq!(c.password.as_deref(), Some("s3cret"));
        assert_eq!(
            credentials(&text, "ghcr.io").unwrap().username.as_deref(),
            Some("bob")
        );
        assert!(credentials(&text, "docker.io").is_none());
        assert_eq!("once".parse::<PullPolicy>(), Ok(PullPolicy::Once));
        assert!("sometimes".parse::<PullPolicy>().is_err());
    }
}
