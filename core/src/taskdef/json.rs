//! Reads an ECS task definition from JSON text exactly as users write it for
//! `aws ecs register-task-definition --cli-input-json`, or as the ECS console exports it.
//!
//! The text is checked against the shape of the fields Berth uses, every type error is reported
//! with its path, `null` means absent, and any other field (AWS-only ones such as
//! `executionRoleArn`, or server-set ones such as `revision`) is accepted and listed as ignored.
//! The fields Berth does not model are kept, as sent, in `unmodeledJson` (see `unmodeled`), so
//! describing the definition gives back everything that was registered.

use super::schema::{join, Kind, TASK_DEFINITION};
use crate::error::FieldError;
use berth_proto::v1::TaskDefinition;
use serde_json::{Map, Value};
use Kind::*;

/// A decoded definition, the fields that were ignored, and any type errors.
#[derive(Debug, Default)]
pub struct Decoded {
    pub task_definition: TaskDefinition,
    pub ignored: Vec<String>,
}

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
    let (clean, rest) = match &value {
        Value::Object(m) => ctx.object(m, TASK_DEFINITION, ""),
        other => {
            ctx.errors.push(FieldError::new(
                "",
                format!(
                    "a task definition must be a JSON object, got {}",
                    type_name(other)
                ),
            ));
            (Value::Null, None)
        }
    };
    if !ctx.errors.is_empty() {
        return Err(ctx.errors);
    }
    let mut task_definition: TaskDefinition = serde_json::from_value(clean).map_err(|e| {
        vec![FieldError::new(
            "",
            format!("unreadable task definition: {e}"),
        )]
    })?;
    task_definition.unmodeled_json = super::unmodeled::encode(rest);
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

fn is_empty_container(v: &Value) -> bool {
    match v {
        Value::Array(a) => a.is_empty(),
        Value::Object(m) => m.is_empty(),
        _ => false,
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
    /// The object's modelled fields, and the rest (unmodelled fields, and the rest of modelled
    /// objects within) when there is any.
    fn object(
        &mut self,
        m: &Map<String, Value>,
        schema: &[(&str, Kind)],
        path: &str,
    ) -> (Value, Option<Value>) {
        let mut out = Map::new();
        let mut rest = Map::new();
        for (key, value) in m {
            let p = join(path, key);
            match schema.iter().find(|(name, _)| name == key) {
                Some(_) if value.is_null() => {}
                Some((_, kind)) => {
                    if let Some((v, r)) = self.value(value, *kind, &p) {
                        out.insert(key.clone(), v);
                        if let Some(r) = r {
                            rest.insert(key.clone(), r);
                        }
                    }
                }
                None if value.is_null() => {}
                None => {
                    self.ignored.push(p);
                    // An empty list or object says nothing (ECS's descriptions carry `[]` for
                    // fields never given), so it is not kept.
                    if super::unmodeled::keep(path, key) && !is_empty_container(value) {
                        rest.insert(key.clone(), value.clone());
                    }
                }
            }
        }
        (
            Value::Object(out),
            (!rest.is_empty()).then_some(Value::Object(rest)),
        )
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

    fn value(&mut self, v: &Value, kind: Kind, path: &str) -> Option<(Value, Option<Value>)> {
        match (kind, v) {
            (Obj(schema), Value::Object(m)) => Some(self.object(m, schema, path)),
            (ObjList(schema), Value::Array(items)) => {
                let mut out = Vec::with_capacity(items.len());
                // Aligned with `out` by index, so each item's rest merges back onto it.
                let mut rest = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    let p = format!("{path}[{i}]");
                    match item {
                        Value::Object(m) => {
                            let (v, r) = self.object(m, schema, &p);
                            out.push(v);
                            rest.push(r.unwrap_or_else(|| Value::Object(Map::new())));
                        }
                        other => {
                            self.wrong(&p, "an object", other);
                        }
                    }
                }
                let any = rest
                    .iter()
                    .any(|r| r.as_object().is_some_and(|o| !o.is_empty()));
                Some((Value::Array(out), any.then_some(Value::Array(rest))))
            }
            _ => self.scalar(v, kind, path).map(|v| (v, None)),
        }
    }

    fn scalar(&mut self, v: &Value, kind: Kind, path: &str) -> Option<Value> {
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
            (Obj(_), _) => self.wrong(path, "an object", v),
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
                  "firelensConfiguration":{"type":"fluentbit"}}]}"#,
        )
        .unwrap();
        assert_eq!(d.task_definition.family, "web");
        assert_eq!(d.task_definition.cpu, "256");
        assert_eq!(d.task_definition.memory, "1024");
        assert_eq!(d.task_definition.container_definitions[0].memory, 0);
        assert_eq!(
            d.ignored,
            vec![
                "containerDefinitions[0].firelensConfiguration".to_string(),
                "executionRoleArn".to_string()
            ]
        );
        assert_eq!(
            super::super::unmodeled::paths(&d.task_definition.unmodeled_json),
            vec![
                "containerDefinitions[0].firelensConfiguration".to_string(),
                "executionRoleArn".to_string()
            ]
        );
        let rest: Value = serde_json::from_str(&d.task_definition.unmodeled_json).unwrap();
        assert_eq!(
            rest,
            serde_json::json!({"executionRoleArn": "arn:aws:iam::1:role/x",
                "containerDefinitions": [{"firelensConfiguration": {"type": "fluentbit"}}]})
        );
    }

    #[test]
    fn server_set_fields_are_not_kept() {
        let d = decode(
            r#"{"family":"web","revision":3,"status":"ACTIVE","taskDefinitionArn":"arn:x",
                "containerDefinitions":[{"name":"web","image":"nginx"}]}"#,
        )
        .unwrap();
        assert_eq!(d.task_definition.unmodeled_json, "");
        assert_eq!(d.task_definition.revision, 0);
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
