//! The Secrets Manager operations: CreateSecret, GetSecretValue, PutSecretValue, UpdateSecret,
//! DescribeSecret, ListSecrets, DeleteSecret (with a recovery window), RestoreSecret,
//! TagResource. Shapes, error names and messages follow botocore's secretsmanager model.

use super::records::{seal_name, SecretRecord, SecretVersion, Tag, SECRETS};
use super::{key, load, now, put_op, scan, version_id, AwsError, AwsResult};
use crate::state::State;
use base64::Engine;
use serde_json::{json, Value};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

fn not_found() -> AwsError {
    AwsError::new(
        "ResourceNotFoundException",
        "Secrets Manager can't find the specified secret.",
    )
}

fn text<'a>(input: &'a Value, field: &str) -> Option<&'a str> {
    input.get(field).and_then(Value::as_str)
}

fn required<'a>(input: &'a Value, field: &str) -> AwsResult<&'a str> {
    text(input, field)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| AwsError::new("InvalidParameterException", format!("{field}: is required")))
}

/// The record a SecretId (a name or an ARN, full or without its random suffix) names. A secret
/// whose recovery window has passed is gone: removed here, when it is next looked up.
pub(super) fn find(state: &State, id: &str) -> AwsResult<Option<(String, SecretRecord)>> {
    match find_stored(state, id)? {
        Some((k, r)) if r.deletion_date.is_some_and(|d| d <= now()) => {
            state.update(|tx| {
                let due = load::<SecretRecord>(tx.state(), &k)?
                    .is_some_and(|r| r.deletion_date.is_some_and(|d| d <= now()));
                tx.get_raw(&k)?;
                let ops = if due {
                    vec![crate::store::Op::Delete(k.clone())]
                } else {
                    vec![]
                };
                Ok(((), ops))
            })?;
            Ok(None)
        }
        found => Ok(found),
    }
}

fn find_stored(state: &State, id: &str) -> AwsResult<Option<(String, SecretRecord)>> {
    let by_name = format!("{SECRETS}{id}");
    if let Some(r) = load::<SecretRecord>(state, &by_name)? {
        return Ok(Some((by_name, r)));
    }
    if id.starts_with("arn:") {
        for r in scan::<SecretRecord>(state, SECRETS)? {
            if r.arn == id || r.arn.rsplit_once('-').is_some_and(|(p, _)| p == id) {
                return Ok(Some((format!("{SECRETS}{}", r.name), r)));
            }
        }
    }
    Ok(None)
}

fn existing(state: &State, id: &str) -> AwsResult<(String, SecretRecord)> {
    find(state, id)?.ok_or_else(not_found)
}

fn live(r: &SecretRecord) -> AwsResult<()> {
    if r.deletion_date.is_some() {
        return Err(AwsError::new(
            "InvalidRequestException",
            "You can't perform this operation on the secret because it was marked for deletion.",
        ));
    }
    Ok(())
}

/// A new version's sealed value from SecretString or SecretBinary.
fn new_version(input: &Value, name: &str) -> AwsResult<Option<SecretVersion>> {
    let id = text(input, "ClientRequestToken")
        .map(String::from)
        .unwrap_or_else(version_id);
    let (plain, binary) = match (text(input, "SecretString"), text(input, "SecretBinary")) {
        (Some(s), None) => (s.as_bytes().to_vec(), false),
        (None, Some(b)) => (
            B64.decode(b).map_err(|_| {
                AwsError::new("InvalidParameterException", "SecretBinary: must be base64")
            })?,
            true,
        ),
        (None, None) => return Ok(None),
        (Some(_), Some(_)) => {
            return Err(AwsError::new(
                "InvalidParameterException",
                "You can't specify both a binary secret value and a string secret value in the same secret.",
            ))
        }
    };
    let sealed = key::seal(&seal_name("sm", name, &id), &plain)
        .map_err(|e| AwsError::new("InternalServiceError", e))?;
    Ok(Some(SecretVersion {
        id,
        stages: vec!["AWSCURRENT".into()],
        created: now(),
        sealed,
        binary,
    }))
}

/// Makes `v` AWSCURRENT, moving the old current to AWSPREVIOUS (ECS's rotation staging).
fn add_version(r: &mut SecretRecord, v: SecretVersion) {
    r.versions.iter_mut().for_each(|old| {
        old.stages.retain(|s| s != "AWSPREVIOUS");
        if let Some(s) = old.stages.iter_mut().find(|s| *s == "AWSCURRENT") {
            *s = "AWSPREVIOUS".into();
        }
    });
    r.versions.retain(|old| !old.stages.is_empty());
    r.versions.push(v);
    r.last_changed = now();
}

fn tags_of(input: &Value) -> Vec<Tag> {
    input
        .get("Tags")
        .and_then(|t| serde_json::from_value(t.clone()).ok())
        .unwrap_or_default()
}

fn create(state: &State, input: &Value) -> AwsResult<Value> {
    let name = required(input, "Name")?.to_string();
    if name.len() > 512
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/_+=.@-".contains(c))
    {
        return Err(AwsError::new(
            "InvalidParameterException",
            "Name: must be 1-512 letters, digits or /_+=.@-",
        ));
    }
    let k = format!("{SECRETS}{name}");
    let version = new_version(input, &name)?;
    let arn = format!(
        "{}:secret:{name}-{}",
        super::arn_prefix("secretsmanager"),
        super::random_hex(6)
    );
    let r = state.update(|tx| {
        if tx.get_raw(&k)?.is_some() {
            return Ok((None, vec![]));
        }
        let mut r = SecretRecord {
            name: name.clone(),
            arn: arn.clone(),
            description: text(input, "Description").unwrap_or("").into(),
            created: now(),
            last_changed: now(),
            tags: tags_of(input),
            ..Default::default()
        };
        if let Some(v) = version.clone() {
            add_version(&mut r, v);
        }
        Ok((Some(r.clone()), vec![put_op(&k, &r)]))
    })?;
    let r = r.ok_or_else(|| {
        AwsError::new(
            "ResourceExistsException",
            format!("The operation failed because the secret {name} already exists."),
        )
    })?;
    let mut out = json!({"ARN": r.arn, "Name": r.name});
    if let Some(v) = r.versions.last() {
        out["VersionId"] = json!(v.id);
    }
    Ok(out)
}

/// The value of one version, opened.
pub(super) fn value_of(r: &SecretRecord, v: &SecretVersion) -> AwsResult<Vec<u8>> {
    key::open(&seal_name("sm", &r.name, &v.id), &v.sealed)
        .map_err(|e| AwsError::new("InternalServiceError", e))
}

fn get_value(state: &State, input: &Value) -> AwsResult<Value> {
    let (_, r) = existing(state, required(input, "SecretId")?)?;
    live(&r)?;
    let v = r
        .version(text(input, "VersionId"), text(input, "VersionStage"))
        .ok_or_else(|| {
            AwsError::new(
                "ResourceNotFoundException",
                "Secrets Manager can't find the specified secret value for staging label: AWSCURRENT",
            )
        })?;
    let plain = value_of(&r, v)?;
    let mut out = json!({"ARN": r.arn, "Name": r.name, "VersionId": v.id,
        "VersionStages": v.stages, "CreatedDate": v.created});
    if v.binary {
        out["SecretBinary"] = json!(B64.encode(plain));
    } else {
        out["SecretString"] = json!(String::from_utf8_lossy(&plain));
    }
    Ok(out)
}

fn put_value(state: &State, input: &Value) -> AwsResult<Value> {
    let id = required(input, "SecretId")?;
    let (k, r) = existing(state, id)?;
    live(&r)?;
    let v = new_version(input, &r.name)?.ok_or_else(|| {
        AwsError::new(
            "InvalidParameterException",
            "You must provide either SecretString or SecretBinary.",
        )
    })?;
    let r = state.update(|tx| {
        tx.get_raw(&k)?;
        let mut r: SecretRecord = load(tx.state(), &k)?.unwrap_or_else(|| r.clone());
        add_version(&mut r, v.clone());
        Ok((r.clone(), vec![put_op(&k, &r)]))
    })?;
    Ok(json!({"ARN": r.arn, "Name": r.name, "VersionId": v.id, "VersionStages": v.stages}))
}

fn update(state: &State, input: &Value) -> AwsResult<Value> {
    let (k, r) = existing(state, required(input, "SecretId")?)?;
    live(&r)?;
    let v = new_version(input, &r.name)?;
    let r = state.update(|tx| {
        tx.get_raw(&k)?;
        let mut r: SecretRecord = load(tx.state(), &k)?.unwrap_or_else(|| r.clone());
        if let Some(d) = text(input, "Description") {
            r.description = d.into();
            r.last_changed = now();
        }
        if let Some(v) = v.clone() {
            add_version(&mut r, v);
        }
        Ok((r.clone(), vec![put_op(&k, &r)]))
    })?;
    let mut out = json!({"ARN": r.arn, "Name": r.name});
    if let Some(v) = v {
        out["VersionId"] = json!(v.id);
    }
    Ok(out)
}

/// DescribeSecret's shape (and ListSecrets' entries): never a value.
fn describe_shape(r: &SecretRecord) -> Value {
    let stages: serde_json::Map<String, Value> = r
        .versions
        .iter()
        .map(|v| (v.id.clone(), json!(v.stages)))
        .collect();
    let mut out = json!({"ARN": r.arn, "Name": r.name, "CreatedDate": r.created,
        "LastChangedDate": r.last_changed, "Tags": r.tags, "VersionIdsToStages": stages});
    if !r.description.is_empty() {
        out["Description"] = json!(r.description);
    }
    if let Some(d) = r.deletion_date {
        out["DeletedDate"] = json!(d);
    }
    out
}

fn describe(state: &State, input: &Value) -> AwsResult<Value> {
    let (_, r) = existing(state, required(input, "SecretId")?)?;
    Ok(describe_shape(&r))
}

fn list(state: &State, input: &Value) -> AwsResult<Value> {
    let include_deleted = input
        .get("IncludePlannedDeletion")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let list: Vec<Value> = scan::<SecretRecord>(state, SECRETS)?
        .iter()
        .filter(|r| include_deleted || r.deletion_date.is_none())
        .map(describe_shape)
        .collect();
    Ok(json!({ "SecretList": list }))
}

fn delete(state: &State, input: &Value) -> AwsResult<Value> {
    let (k, r) = existing(state, required(input, "SecretId")?)?;
    let force = input
        .get("ForceDeleteWithoutRecovery")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let window = input.get("RecoveryWindowInDays").and_then(Value::as_i64);
    if force && window.is_some() {
        return Err(AwsError::new(
            "InvalidParameterException",
            "You can't use ForceDeleteWithoutRecovery in conjunction with RecoveryWindowInDays.",
        ));
    }
    let days = window.unwrap_or(30);
    if !(7..=30).contains(&days) {
        return Err(AwsError::new(
            "InvalidParameterException",
            "RecoveryWindowInDays: must be 7-30",
        ));
    }
    let when = if force {
        now()
    } else {
        now() + days as f64 * 86400.0
    };
    state.update(|tx| {
        tx.get_raw(&k)?;
        if force {
            return Ok(((), vec![crate::store::Op::Delete(k.clone())]));
        }
        let mut r = r.clone();
        r.deletion_date = Some(when);
        Ok(((), vec![put_op(&k, &r)]))
    })?;
    Ok(json!({"ARN": r.arn, "Name": r.name, "DeletionDate": when}))
}

fn restore(state: &State, input: &Value) -> AwsResult<Value> {
    let (k, mut r) = existing(state, required(input, "SecretId")?)?;
    r.deletion_date = None;
    state.commit(vec![put_op(&k, &r)])?;
    Ok(json!({"ARN": r.arn, "Name": r.name}))
}

fn tag(state: &State, input: &Value) -> AwsResult<Value> {
    let (k, mut r) = existing(state, required(input, "SecretId")?)?;
    for t in tags_of(input) {
        match r.tags.iter_mut().find(|x| x.key == t.key) {
            Some(x) => x.value = t.value,
            None => r.tags.push(t),
        }
    }
    state.commit(vec![put_op(&k, &r)])?;
    Ok(json!({}))
}

/// Answers one Secrets Manager operation; `None` when there is no such operation.
pub fn call(state: &State, op: &str, input: &Value) -> Option<AwsResult<Value>> {
    Some(match op {
        "CreateSecret" => create(state, input),
        "GetSecretValue" => get_value(state, input),
        "PutSecretValue" => put_value(state, input),
        "UpdateSecret" => update(state, input),
        "DescribeSecret" => describe(state, input),
        "ListSecrets" => list(state, input),
        "DeleteSecret" => delete(state, input),
        "RestoreSecret" => restore(state, input),
        "TagResource" => tag(state, input),
        _ => return None,
    })
}
