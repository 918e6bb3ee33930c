//! Where an exec's two halves meet: the API handler that asked an agent for an exec waits here
//! under the exec's id, and the agent's `Exec` call (dialled back for that id) is handed to it.
//! An id is taken once; one never dialled back is forgotten by the handler that made it.

use berth_proto::agent::v1::ExecFrame;
use berth_proto::v1::ExecInput;
use std::collections::HashMap;
use std::sync::Mutex;
use tokio::sync::{mpsc, oneshot};
use tonic::{Status, Streaming};

/// The agent's side of one exec, as its `Exec` call delivered it.
pub struct AgentExec {
    /// Output frames up from the agent.
    pub frames: Streaming<ExecFrame>,
    /// Stdin and resizes down to the agent.
    pub input: mpsc::Sender<Result<ExecInput, Status>>,
}

/// An exec asked of a node's agent, waiting for it to dial back.
pub struct PendingExec {
    pub node_id: String,
    pub deliver: oneshot::Sender<AgentExec>,
}

#[derive(Default)]
pub struct Execs(Mutex<HashMap<String, PendingExec>>);

impl Execs {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, PendingExec>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Execs {
    /// Waits for `node_id`'s agent to dial back with `exec_id`.
    pub fn expect(&self, exec_id: &str, node_id: &str) -> oneshot::Receiver<AgentExec> {
        let (deliver, rx) = oneshot::channel();
        self.lock().insert(
            exec_id.to_string(),
            PendingExec {
                node_id: node_id.to_string(),
                deliver,
            },
        );
        rx
    }

    /// The exec waiting under `exec_id`, taken (an id is good once).
    pub fn take(&self, exec_id: &str) -> Option<PendingExec> {
        self.lock().remove(exec_id)
    }
}
