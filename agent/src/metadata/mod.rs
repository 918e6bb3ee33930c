//! ECS's task metadata endpoint (v4 and v3), served by the agent to its own tasks. Each
//! container gets URIs with a token only it is told (`ECS_CONTAINER_METADATA_URI_V4`), keyed
//! from a node secret, the task and the container: the token names the container, so a
//! container reads only its own task's metadata, and the same token comes back after an agent
//! restart (adopted containers keep their environment). The same token opens ECS's agent API
//! (`ECS_AGENT_URI`, `protection`): a task reads and sets its own scale-in protection.

mod protection;
mod server;
mod shapes;

pub use server::serve;

use berth_proto::v1::TaskDefinition;
use ring::hmac;
use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;

/// What the endpoint knows of one task, as its runner last published it.
#[derive(Debug, Clone, Default)]
pub struct TaskMeta {
    pub task_arn: String,
    pub cluster: String,
    pub definition: TaskDefinition,
    pub desired_status: String,
    pub known_status: String,
    pub started_at: String,
    /// Docker ids by container name (empty until created).
    pub docker_ids: HashMap<String, String>,
    /// Known status by container name.
    pub container_status: HashMap<String, String>,
}

/// The node's tasks and the tokens that name their containers.
pub struct Registry {
    key: hmac::Key,
    tasks: Mutex<HashMap<String, TaskMeta>>,
    tokens: Mutex<HashMap<String, (String, String)>>,
    /// The agent's address as containers reach it, by Docker network ("host" for host mode).
    endpoints: Mutex<HashMap<String, String>>,
    /// The control plane's connection and this node's id, once welcomed: task protection
    /// requests go there.
    control: Mutex<Option<(tonic::transport::Channel, String)>>,
}

impl Registry {
    /// Keyed from `data_dir/metadata-key` (made once, owner-only).
    pub fn open(data_dir: &Path) -> std::io::Result<Self> {
        let path = data_dir.join("metadata-key");
        let secret = match std::fs::read(&path) {
            Ok(b) if b.len() >= 32 => b,
            _ => {
                let mut b = vec![0u8; 32];
                ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b)
                    .map_err(|_| std::io::Error::other("no system randomness"))?;
                let tmp = data_dir.join("metadata-key.tmp");
                std::fs::write(&tmp, &b)?;
                berth_trust::files::owner_only(data_dir, &["metadata-key.tmp"])?;
                std::fs::rename(tmp, &path)?;
                b
            }
        };
        Ok(Self {
            key: hmac::Key::new(hmac::HMAC_SHA256, &secret),
            tasks: Mutex::default(),
            tokens: Mutex::default(),
            endpoints: Mutex::default(),
            control: Mutex::default(),
        })
    }

    /// The token that names `container` of `task_arn` (also remembered, so it resolves).
    pub fn token(&self, task_arn: &str, container: &str) -> String {
        let tag = hmac::sign(&self.key, format!("{task_arn}\n{container}").as_bytes());
        let token: String = tag.as_ref()[..16]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        lock(&self.tokens).insert(token.clone(), (task_arn.into(), container.into()));
        token
    }

    /// Containers on `network` ("" the engine's default bridge, "host") reach the agent at `addr`.
    pub fn set_endpoint(&self, network: &str, addr: String) {
        lock(&self.endpoints).insert(network.into(), addr);
    }

    /// The connection the agent's session holds, for requests tasks make of the control plane.
    pub fn set_control(&self, channel: tonic::transport::Channel, node_id: String) {
        *lock(&self.control) = Some((channel, node_id));
    }

    fn control(&self) -> Option<(tonic::transport::Channel, String)> {
        lock(&self.control).clone()
    }

    /// The URIs for `container` on `network` (ECS_CONTAINER_METADATA_URI_V4,
    /// ECS_CONTAINER_METADATA_URI, ECS_AGENT_URI), or none when it cannot reach the agent.
    pub fn uris(&self, network: &str, task_arn: &str, container: &str) -> Option<[String; 3]> {
        let addr = lock(&self.endpoints).get(network).cloned()?;
        let token = self.token(task_arn, container);
        Some([
            format!("http://{addr}/v4/{token}"),
            format!("http://{addr}/v3/{token}"),
            format!("http://{addr}/api/{token}"),
        ])
    }

    pub fn update(&self, meta: TaskMeta) {
        lock(&self.tasks).insert(meta.task_arn.clone(), meta);
    }

    /// Forgets a task whose runner has ended.
    pub fn remove(&self, task_arn: &str) {
        lock(&self.tasks).remove(task_arn);
        lock(&self.tokens).retain(|_, (t, _)| t != task_arn);
    }

    /// The task and container a token names.
    fn resolve(&self, token: &str) -> Option<(TaskMeta, String)> {
        let (arn, container) = lock(&self.tokens).get(token).cloned()?;
        let meta = lock(&self.tasks).get(&arn).cloned()?;
        Some((meta, container))
    }
}

impl std::fmt::Debug for Registry {
    // The key stays out of logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("tasks", &lock(&self.tasks).len())
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_stable_per_container_and_differ_between_them() {
        let dir = tempfile::tempdir().unwrap();
        let a = Registry::open(dir.path()).unwrap();
        let t1 = a.token("arn:task/x", "web");
        assert_eq!(t1.len(), 32);
        assert_ne!(t1, a.token("arn:task/x", "side"));
        assert_ne!(t1, a.token("arn:task/y", "web"));
        // Reopened (an agent restart): the same token.
        let b = Registry::open(dir.path()).unwrap();
        assert_eq!(t1, b.token("arn:task/x", "web"));
        a.update(TaskMeta {
            task_arn: "arn:task/x".into(),
            ..Default::default()
        });
        assert_eq!(a.resolve(&t1).unwrap().1, "web");
        assert!(a.resolve("0123").is_none());
        a.remove("arn:task/x");
        assert!(a.resolve(&t1).is_none());
    }
}
