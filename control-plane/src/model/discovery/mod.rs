//! Cloud Map in Berth: namespaces (HTTP and private DNS), their services, and the instances of
//! those services — registered by hand through the API, or derived from the healthy tasks of the
//! ECS services whose `serviceRegistries` name them (`derive`), never stored for those. The
//! operations take and give Cloud Map's JSON shapes (`ops`); the node resolvers get the DNS
//! records through the endpoint stream (`records`).
//!
//! Other modules name a namespace by its name, id or ARN through [`namespaces::find`] and make
//! one with [`namespaces::ensure_http`] (a cluster's `serviceConnectDefaults`).

pub mod by_namespace;
pub mod derive;
pub mod instances;
pub mod namespaces;
pub mod ops;
pub mod records;
pub mod services;
#[cfg(test)]
mod tests;

use crate::state::error::Result;
use crate::state::State;
use crate::store::Op;
use berth_core::keys::DISCOVERY;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

pub const NAMESPACES: &str = "discovery/ns/";
pub const SERVICES: &str = "discovery/svc/";
pub const INSTANCES: &str = "discovery/inst/";
pub const OPERATIONS: &str = "discovery/op/";

/// A Cloud Map error: its name in botocore's model (`NamespaceNotFound`) and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CmError {
    pub kind: &'static str,
    pub message: String,
}

impl CmError {
    pub fn new(kind: &'static str, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }

    pub fn invalid(field: &str, why: impl std::fmt::Display) -> Self {
        Self::new("InvalidInput", format!("{field}: {why}"))
    }

    /// The HTTP status botocore's model gives the error.
    pub fn status(&self) -> u16 {
        match self.kind {
            "NamespaceNotFound" | "ServiceNotFound" | "InstanceNotFound" | "OperationNotFound" => {
                404
            }
            "ResourceInUse" => 409,
            "InternalError" => 500,
            _ => 400,
        }
    }
}

impl From<crate::state::error::Error> for CmError {
    fn from(e: crate::state::error::Error) -> Self {
        Self::new("InternalError", e.to_string())
    }
}

pub type CmResult<T> = std::result::Result<T, CmError>;

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Tag {
    #[serde(rename = "Key")]
    pub key: String,
    #[serde(rename = "Value", default)]
    pub value: String,
}

/// A namespace: `HTTP` (API discovery only) or `DNS_PRIVATE` (also answered by node DNS).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Namespace {
    pub id: String,
    pub arn: String,
    pub name: String,
    /// HTTP or DNS_PRIVATE.
    pub kind: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub creator_request_id: String,
    #[serde(default)]
    pub vpc: String,
    /// The SOA TTL a private DNS namespace was created with.
    #[serde(default)]
    pub soa_ttl: i64,
    pub created: f64,
    #[serde(default)]
    pub tags: Vec<Tag>,
}

impl Namespace {
    pub fn is_dns(&self) -> bool {
        self.kind == "DNS_PRIVATE"
    }
}

/// A Cloud Map service in a namespace.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct DService {
    pub id: String,
    pub arn: String,
    pub name: String,
    pub namespace_id: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub creator_request_id: String,
    /// Cloud Map's DnsConfig as the client sent it (`DnsRecords` [{Type, TTL}]), if any.
    #[serde(default)]
    pub dns_config: Option<Value>,
    #[serde(default)]
    pub health_check_custom_config: Option<Value>,
    #[serde(default)]
    pub health_check_config: Option<Value>,
    pub created: f64,
    #[serde(default)]
    pub tags: Vec<Tag>,
}

impl DService {
    /// The DNS record types asked for (A when nothing is said) and the TTL to serve: the one
    /// asked for, at most [`MAX_TTL`] so a change reaches clients quickly.
    pub fn dns_records(&self) -> (Vec<String>, i32) {
        let mut types = Vec::new();
        let mut ttl = MAX_TTL;
        if let Some(records) = self
            .dns_config
            .as_ref()
            .and_then(|c| c.get("DnsRecords"))
            .and_then(Value::as_array)
        {
            for r in records {
                if let Some(t) = r.get("Type").and_then(Value::as_str) {
                    types.push(t.to_string());
                }
                if let Some(n) = r.get("TTL").and_then(Value::as_i64) {
                    ttl = ttl.min(n.clamp(0, i64::from(MAX_TTL)) as i32);
                }
            }
        }
        if types.is_empty() {
            types.push("A".into());
        }
        (types, ttl)
    }
}

/// The longest TTL node DNS answers with, in seconds.
pub const MAX_TTL: i32 = 5;

/// An instance registered through RegisterInstance.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Instance {
    pub id: String,
    pub service_id: String,
    #[serde(default)]
    pub attributes: Map<String, Value>,
    #[serde(default)]
    pub creator_request_id: String,
    pub created: f64,
}

/// An asynchronous operation's record (Berth's finish at once: SUCCESS).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Operation {
    pub id: String,
    pub kind: String,
    pub status: String,
    pub created: f64,
    /// NAMESPACE / SERVICE / INSTANCE → id.
    #[serde(default)]
    pub targets: Map<String, Value>,
}

/// Seconds since the epoch, as Cloud Map sends dates.
pub fn now() -> f64 {
    crate::time::now_millis() as f64 / 1000.0
}

/// The ARN prefix of Cloud Map in this server's region and account.
pub fn arn_prefix() -> String {
    berth_core::arn::prefix().replacen(":ecs:", ":servicediscovery:", 1)
}

pub(crate) fn load<T: DeserializeOwned>(state: &State, key: &str) -> Result<Option<T>> {
    Ok(state
        .get_raw(key)?
        .and_then(|b| serde_json::from_slice(&b).ok()))
}

pub(crate) fn put_op<T: Serialize>(key: &str, v: &T) -> Op {
    Op::Put(key.to_string(), serde_json::to_vec(v).unwrap_or_default())
}

pub(crate) fn scan<T: DeserializeOwned>(state: &State, prefix: &str) -> Result<Vec<T>> {
    let mut out = Vec::new();
    for k in state.scan_keys(prefix)? {
        if let Some(v) = load(state, &k)? {
            out.push(v);
        }
    }
    Ok(out)
}

/// `n` random lowercase hex digits.
pub(crate) fn random_hex(n: usize) -> String {
    (0..n)
        .map(|_| char::from_digit(rand::random::<u32>() % 16, 16).unwrap_or('0'))
        .collect()
}

/// Whether a store key is Cloud Map's (a change to it re-derives the DNS records).
pub fn is_discovery_key(key: &str) -> bool {
    key.starts_with(DISCOVERY)
}

/// Records a finished operation and answers its id.
pub(crate) fn operation_op(kind: &str, target: (&str, &str)) -> (String, Op) {
    let id = random_hex(32);
    let mut targets = Map::new();
    targets.insert(target.0.to_string(), Value::String(target.1.to_string()));
    let op = Operation {
        id: id.clone(),
        kind: kind.to_string(),
        status: "SUCCESS".into(),
        created: now(),
        targets,
    };
    (id.clone(), put_op(&format!("{OPERATIONS}{id}"), &op))
}

/// The store key of namespace `id`.
pub(crate) fn namespaces_key(id: &str) -> String {
    format!("{NAMESPACES}{id}")
}

/// The store key of service `id`.
pub(crate) fn services_key(id: &str) -> String {
    format!("{SERVICES}{id}")
}

/// The store prefix of service `service_id`'s registered instances.
pub(crate) fn instances_prefix(service_id: &str) -> String {
    format!("{INSTANCES}{service_id}/")
}
