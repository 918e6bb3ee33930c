//! On start, stored records whose ARNs carry another prefix than this server's — those written
//! by older versions (`arn:berth:ecs:local:000000000000:…`), or before `--region` or
//! `--account-id` changed — are rewritten to the current one, so every comparison between a
//! stored ARN and one made now (a task's node, a deployment's definition) still holds.

use crate::state::error::Result;
use crate::state::{keys, State};
use crate::store::Op;
use berth_core::arn;
use berth_proto::v1::{Cluster, ContainerInstance, Service, Stack, Task, TaskDefinition};
use prost::Message;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

/// Rewrites every ECS ARN under another prefix; true when something changed.
fn rewrite(v: &mut Value, prefix: &str) -> bool {
    match v {
        Value::String(s) => match arn::resource(s) {
            Some(rest) if !s.starts_with(&format!("{prefix}:")) => {
                *s = format!("{prefix}:{rest}");
                true
            }
            _ => false,
        },
        Value::Array(a) => a.iter_mut().fold(false, |c, x| rewrite(x, prefix) | c),
        Value::Object(m) => m.values_mut().fold(false, |c, x| rewrite(x, prefix) | c),
        _ => false,
    }
}

fn pass<T>(state: &State, key_prefix: &str, prefix: &str, ops: &mut Vec<Op>) -> Result<()>
where
    T: Message + Default + Serialize + DeserializeOwned,
{
    for (key, bytes) in state.store().scan(key_prefix)? {
        let Ok(msg) = T::decode(bytes.value.as_slice()) else {
            continue;
        };
        let Ok(mut v) = serde_json::to_value(&msg) else {
            continue;
        };
        if rewrite(&mut v, prefix) {
            if let Ok(updated) = serde_json::from_value::<T>(v) {
                ops.push(Op::Put(key, updated.encode_to_vec()));
            }
        }
    }
    Ok(())
}

/// Brings the stored ARNs to this server's prefix; returns how many records changed.
pub fn upgrade(state: &State) -> Result<usize> {
    // At start, before anything else writes: one pass of blind batches.
    let prefix = arn::prefix();
    let mut ops = Vec::new();
    pass::<Cluster>(state, keys::CLUSTERS, &prefix, &mut ops)?;
    pass::<TaskDefinition>(state, keys::TASK_DEFINITIONS, &prefix, &mut ops)?;
    pass::<Service>(state, "service/", &prefix, &mut ops)?;
    pass::<Task>(state, keys::TASKS, &prefix, &mut ops)?;
    pass::<ContainerInstance>(state, keys::NODES, &prefix, &mut ops)?;
    pass::<Stack>(state, "stack/", &prefix, &mut ops)?;
    let n = ops.len();
    for chunk in ops.chunks(500) {
        state.commit(chunk.to_vec())?;
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::put;
    use crate::store::LogStore;
    use std::sync::Arc;

    #[test]
    fn records_of_older_versions_get_this_servers_arns() {
        let dir = tempfile::tempdir().unwrap();
        let state = State::new(Arc::new(LogStore::open(dir.path()).unwrap()));
        let old = "arn:berth:ecs:local:000000000000";
        let task = Task {
            task_arn: format!("{old}:task/demo/abc"),
            container_instance_arn: format!("{old}:container-instance/n1"),
            group: "service:web".into(),
            ..Default::default()
        };
        state
            .commit(vec![put(keys::task("demo", "abc"), &task)])
            .unwrap();
        assert_eq!(upgrade(&state).unwrap(), 1);
        let t: Task = state.get(&keys::task("demo", "abc")).unwrap().unwrap();
        assert_eq!(t.container_instance_arn, arn::container_instance("n1"));
        assert_eq!(t.task_arn, arn::task("demo", "abc"));
        assert_eq!(t.group, "service:web");
        assert_eq!(
            upgrade(&state).unwrap(),
            0,
            "a second start changes nothing"
        );
    }
}
