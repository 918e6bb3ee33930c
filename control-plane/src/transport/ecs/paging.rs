//! `maxResults` / `nextToken` over a list an operation has already filtered and ordered, so the
//! aws CLI's auto-pagination and boto3's paginators walk all of it.

use super::error::{EcsError, EcsResult};
use super::input::Input;
use serde_json::{json, Map, Value};

const TOKEN_PREFIX: &str = "berth-page-";

/// One page of `items` under `key`, with `nextToken` when more follow. `default` is the page
/// size without `maxResults`, `max` the largest ECS allows.
pub fn page(
    input: &Input,
    items: Vec<Value>,
    key: &str,
    default: i64,
    max: i64,
) -> EcsResult<Value> {
    let size = input
        .int_in("maxResults", 1..=max)?
        .map_or(default, i64::from) as usize;
    let start = match input.str("nextToken")? {
        None => 0,
        Some(t) => t
            .strip_prefix(TOKEN_PREFIX)
            .and_then(|n| n.parse::<usize>().ok())
            .filter(|n| *n <= items.len())
            .ok_or_else(|| {
                EcsError::invalid(
                    "nextToken",
                    "is not a token this server gave (pass the nextToken of the previous page)",
                )
            })?,
    };
    let end = start.saturating_add(size).min(items.len());
    let mut out = Map::new();
    out.insert(
        key.into(),
        Value::Array(items.get(start..end).unwrap_or_default().to_vec()),
    );
    if end < items.len() {
        out.insert("nextToken".into(), json!(format!("{TOKEN_PREFIX}{end}")));
    }
    Ok(Value::Object(out))
}
