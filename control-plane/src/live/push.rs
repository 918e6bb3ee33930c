//! Which nodes a store change concerns, decided once for all of them: one follower of the
//! change feed maps each changed key to the node it belongs to (a claim key names its node; a
//! task key, the node its claim was seen on) and hands the key to that node's pusher. Each
//! pusher then re-reads only those keys. Before this, every one of N pushers examined every
//! change, N × changes work for what is one lookup per key.

use crate::state::{keys, State};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::Notify;

/// What a node's pusher must re-read: everything, or these keys.
#[derive(Debug, Default)]
pub struct Pending {
    pub full: bool,
    pub keys: HashSet<String>,
}

/// One node pusher's inbox.
#[derive(Debug, Default)]
pub struct Slot {
    notify: Notify,
    pending: Mutex<Pending>,
}

impl Slot {
    fn add(&self, f: impl FnOnce(&mut Pending)) {
        f(&mut self.pending.lock().unwrap_or_else(|p| p.into_inner()));
        self.notify.notify_one();
    }

    /// Asks for a full read (a resync, or a feed that lost its place).
    pub fn mark_full(&self) {
        self.add(|p| p.full = true);
    }

    /// What arrived since the last take.
    pub fn take(&self) -> Pending {
        std::mem::take(&mut self.pending.lock().unwrap_or_else(|p| p.into_inner()))
    }

    pub async fn notified(&self) {
        self.notify.notified().await
    }
}

#[derive(Default)]
struct Inner {
    slots: HashMap<String, Arc<Slot>>,
    /// Task key → the node its claim is on (node ids shared: one copy each, not one a task).
    owner: HashMap<String, Arc<str>>,
    node_ids: HashMap<String, Arc<str>>,
}

impl Inner {
    fn node_id(&mut self, id: &str) -> Arc<str> {
        if let Some(n) = self.node_ids.get(id) {
            return n.clone();
        }
        let n: Arc<str> = id.into();
        self.node_ids.insert(id.to_string(), n.clone());
        n
    }
}

/// The fan-out. Its maps are hints for waking; every pusher still reads the store itself.
#[derive(Clone, Default)]
pub struct Push {
    inner: Arc<Mutex<Inner>>,
}

impl Push {
    /// Starts following the store's changes.
    pub fn spawn(state: State) -> Self {
        let push = Push::default();
        let mut changes = state.store().subscribe();
        let p = push.clone();
        tokio::spawn(async move {
            loop {
                match changes.recv().await {
                    Ok(c) if c.resync => p.all_full(),
                    Ok(c) => p.route(&c.keys),
                    Err(RecvError::Lagged(_)) => p.all_full(),
                    Err(RecvError::Closed) => return,
                }
            }
        });
        push
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A new pusher's slot (it starts with a full read).
    pub fn register(&self, node_id: &str) -> Arc<Slot> {
        let slot = Arc::new(Slot::default());
        slot.mark_full();
        self.lock().slots.insert(node_id.to_string(), slot.clone());
        slot
    }

    pub fn unregister(&self, node_id: &str, slot: &Arc<Slot>) {
        let mut inner = self.lock();
        if inner
            .slots
            .get(node_id)
            .is_some_and(|s| Arc::ptr_eq(s, slot))
        {
            inner.slots.remove(node_id);
        }
    }

    /// Records that these tasks are on `node_id` (from a pusher's full read).
    pub fn own<'a>(&self, node_id: &str, task_keys: impl IntoIterator<Item = &'a String>) {
        let mut inner = self.lock();
        let node = inner.node_id(node_id);
        for k in task_keys {
            inner.owner.insert(k.clone(), node.clone());
        }
    }

    /// Forgets a task that no longer exists.
    pub fn forget(&self, task_key: &str) {
        self.lock().owner.remove(task_key);
    }

    fn all_full(&self) {
        for s in self.lock().slots.values() {
            s.mark_full();
        }
    }

    fn route(&self, changed: &[String]) {
        let mut inner = self.lock();
        let mut woken: HashMap<Arc<str>, Vec<String>> = HashMap::new();
        for k in changed {
            if let Some(rest) = k.strip_prefix(keys::NODE_INDEX) {
                let (Some(node), Some(task_key)) = (rest.split('/').next(), keys::task_of_index(k))
                else {
                    continue;
                };
                let node = inner.node_id(node);
                inner.owner.insert(task_key.clone(), node.clone());
                woken.entry(node).or_default().push(task_key);
            } else if k.starts_with(keys::TASKS) {
                if let Some(node) = inner.owner.get(k) {
                    woken.entry(node.clone()).or_default().push(k.clone());
                }
            }
        }
        for (node, ks) in woken {
            if let Some(slot) = inner.slots.get(&*node) {
                slot.add(|p| p.keys.extend(ks));
            }
        }
    }
}
