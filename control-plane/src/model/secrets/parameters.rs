//! The SSM Parameter Store operations: PutParameter (String, StringList, SecureString; Overwrite;
//! versions), GetParameter, GetParameters, GetParametersByPath, DeleteParameter,
//! DescribeParameters. Shapes, error names and messages follow botocore's ssm model.

use super::records::{seal_name, ParameterRecord, PARAMETERS};
use super::{key, load, now, put_op, scan, AwsError, AwsResult};
use crate::state::State;
use serde_json::{json, Value};

fn text<'a>(input: &'a Value, field: &str) -> Option<&'a str> {
    input.get(field).and_then(Value::as_str)
}

fn required<'a>(input: &'a Value, field: &str) -> AwsResult<&'a str> {
    text(input, field)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| AwsError::new("ValidationException", format!("{field}: is required")))
}

fn flag(input: &Value, field: &str) -> bool {
    input.get(field).and_then(Value::as_bool).unwrap_or(false)
}

fn not_found() -> AwsError {
    AwsError::new("ParameterNotFound", "")
}

/// The parameter a name or ARN (`arn:aws:ssm:R:A:parameter/NAME`) names.
pub(super) fn find(state: &State, id: &str) -> AwsResult<Option<ParameterRecord>> {
    let names: Vec<String> = match id.split_once(":parameter/") {
        Some((_, rest)) => vec![format!("/{rest}"), rest.to_string()],
        None => vec![id.to_string()],
    };
    for n in names {
        if let Some(p) = load::<ParameterRecord>(state, &format!("{PARAMETERS}{n}"))? {
            return Ok(Some(p));
        }
    }
    Ok(None)
}

/// The parameter's value, opened.
pub(super) fn value_of(p: &ParameterRecord) -> AwsResult<String> {
    key::open(
        &seal_name("ssm", &p.name, &p.version.to_string()),
        &p.sealed,
    )
    .map(|v| String::from_utf8_lossy(&v).into_owned())
    .map_err(|e| AwsError::new("InternalServerError", e))
}

fn put(state: &State, input: &Value) -> AwsResult<Value> {
    let name = required(input, "Name")?.to_string();
    let value = required(input, "Value")?;
    let overwrite = flag(input, "Overwrite");
    let kind = text(input, "Type");
    if let Some(k) = kind {
        if !matches!(k, "String" | "StringList" | "SecureString") {
            return Err(AwsError::new(
                "ValidationException",
                format!("1 validation error detected: Value '{k}' at 'type' failed to satisfy constraint: Member must satisfy enum value set: [SecureString, StringList, String]"),
            ));
        }
    }
    let k = format!("{PARAMETERS}{name}");
    let p = state.update(|tx| {
        let old: Option<ParameterRecord> = match tx.get_raw(&k)? {
            Some(b) => serde_json::from_slice(&b).ok(),
            None => None,
        };
        if old.is_some() && !overwrite {
            return Ok((Err(AwsError::new(
                "ParameterAlreadyExists",
                "The parameter already exists. To overwrite this value, set the overwrite option in the request to true.",
            )), vec![]));
        }
        let version = old.as_ref().map_or(1, |o| o.version + 1);
        let kind = kind
            .map(String::from)
            .or_else(|| old.as_ref().map(|o| o.kind.clone()))
            .unwrap_or_else(|| "String".into());
        let sealed = match key::seal(&seal_name("ssm", &name, &version.to_string()), value.as_bytes()) {
            Ok(s) => s,
            Err(e) => return Ok((Err(AwsError::new("InternalServerError", e)), vec![])),
        };
        let p = ParameterRecord {
            arn: format!(
                "{}:parameter/{}",
                super::arn_prefix("ssm"),
                name.trim_start_matches('/')
            ),
            name: name.clone(),
            kind,
            description: text(input, "Description")
                .map(String::from)
                .or_else(|| old.as_ref().map(|o| o.description.clone()))
                .unwrap_or_default(),
            version,
            last_modified: now(),
            sealed,
        };
        Ok((Ok(p.clone()), vec![put_op(&k, &p)]))
    })??;
    Ok(json!({"Version": p.version, "Tier": "Standard"}))
}

/// A parameter's shape; a SecureString's value only with decryption.
fn shape(p: &ParameterRecord, decrypt: bool) -> AwsResult<Value> {
    let value = if p.kind == "SecureString" && !decrypt {
        p.sealed.clone()
    } else {
        value_of(p)?
    };
    Ok(
        json!({"Name": p.name, "Type": p.kind, "Value": value, "Version": p.version,
        "LastModifiedDate": p.last_modified, "ARN": p.arn, "DataType": "text"}),
    )
}

fn get(state: &State, input: &Value) -> AwsResult<Value> {
    let p = find(state, required(input, "Name")?)?.ok_or_else(not_found)?;
    Ok(json!({"Parameter": shape(&p, flag(input, "WithDecryption"))?}))
}

fn get_many(state: &State, input: &Value) -> AwsResult<Value> {
    let names: Vec<String> = input
        .get("Names")
        .and_then(|n| serde_json::from_value(n.clone()).ok())
        .unwrap_or_default();
    if names.is_empty() || names.len() > 10 {
        return Err(AwsError::new(
            "ValidationException",
            "Names: give 1-10 parameter names",
        ));
    }
    let mut found = Vec::new();
    let mut invalid = Vec::new();
    for n in names {
        match find(state, &n)? {
            Some(p) => found.push(shape(&p, flag(input, "WithDecryption"))?),
            None => invalid.push(n),
        }
    }
    Ok(json!({"Parameters": found, "InvalidParameters": invalid}))
}

fn by_path(state: &State, input: &Value) -> AwsResult<Value> {
    let path = required(input, "Path")?;
    let dir = format!("{}/", path.trim_end_matches('/'));
    let recursive = flag(input, "Recursive");
    let mut out = Vec::new();
    for p in scan::<ParameterRecord>(state, PARAMETERS)? {
        let Some(rest) = p.name.strip_prefix(&dir) else {
            continue;
        };
        if recursive || !rest.contains('/') {
            out.push(shape(&p, flag(input, "WithDecryption"))?);
        }
    }
    Ok(json!({ "Parameters": out }))
}

fn delete(state: &State, input: &Value) -> AwsResult<Value> {
    let p = find(state, required(input, "Name")?)?.ok_or_else(not_found)?;
    state.commit(vec![crate::store::Op::Delete(format!(
        "{PARAMETERS}{}",
        p.name
    ))])?;
    Ok(json!({}))
}

fn describe(state: &State, _input: &Value) -> AwsResult<Value> {
    let list: Vec<Value> = scan::<ParameterRecord>(state, PARAMETERS)?
        .iter()
        .map(|p| {
            let mut v = json!({"Name": p.name, "Type": p.kind, "Version": p.version,
                "LastModifiedDate": p.last_modified, "ARN": p.arn, "DataType": "text",
                "Tier": "Standard"});
            if !p.description.is_empty() {
                v["Description"] = json!(p.description);
            }
            v
        })
        .collect();
    Ok(json!({ "Parameters": list }))
}

/// Answers one SSM operation; `None` when there is no such operation.
pub fn call(state: &State, op: &str, input: &Value) -> Option<AwsResult<Value>> {
    Some(match op {
        "PutParameter" => put(state, input),
        "GetParameter" => get(state, input),
        "GetParameters" => get_many(state, input),
        "GetParametersByPath" => by_path(state, input),
        "DeleteParameter" => delete(state, input),
        "DescribeParameters" => describe(state, input),
        _ => return None,
    })
}
