//! Reads an ECS task definition from JSON text exactly as users write it for
//! `aws ecs register-task-definition --cli-input-json`, or as the ECS console exports it.
//!
//! The text is checked against the shape of the fields Berth uses, every type error is reported
//! with its path, `null` means absent, and any other field (AWS-only ones such as
//! `executionRoleArn`, or server-set ones such as `revision`) is accepted and listed as ignored.

use crate::error::FieldError;
use berth_proto::v1::TaskDefinition;
use serde_json::{Map, Value};

/// A decoded definition, the fields that were ignored, and any type errors.
#[derive(Debug, Default)]
pub struct Decoded {
    pub task_definition: TaskDefinition,
    pub ignored: Vec<String>,
}

#[derive(Clone, Copy)]
enum Kind {
    Str,
    Int,
    Bool,
    StrList,
    IntList,
    StrMap,
    /// Task-level cpu / memory: ECS takes "256", "1 vCPU", "1GB" or a bare number.
    StrOrInt,
    Obj(&'static [(&'static str, Kind)]),
    ObjList(&'static [(&'static str, Kind)]),
}

use Kind::*;

const KEY_VALUE: &[(&str, Kind)] = &[("name", Str), ("value", Str)];
const PORT_MAPPING: &[(&str, Kind)] = &[
    ("containerPort", Int),
    ("hostPort", Int),
    ("protocol", Str),
    ("name", Str),
];
const HEALTH_CHECK: &[(&str, Kind)] = &[
    ("command", StrList),
    ("interval", Int),
    ("timeout", Int),
    ("retries", Int),
    ("startPeriod", Int),
];
const DEPENDENCY: &[(&str, Kind)] = &[("containerName", Str), ("condition", Str)];
const LOG_CONFIGURATION: &[(&str, Kind)] = &[("logDriver", Str), ("options", StrMap)];
const ULIMIT: &[(&str, Kind)] = &[("name", Str), ("softLimit", Int), ("hardLimit", Int)];
const CAPABILITIES: &[(&str, Kind)] = &[("add", StrList), ("drop", StrList)];
const DEVICE: &[(&str, Kind)] = &[
    ("hostPath", Str),
    ("containerPath", Str),
    ("permissions", StrList),
];
const TMPFS: &[(&str, Kind)] = &[
    ("containerPath", Str),
    ("size", Int),
    ("mountOptions", StrList),
];
const LINUX_PARAMETERS: &[(&str, Kind)] = &[
    ("capabilities", Obj(CAPABILITIES)),
    ("devices", ObjList(DEVICE)),
    ("initProcessEnabled", Bool),
    ("sharedMemorySize", Int),
    ("tmpfs", ObjList(TMPFS)),
    ("maxSwap", Int),
    ("swappiness", Int),
];
const HOST_ENTRY: &[(&str, Kind)] = &[("hostname", Str), ("ipAddress", Str)];
const SYSTEM_CONTROL: &[(&str, Kind)] = &[("namespace", Str), ("value", Str)];
const RESTART_POLICY: &[(&str, Kind)] = &[
    ("enabled", Bool),
    ("ignoredExitCodes", IntList),
    ("restartAttemptPeriod", Int),
];
const RESOURCE_REQUIREMENT: &[(&str, Kind)] = &[("type", Str), ("value", Str)];
const CONTAINER: &[(&str, Kind)] = &[
    ("name", Str),
    ("image", Str),
    ("cpu", Int),
    ("memory", Int),
    ("memoryReservation", Int),
    ("portMappings", ObjList(PORT_MAPPING)),
    ("essential", Bool),
    ("environment", ObjList(KEY_VALUE)),
    ("command", StrList),
    ("entryPoint", StrList),
    ("healthCheck", Obj(HEALTH_CHECK)),
    ("dependsOn", ObjList(DEPENDENCY)),
    ("stopTimeout", Int),
    ("workingDirectory", Str),
    ("user", Str),
    ("dockerLabels", StrMap),
    ("links", StrList),
    ("logConfiguration", Obj(LOG_CONFIGURATION)),
    ("ulimits", ObjList(ULIMIT)),
    ("linuxParameters", Obj(LINUX_PARAMETERS)),
    ("readonlyRootFilesystem", Bool),
    ("extraHosts", ObjList(HOST_ENTRY)),
    ("dnsServers", StrList),
    ("dnsSearchDomains", StrList),
    ("hostname", Str),
    ("systemControls", ObjList(SYSTEM_CONTROL)),
    ("startTimeout", Int),
    ("interactive", Bool),
    ("pseudoTerminal", Bool),
    ("privileged", Bool),
    ("dockerSecurityOptions", StrList),
    ("restartPolicy", Obj(RESTART_POLICY)),
    ("resourceRequirements", ObjList(RESOURCE_REQUIREMENT)),
];
const TASK_DEFINITION: &[(&str, Kind)] = &[
    ("family", Str),
    ("containerDefinitions", ObjList(CONTAINER)),
    ("cpu", StrOrInt),
    ("memory", StrOrInt),
    ("networkMode", Str),
    ("pidMode", Str),
    ("ipcMode", Str),
];

/// Parses ECS task definition JSON. `Err` holds every problem found, each with its path.
pub fn decode(text: &str) -> Result<Decoded, Vec<FieldError>> {
    let value: Value = serde_json::from_str(text).map_err(|e| {
        vec![FieldError::new(
            "",
            format!(
                "the task definition is not valid JSON: {} at line {}, column {}",
                describe_json_error(&e),
                e.line(),
                e.column()
            ),
        )]
    })?;
    // `aws ecs describe-task-definition` wraps the definition: accept its output as it is.
    let value = match value {
        Value::Object(mut m) if m.contains_key("taskDefinition") && !m.contains_key("family") => {
            m.remove("taskDefinition").unwrap_or(Value::Null)
        }
        v => v,
    };
    let mut ctx = Ctx::default();
    let clean = match &value {
        Value::Object(m) => ctx.object(m, TASK_DEFINITION, ""),
        other => {
            ctx.errors.push(FieldError::new(
                "",
                format!(
                    "a task definition must be a JSON object, got {}",
                    type_name(other)
                ),
            ));
            Value::Null
        }
    };
    if !ctx.errors.is_empty() {
        return Err(ctx.errors);
    }
    let task_definition = serde_json::from_value(clean).map_err(|e| {
        vec![FieldError::new(
            "",
            format!("unreadable task definition: {e}"),
        )]
    })?;
    Ok(Decoded {
        task_definition,
        ignored: ctx.ignored,
    })
}

fn describe_json_error(e: &serde_json::Error) -> String {
    // serde_json appends " at line L column C" itself; keep only the reason.
    let s = e.to_string();
    match s.rfind(" at line ") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

#[derive(Default)]
struct Ctx {
    errors: Vec<FieldError>,
    ignored: Vec<String>,
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn type_name(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => format!("boolean {b}"),
        Value::Number(n) => format!("number {n}"),
        Value::String(s) if s.len() <= 40 => format!("string {s:?}"),
        Value::String(_) => "a string".into(),
        Value::Array(_) => "an array".into(),
        Value::Object(_) => "an object".into(),
    }
}

impl Ctx {
    fn object(&mut self, m: &Map<String, Value>, schema: &[(&str, Kind)], path: &str) -> Value {
        let mut out = Map::new();
        for (key, value) in m {
            let p = join(path, key);
            match schema.iter().find(|(name, _)| name == key) {
                Some(_) if value.is_null() => {}
                Some((_, kind)) => {
                    if let Some(v) = self.value(value, *kind, &p) {
                        out.insert(key.clone(), v);
                    }
                }
                None if value.is_null() => {}
                None => self.ignored.push(p),
            }
        }
        Value::Object(out)
    }

    /// Reports each item of a list that is not what `ok` accepts; true when all are.
    fn every_item(
        &mut self,
        items: &[Value],
        path: &str,
        ok: impl Fn(&Value) -> bool,
        expected: &str,
    ) -> bool {
        let mut all = true;
        for (i, item) in items.iter().enumerate() {
            if !ok(item) {
                self.wrong(&format!("{path}[{i}]"), expected, item);
                all = false;
            }
        }
        all
    }

    fn wrong(&mut self, path: &str, expected: &str, got: &Value) -> Option<Value> {
        self.errors.push(FieldError::new(
            path,
            format!("expected {expected}, got {}", type_name(got)),
        ));
        None
    }

    fn value(&mut self, v: &Value, kind: Kind, path: &str) -> Option<Value> {
        match (kind, v) {
            (Str, Value::String(_)) | (Bool, Value::Bool(_)) => Some(v.clone()),
            (Str, _) => self.wrong(path, "a string", v),
            (Bool, _) => self.wrong(path, "true or false", v),
            (Int, Value::Number(n)) => match n.as_i64() {
                Some(i) if i32::try_from(i).is_ok() => Some(v.clone()),
                _ => self.wrong(path, "a whole number within 32 bits", v),
            },
            (Int, _) => self.wrong(path, "a whole number", v),
            (StrOrInt, Value::String(_)) => Some(v.clone()),
            (StrOrInt, Value::Number(n)) if n.is_u64() => Some(Value::String(n.to_string())),
            (StrOrInt, _) => self.wrong(path, "a string such as \"512\" or \"1 vCPU\"", v),
            (StrList, Value::Array(items)) => self
                .every_item(items, path, Value::is_string, "a string")
                .then(|| v.clone()),
            (StrList, _) => self.wrong(path, "an array of strings", v),
            (IntList, Value::Array(items)) => self
                .every_item(
                    items,
                    path,
                    |i| i.as_i64().and_then(|n| i32::try_from(n).ok()).is_some(),
                    "a whole number within 32 bits",
                )
                .then(|| v.clone()),
            (IntList, _) => self.wrong(path, "an array of whole numbers", v),
            (StrMap, Value::Object(m)) => {
                let mut ok = true;
                for (k, item) in m {
                    if !item.is_string() {
                        self.wrong(&join(path, k), "a string", item);
                        ok = false;
                    }
                }
                ok.then(|| v.clone())
            }
            (StrMap, _) => self.wrong(path, "an object of string values", v),
            (Obj(schema), Value::Object(m)) => Some(self.object(m, schema, path)),
            (Obj(_), _) => self.wrong(path, "an object", v),
            (ObjList(schema), Value::Array(items)) => {
                let mut out = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    let p = format!("{path}[{i}]");
                    match item {
                        Value::Object(m) => out.push(self.object(m, schema, &p)),
                        other => {
                            self.wrong(&p, "an object", other);
                        }
                    }
                }
                Some(Value::Array(out))
            }
            (ObjList(_), _) => self.wrong(path, "an array of objects", v),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nulls_are_absent_and_aws_fields_are_listed_as_ignored() {
        let d = decode(
            r#"{"family":"web","executionRoleArn":"arn:aws:iam::1:role/x","taskRoleArn":null,
                "cpu":"256","memory":1024,
                "containerDefinitions":[{"name":"web","image":"nginx","memory":null,
                  "repositoryCredentials":{"credentialsParameter":"x"}}]}"#,
        )
        .unwrap();
        assert_eq!(d.task_definition.family, "web");
        assert_eq!(d.task_definition.cpu, "256");
        assert_eq!(d.task_definition.memory, "1024");
        assert_eq!(d.task_definition.container_definitions[0].memory, 0);
        assert_eq!(
            d.ignored,
            vec![
                "containerDefinitions[0].repositoryCredentials".to_string(),
                "executionRoleArn".to_string()
            ]
        );
    }

    #[test]
    fn every_type_error_is_reported_with_its_path() {
        let errors = decode(
            r#"{"family":"web","containerDefinitions":[{"name":"a","image":"i","memory":"lots",
                "portMappings":[{"containerPort":80},{"containerPort":"81"}],"essential":"yes"}]}"#,
        )
        .unwrap_err();
        let paths: Vec<_> = errors.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            paths,
            vec![
                "containerDefinitions[0].essential",
                "containerDefinitions[0].memory",
                "containerDefinitions[0].portMappings[1].containerPort",
            ]
        );
        assert!(errors[1].message.contains("\"lots\""), "{errors:?}");
    }

    #[test]
    fn malformed_json_names_line_and_column() {
        let errors = decode("{\n  \"family\": \"web\"\n  \"x\": 1\n}").unwrap_err();
        assert!(errors[0].message.contains("line 3, column 3"), "{errors:?}");
    }

    #[test]
    fn describe_task_definition_output_is_unwrapped() {
        let d =
            decode(r#"{"taskDefinition":{"family":"web","containerDefinitions":[]},"tags":[]}"#)
                .unwrap();
        assert_eq!(d.task_definition.family, "web");
    }
}
