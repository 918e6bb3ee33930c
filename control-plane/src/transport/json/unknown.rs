//! Fields of a JSON request that its message does not have: serde skips them, so a misspelled
//! `clusterNme` would make a call do something else without a word. The reply names them.

use serde_json::Value;

/// At most this many are named.
const MAX_NAMED: usize = 20;

/// Paths in `input` that `parsed` (the message read from it, written back as JSON with every
/// field) lacks, e.g. `clusterNme` or `deploymentConfiguration.maxPercent`.
pub fn unknown_fields(input: &Value, parsed: &Value) -> Vec<String> {
    let mut out = Vec::new();
    walk(input, parsed, "", &mut out);
    out
}

fn walk(input: &Value, parsed: &Value, path: &str, out: &mut Vec<String>) {
    match (input, parsed) {
        (Value::Object(i), Value::Object(p)) => {
            for (k, v) in i {
                if out.len() >= MAX_NAMED {
                    return;
                }
                let here = if path.is_empty() {
                    crate::state::error::cut(k)
                } else {
                    format!("{path}.{}", crate::state::error::cut(k))
                };
                match p.get(k) {
                    None => out.push(here),
                    Some(pv) => walk(v, pv, &here, out),
                }
            }
        }
        (Value::Array(i), Value::Array(p)) => {
            for (n, (iv, pv)) in i.iter().zip(p).enumerate() {
                walk(iv, pv, &format!("{path}[{n}]"), out);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_proto::v1::UpdateServiceRequest;

    #[test]
    fn a_misspelled_field_is_named_with_its_path() {
        let input = serde_json::json!({
            "clusterNme": "demo",
            "service": "web",
            "deploymentConfiguration": {"maxPercent": 150, "maximumPercent": 150},
        });
        let parsed: UpdateServiceRequest = serde_json::from_value(input.clone()).unwrap();
        let back = serde_json::to_value(&parsed).unwrap();
        assert_eq!(
            unknown_fields(&input, &back),
            ["clusterNme", "deploymentConfiguration.maxPercent"]
        );
    }
}
