//! Reading an ECS request body: typed getters that name the field (with its path) in every
//! error, `null` as absent, and the fields an operation does not read kept for `ecs_extras`.

use super::error::{EcsError, EcsResult};
use crate::model::ecs_extras::Tag;
use serde_json::{Map, Value};

/// A JSON object of the request, and where it sits in it (`overrides.containerOverrides[0]`).
#[derive(Debug, Clone, Default)]
pub struct Input {
    map: Map<String, Value>,
    path: String,
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

impl Input {
    /// The body: a JSON object (an empty body is `{}`).
    pub fn parse(body: &[u8]) -> EcsResult<Self> {
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(Self::default());
        }
        match serde_json::from_slice::<Value>(body) {
            Ok(Value::Object(map)) => Ok(Self {
                map,
                path: String::new(),
            }),
            Ok(other) => Err(EcsError::new(
                "InvalidParameterException",
                format!("request body: must be a JSON object, got {}", kind(&other)),
            )),
            Err(e) => Err(EcsError::new(
                "InvalidParameterException",
                format!(
                    "request body: not valid JSON ({e}); send the operation's input as a JSON object"
                ),
            )),
        }
    }

    fn path_of(&self, name: &str) -> String {
        if self.path.is_empty() {
            name.to_string()
        } else {
            format!("{}.{name}", self.path)
        }
    }

    fn get(&self, name: &str) -> Option<&Value> {
        self.map.get(name).filter(|v| !v.is_null())
    }

    fn wrong(&self, name: &str, want: &str, got: &Value) -> EcsError {
        EcsError::invalid(
            &self.path_of(name),
            format!("must be {want}, got {}", kind(got)),
        )
    }

    pub fn has(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    pub fn str(&self, name: &str) -> EcsResult<Option<String>> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(v) => Err(self.wrong(name, "a string", v)),
        }
    }

    /// A string, empty when absent.
    pub fn text(&self, name: &str) -> EcsResult<String> {
        Ok(self.str(name)?.unwrap_or_default())
    }

    /// A string that must be there and not be blank.
    pub fn required(&self, name: &str) -> EcsResult<String> {
        match self.str(name)? {
            Some(s) if !s.trim().is_empty() => Ok(s),
            Some(_) => Err(EcsError::invalid(&self.path_of(name), "must not be empty")),
            None => Err(EcsError::invalid(&self.path_of(name), "is required")),
        }
    }

    pub fn int(&self, name: &str) -> EcsResult<Option<i64>> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::Number(n)) => n
                .as_i64()
                .map(Some)
                .ok_or_else(|| EcsError::invalid(&self.path_of(name), "must be a whole number")),
            Some(v) => Err(self.wrong(name, "a number", v)),
        }
    }

    /// A number (ECS's Double) within `range`.
    pub fn number_in(
        &self,
        name: &str,
        range: std::ops::RangeInclusive<f64>,
    ) -> EcsResult<Option<f64>> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::Number(n)) => match n.as_f64() {
                Some(x) if range.contains(&x) => Ok(Some(x)),
                _ => Err(EcsError::invalid(
                    &self.path_of(name),
                    format!("{n} must be {}-{}", range.start(), range.end()),
                )),
            },
            Some(v) => Err(self.wrong(name, "a number", v)),
        }
    }

    /// A whole number within `range`.
    pub fn int_in(
        &self,
        name: &str,
        range: std::ops::RangeInclusive<i64>,
    ) -> EcsResult<Option<i32>> {
        match self.int(name)? {
            None => Ok(None),
            Some(n) if range.contains(&n) => Ok(Some(n as i32)),
            Some(n) => Err(EcsError::invalid(
                &self.path_of(name),
                format!("{n} must be {}-{}", range.start(), range.end()),
            )),
        }
    }

    pub fn bool(&self, name: &str) -> EcsResult<Option<bool>> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(v) => Err(self.wrong(name, "a boolean", v)),
        }
    }

    pub fn strings(&self, name: &str) -> EcsResult<Vec<String>> {
        match self.get(name) {
            None => Ok(Vec::new()),
            Some(Value::Array(items)) => items
                .iter()
                .enumerate()
                .map(|(i, v)| match v {
                    Value::String(s) => Ok(s.clone()),
                    other => Err(EcsError::invalid(
                        &format!("{}[{i}]", self.path_of(name)),
                        format!("must be a string, got {}", kind(other)),
                    )),
                })
                .collect(),
            Some(v) => Err(self.wrong(name, "a list of strings", v)),
        }
    }

    /// A list of strings that must have at least one item.
    pub fn required_strings(&self, name: &str) -> EcsResult<Vec<String>> {
        let v = self.strings(name)?;
        if v.is_empty() {
            return Err(EcsError::invalid(
                &self.path_of(name),
                "is required (a list of at least one)",
            ));
        }
        Ok(v)
    }

    pub fn object(&self, name: &str) -> EcsResult<Option<Input>> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::Object(m)) => Ok(Some(Input {
                map: m.clone(),
                path: self.path_of(name),
            })),
            Some(v) => Err(self.wrong(name, "an object", v)),
        }
    }

    pub fn objects(&self, name: &str) -> EcsResult<Vec<Input>> {
        match self.get(name) {
            None => Ok(Vec::new()),
            Some(Value::Array(items)) => items
                .iter()
                .enumerate()
                .map(|(i, v)| {
                    let path = format!("{}[{i}]", self.path_of(name));
                    match v {
                        Value::Object(m) => Ok(Input {
                            map: m.clone(),
                            path,
                        }),
                        other => Err(EcsError::invalid(
                            &path,
                            format!("must be an object, got {}", kind(other)),
                        )),
                    }
                })
                .collect(),
            Some(v) => Err(self.wrong(name, "a list of objects", v)),
        }
    }

    /// `tags: [{key, value}]`.
    pub fn tags(&self, name: &str) -> EcsResult<Vec<Tag>> {
        self.objects(name)?
            .iter()
            .map(|t| {
                Ok(Tag {
                    key: t.required("key")?,
                    value: t.text("value")?,
                })
            })
            .collect()
    }

    /// One of `allowed` (compared case-sensitively, as ECS does), if given.
    pub fn choice(&self, name: &str, allowed: &[&str]) -> EcsResult<Option<String>> {
        match self.str(name)? {
            None => Ok(None),
            Some(s) if allowed.contains(&s.as_str()) => Ok(Some(s)),
            Some(s) => Err(EcsError::invalid(
                &self.path_of(name),
                format!("{s:?} must be one of {}", allowed.join(", ")),
            )),
        }
    }

    /// Every field but `used`: what the operation accepts without acting on it.
    pub fn rest(&self, used: &[&str]) -> Map<String, Value> {
        self.map
            .iter()
            .filter(|(k, v)| !used.contains(&k.as_str()) && !v.is_null())
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// The object as JSON.
    pub fn value(&self) -> Value {
        Value::Object(self.map.clone())
    }
}

/// `placementStrategy` and `placementConstraints`, as CreateService and RunTask take them.
pub fn placement(
    input: &Input,
) -> EcsResult<(
    Vec<berth_proto::v1::PlacementStrategy>,
    Vec<berth_proto::v1::PlacementConstraint>,
)> {
    let strategies = input
        .objects("placementStrategy")?
        .iter()
        .map(|s| {
            Ok(berth_proto::v1::PlacementStrategy {
                r#type: s.required("type")?,
                field: s.text("field")?,
            })
        })
        .collect::<EcsResult<Vec<_>>>()?;
    let constraints = input
        .objects("placementConstraints")?
        .iter()
        .map(|c| {
            Ok(berth_proto::v1::PlacementConstraint {
                r#type: c.required("type")?,
                expression: c.text("expression")?,
            })
        })
        .collect::<EcsResult<Vec<_>>>()?;
    Ok((strategies, constraints))
}
