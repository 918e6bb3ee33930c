//! Berth's secret store: Secrets Manager secrets and SSM parameters, with values sealed at rest
//! under a key kept outside the store (`key`), served on the ECS API's port in both AWS wire
//! protocols (`manager`, `parameters`), and resolved for a task only when its agent is sent it
//! (`resolve`), so a value appears in no record, description, event or log.

pub mod key;
pub mod manager;
pub mod parameters;
mod records;
pub mod resolve;
#[cfg(test)]
mod tests;

use crate::state::error::{Error, Result};
use crate::state::State;
use crate::store::Op;
use serde::de::DeserializeOwned;
use serde::Serialize;

/// An AWS error of these APIs: its exception name and message, as botocore's models give them.
#[derive(Debug, Clone)]
pub struct AwsError {
    pub kind: &'static str,
    pub message: String,
}

impl AwsError {
    pub fn new(kind: &'static str, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }
}

impl From<Error> for AwsError {
    fn from(e: Error) -> Self {
        match e {
            Error::Invalid(_) => Self::new("InvalidParameterException", e.to_string()),
            other => Self::new("InternalServiceError", other.to_string()),
        }
    }
}

pub type AwsResult<T> = std::result::Result<T, AwsError>;

/// Seconds since the epoch, as these APIs send dates.
pub fn now() -> f64 {
    crate::time::now_millis() as f64 / 1000.0
}

/// The ARN prefix of `service` in this server's region and account.
pub fn arn_prefix(service: &str) -> String {
    berth_core::arn::prefix().replacen(":ecs:", &format!(":{service}:"), 1)
}

fn load<T: DeserializeOwned>(state: &State, key: &str) -> Result<Option<T>> {
    Ok(state
        .get_raw(key)?
        .and_then(|b| serde_json::from_slice(&b).ok()))
}

fn put_op<T: Serialize>(key: &str, v: &T) -> Op {
    Op::Put(key.to_string(), serde_json::to_vec(v).unwrap_or_default())
}

fn scan<T: DeserializeOwned>(state: &State, prefix: &str) -> Result<Vec<T>> {
    let mut out = Vec::new();
    for k in state.scan_keys(prefix)? {
        if let Some(v) = load(state, &k)? {
            out.push(v);
        }
    }
    Ok(out)
}

/// A random id: `n` hex digits.
fn random_hex(n: usize) -> String {
    use ring::rand::SecureRandom;
    let mut b = vec![0u8; n.div_ceil(2)];
    let _ = ring::rand::SystemRandom::new().fill(&mut b);
    b.iter().map(|x| format!("{x:02x}")).collect::<String>()[..n].to_string()
}

/// A version id in the UUID form Secrets Manager uses (random, version 4).
fn version_id() -> String {
    let r: u128 = rand::random::<u128>() & !(0xf << 76) | (0x4 << 76);
    format!(
        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        r >> 96,
        (r >> 80) & 0xffff,
        (r >> 64) & 0xffff,
        (r >> 48) & 0xffff,
        r & 0xffff_ffff_ffff
    )
}

#[cfg(test)]
mod id_tests {
    #[test]
    fn version_ids_are_uuids() {
        let id = super::version_id();
        let parts: Vec<usize> = id.split('-').map(str::len).collect();
        assert_eq!(parts, vec![8, 4, 4, 4, 12], "{id}");
        assert_eq!(&id[14..15], "4", "{id}");
        assert_ne!(id, super::version_id());
    }
}
