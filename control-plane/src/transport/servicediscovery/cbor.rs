//! Smithy RPC v2 CBOR bodies to and from the JSON values the model speaks: maps with text keys,
//! integers, floats, text, booleans and lists; timestamps (CreateDate, UpdateDate) go out as
//! CBOR tag 1 over epoch seconds, as botocore's parser reads them.

use ciborium::value::{Integer, Value as Cbor};
use serde_json::{Map, Number, Value};

/// Fields Cloud Map's model types as timestamps.
const TIMESTAMPS: &[&str] = &["CreateDate", "UpdateDate"];

/// The JSON value of a CBOR request body (an empty body is `{}`).
pub fn decode(body: &[u8]) -> Result<Value, String> {
    if body.is_empty() {
        return Ok(Value::Object(Map::new()));
    }
    let v: Cbor = ciborium::de::from_reader(body).map_err(|e| format!("not valid CBOR: {e}"))?;
    let json = to_json(v, 0)?;
    if !json.is_object() {
        return Err("the body must be a CBOR map".into());
    }
    Ok(json)
}

/// Deep enough for any Cloud Map input; a deeper body is refused rather than recursed into.
const MAX_DEPTH: usize = 32;

fn to_json(v: Cbor, depth: usize) -> Result<Value, String> {
    if depth > MAX_DEPTH {
        return Err(format!("nested deeper than {MAX_DEPTH} levels"));
    }
    Ok(match v {
        Cbor::Null => Value::Null,
        Cbor::Bool(b) => Value::Bool(b),
        Cbor::Integer(i) => {
            let n = i128::from(i);
            if let Ok(n) = i64::try_from(n) {
                Value::Number(n.into())
            } else if let Ok(n) = u64::try_from(n) {
                Value::Number(n.into())
            } else {
                return Err("an integer out of range".into());
            }
        }
        Cbor::Float(f) => Number::from_f64(f).map_or(Value::Null, Value::Number),
        Cbor::Text(s) => Value::String(s),
        Cbor::Bytes(b) => {
            use base64::Engine;
            Value::String(base64::engine::general_purpose::STANDARD.encode(b))
        }
        Cbor::Tag(_, inner) => to_json(*inner, depth + 1)?,
        Cbor::Array(items) => Value::Array(
            items
                .into_iter()
                .map(|x| to_json(x, depth + 1))
                .collect::<Result<_, _>>()?,
        ),
        Cbor::Map(entries) => {
            let mut m = Map::new();
            for (k, v) in entries {
                let Cbor::Text(k) = k else {
                    return Err("map keys must be text".into());
                };
                m.insert(k, to_json(v, depth + 1)?);
            }
            Value::Object(m)
        }
        _ => return Err("an unsupported CBOR item".into()),
    })
}

/// The CBOR body of a reply.
pub fn encode(v: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    // Writing to a Vec fails only on a value ciborium cannot hold, and `from_json` makes none.
    let _ = ciborium::ser::into_writer(&from_json(v, None), &mut out);
    out
}

fn from_json(v: &Value, key: Option<&str>) -> Cbor {
    match v {
        Value::Null => Cbor::Null,
        Value::Bool(b) => Cbor::Bool(*b),
        Value::Number(n) if key.is_some_and(|k| TIMESTAMPS.contains(&k)) => {
            Cbor::Tag(1, Box::new(Cbor::Float(n.as_f64().unwrap_or_default())))
        }
        Value::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => Cbor::Integer(Integer::from(i)),
            (None, Some(u)) => Cbor::Integer(Integer::from(u)),
            _ => Cbor::Float(n.as_f64().unwrap_or_default()),
        },
        Value::String(s) => Cbor::Text(s.clone()),
        Value::Array(items) => Cbor::Array(items.iter().map(|x| from_json(x, None)).collect()),
        Value::Object(m) => Cbor::Map(
            m.iter()
                .map(|(k, v)| (Cbor::Text(k.clone()), from_json(v, Some(k))))
                .collect(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_reply_reads_back_with_its_dates_tagged() {
        let v = json!({"Namespace": {"Id": "ns-1", "ServiceCount": 2, "CreateDate": 1700000000.5,
            "Properties": {"DnsProperties": {"SOA": {"TTL": 15}}}}, "Ok": true, "L": ["a"]});
        let bytes = encode(&v);
        let raw: Cbor = ciborium::de::from_reader(bytes.as_slice()).unwrap();
        let field = |m: &Cbor, name: &str| {
            m.as_map()
                .unwrap()
                .iter()
                .find(|(k, _)| k.as_text() == Some(name))
                .unwrap()
                .1
                .clone()
        };
        let date = field(&field(&raw, "Namespace"), "CreateDate");
        assert!(matches!(date, Cbor::Tag(1, _)), "{date:?}");
        assert_eq!(decode(&bytes).unwrap(), v);
    }

    #[test]
    fn bad_bodies_say_why() {
        assert!(decode(&[0xff, 0x00]).unwrap_err().contains("CBOR"));
        let list = encode(&json!(["x"]));
        assert!(decode(&list).unwrap_err().contains("map"));
        assert_eq!(decode(b"").unwrap(), json!({}));
    }
}
