//! An EventBridge or Scheduler target with `EcsParameters`, read into the RunTask it stands
//! for: the cluster from the target's `Arn`, the task definition, count, group and placement
//! from `EcsParameters`, and the overrides from `Input` (ECS's `overrides` JSON, as a rule's
//! ECS target carries them). Both APIs name these fields alike.

use berth_core::arn;
use berth_proto::v1::{RunTaskRequest, ScheduleTarget, TaskOverride};
use serde_json::{json, Value};

/// A target's problem: the field (under `Targets[i]` or `Target`) and the fix.
pub type Problem = (String, String);

fn field(path: &str, name: &str) -> String {
    format!("{path}.{name}")
}

/// Reads `t` (the target object); `path` names it in errors.
pub fn read(t: &Value, id: &str, path: &str) -> Result<ScheduleTarget, Problem> {
    let bad = |name: &str, why: String| Err((field(path, name), why));
    let target_arn = t.get("Arn").and_then(Value::as_str).unwrap_or("");
    let Some(ecs) = t.get("EcsParameters").filter(|v| v.is_object()) else {
        return bad(
            "EcsParameters",
            "is required: Berth runs ECS targets only (Arn = the cluster's ARN)".into(),
        );
    };
    if !target_arn.contains(":cluster/") {
        return bad(
            "Arn",
            format!("{target_arn:?} must be the ARN of the ECS cluster to run in (arn:aws:ecs:REGION:ACCOUNT:cluster/NAME)"),
        );
    }
    let td = ecs
        .get("TaskDefinitionArn")
        .and_then(Value::as_str)
        .unwrap_or("");
    if td.is_empty() {
        return bad(
            "EcsParameters.TaskDefinitionArn",
            "is required (a task definition ARN, or FAMILY:REVISION)".into(),
        );
    }
    let count = match ecs.get("TaskCount") {
        None | Some(Value::Null) => 1,
        Some(v) => match v.as_i64().filter(|n| (1..=10).contains(n)) {
            Some(n) => n,
            None => {
                return bad(
                    "EcsParameters.TaskCount",
                    format!("{v} must be 1-10 (RunTask's count)"),
                )
            }
        },
    };
    let overrides = match t.get("Input").and_then(Value::as_str) {
        None | Some("") => None,
        Some(text) => {
            let v: Value = serde_json::from_str(text).map_err(|e| {
                (
                    field(path, "Input"),
                    format!("must be JSON (ECS's task overrides): {e}"),
                )
            })?;
            let o: TaskOverride = serde_json::from_value(v).map_err(|e| {
                (
                    field(path, "Input"),
                    format!(
                        "must be ECS's task overrides ({{\"containerOverrides\": [...]}}): {e}"
                    ),
                )
            })?;
            Some(o)
        }
    };
    let lower = |list: Option<&Value>, a: &str, b: &str| -> Vec<Value> {
        list.and_then(Value::as_array)
            .map(|l| {
                l.iter()
                    .map(|p| json!({a: p.get(a).cloned().unwrap_or(Value::Null), b: p.get(b).cloned().unwrap_or(Value::Null)}))
                    .collect()
            })
            .unwrap_or_default()
    };
    let req = json!({
        "cluster": arn::cluster_name(target_arn),
        "taskDefinition": td,
        "count": count,
        "group": ecs.get("Group").and_then(Value::as_str).unwrap_or(""),
        "placementConstraints": lower(ecs.get("PlacementConstraints"), "type", "expression"),
        "placementStrategy": lower(ecs.get("PlacementStrategy"), "type", "field"),
    });
    let mut run: RunTaskRequest = serde_json::from_value(strip_nulls(req))
        .map_err(|e| (field(path, "EcsParameters"), format!("placement: {e}")))?;
    run.overrides = overrides;
    Ok(ScheduleTarget {
        id: id.to_string(),
        json: t.to_string(),
        run: Some(run),
    })
}

fn strip_nulls(v: Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.into_iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k, strip_nulls(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.into_iter().map(strip_nulls).collect()),
        v => v,
    }
}

/// The target as the client sent it.
pub fn echo(t: &ScheduleTarget) -> Value {
    serde_json::from_str(&t.json).unwrap_or_else(|_| json!({"Id": t.id}))
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLUSTER: &str = "arn:aws:ecs:us-east-1:000000000000:cluster/demo";

    #[test]
    fn an_ecs_target_reads_into_its_run_task() {
        let t = json!({
            "Id": "1", "Arn": CLUSTER, "RoleArn": "r",
            "EcsParameters": {"TaskDefinitionArn": "job:3", "TaskCount": 2, "Group": "cron:job",
                "PlacementConstraints": [{"type": "distinctInstance"}],
                "PlacementStrategy": [{"type": "spread", "field": "host"}]},
            "Input": "{\"containerOverrides\": [{\"name\": \"app\", \"command\": [\"run\", \"--all\"]}]}"
        });
        let st = read(&t, "1", "Targets[0]").unwrap();
        let run = st.run.clone().unwrap();
        assert_eq!(run.cluster, "demo");
        assert_eq!(run.task_definition, "job:3");
        assert_eq!(run.count, 2);
        assert_eq!(run.group, "cron:job");
        assert_eq!(run.placement_constraints[0].r#type, "distinctInstance");
        assert_eq!(run.placement_strategy[0].field, "host");
        let o = run.overrides.unwrap();
        assert_eq!(o.container_overrides[0].command, ["run", "--all"]);
        assert_eq!(echo(&st), t, "echoed as it was put");
    }

    #[test]
    fn bad_targets_name_the_field() {
        let ecs = |p: Value| json!({"Arn": CLUSTER, "EcsParameters": p});
        let table = [
            (json!({"Arn": CLUSTER}), "Targets[0].EcsParameters"),
            (
                json!({"Arn": "arn:aws:lambda:us-east-1:0:function:f", "EcsParameters": {"TaskDefinitionArn": "a"}}),
                "Targets[0].Arn",
            ),
            (ecs(json!({})), "Targets[0].EcsParameters.TaskDefinitionArn"),
            (
                ecs(json!({"TaskDefinitionArn": "a", "TaskCount": 11})),
                "Targets[0].EcsParameters.TaskCount",
            ),
            (
                json!({"Arn": CLUSTER, "EcsParameters": {"TaskDefinitionArn": "a"}, "Input": "not json"}),
                "Targets[0].Input",
            ),
            (
                json!({"Arn": CLUSTER, "EcsParameters": {"TaskDefinitionArn": "a"}, "Input": "{\"containerOverrides\": 5}"}),
                "Targets[0].Input",
            ),
        ];
        for (t, field) in table {
            let (f, why) = read(&t, "1", "Targets[0]").unwrap_err();
            assert_eq!(f, field, "{t}: {why}");
        }
    }
}
