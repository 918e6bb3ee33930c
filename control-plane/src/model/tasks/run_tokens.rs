//! RunTask's `clientToken`, as ECS keeps it: per cluster, for 24 hours. The first run with a
//! token records, in the same fenced commit as its tasks, the request's fingerprint and the
//! tasks it started; a retry with the same token and the same request gets those tasks back
//! and starts none; the same token with a different request is refused (ECS's
//! ConflictException). Expired tokens of the cluster are swept now and then when a new one is recorded.

use crate::state::error::{Error, Result};
use crate::state::{State, Tx};
use crate::store::Op;
use serde::{Deserialize, Serialize};
use serde_json::Value;

const PREFIX: &str = "run-tokens/";
/// How long ECS remembers a RunTask client token.
pub const TTL_MS: i64 = 24 * 60 * 60 * 1000;
/// One recording in this many (by the token's bytes) also sweeps the expired ones.
const SWEEP_EVERY: u32 = 32;
/// ECS's bound on a RunTask client token: 64 characters in the range 33-126.
pub const MAX_CHARS: usize = 64;

/// A token and the request it came with, as one string (canonical JSON of every other field).
#[derive(Debug, Clone)]
pub struct RunToken {
    pub cluster: String,
    pub token: String,
    pub fingerprint: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Recorded {
    fingerprint: String,
    task_keys: Vec<String>,
    at_ms: i64,
}

/// What a token says about a run: go ahead, or these tasks were already started by it.
pub enum Seen {
    New,
    Same(Vec<String>),
    Different,
}

impl RunToken {
    /// `input` is the request's JSON; everything but `clientToken` makes the fingerprint.
    pub fn of(cluster: &str, token: &str, input: &Value) -> Result<Self> {
        if token.is_empty()
            || token.chars().count() > MAX_CHARS
            || !token.bytes().all(|b| (33..=126).contains(&b))
        {
            return Err(Error::invalid(
                "clientToken",
                format!("must be 1 to {MAX_CHARS} printable ASCII characters (33-126), no spaces"),
            ));
        }
        let mut rest = input.clone();
        if let Some(m) = rest.as_object_mut() {
            m.remove("clientToken");
        }
        Ok(Self {
            cluster: cluster.to_string(),
            token: token.to_string(),
            fingerprint: canonical(&rest),
        })
    }

    fn key(&self) -> String {
        format!("{PREFIX}{}/{}", self.cluster, self.token)
    }

    /// What the token was used for, read in `tx` so a concurrent first use makes this decide
    /// again.
    pub fn seen(&self, tx: &mut Tx<'_>, now_ms: i64) -> Result<Seen> {
        let Some(raw) = tx.get_raw(&self.key())? else {
            return Ok(Seen::New);
        };
        let Ok(r) = serde_json::from_slice::<Recorded>(&raw) else {
            return Ok(Seen::New);
        };
        if now_ms - r.at_ms > TTL_MS {
            return Ok(Seen::New);
        }
        Ok(if r.fingerprint == self.fingerprint {
            Seen::Same(r.task_keys)
        } else {
            Seen::Different
        })
    }

    /// The writes that record this token's run, and drop the cluster's expired tokens.
    pub fn record_ops(
        &self,
        state: &State,
        task_keys: Vec<String>,
        now_ms: i64,
    ) -> Result<Vec<Op>> {
        let r = Recorded {
            fingerprint: self.fingerprint.clone(),
            task_keys,
            at_ms: now_ms,
        };
        let mut ops = vec![Op::Put(
            self.key(),
            serde_json::to_vec(&r).map_err(|e| Error::Client(e.to_string()))?,
        )];
        // The sweep reads every token of the cluster: one run in SWEEP_EVERY pays for it, so
        // a busy cluster's RunTask stays O(1) on average and its tokens stay bounded.
        if self
            .fingerprint
            .bytes()
            .chain(self.token.bytes())
            .map(u32::from)
            .sum::<u32>()
            % SWEEP_EVERY
            != 0
        {
            return Ok(ops);
        }
        for k in state.scan_keys(&format!("{PREFIX}{}/", self.cluster))? {
            if k == self.key() {
                continue;
            }
            let expired = state
                .get_raw(&k)?
                .and_then(|v| serde_json::from_slice::<Recorded>(&v).ok())
                .is_none_or(|r| now_ms - r.at_ms > TTL_MS);
            if expired {
                ops.push(Op::Delete(k));
            }
        }
        Ok(ops)
    }
}

/// JSON with every object's keys in order, so two equal requests read the same.
fn canonical(v: &Value) -> String {
    fn sorted(v: &Value) -> Value {
        match v {
            Value::Object(m) => {
                let mut keys: Vec<&String> = m.keys().collect();
                keys.sort();
                let mut out = serde_json::Map::new();
                for k in keys {
                    out.insert(k.clone(), sorted(&m[k]));
                }
                Value::Object(out)
            }
            Value::Array(a) => Value::Array(a.iter().map(sorted).collect()),
            other => other.clone(),
        }
    }
    // A map that keeps insertion order still serialises the sorted insertion in order.
    sorted(v).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn fingerprints_ignore_order_and_the_token_but_not_values() {
        let a = RunToken::of(
            "c",
            "t1",
            &json!({"count": 1, "taskDefinition": "web", "clientToken": "t1"}),
        )
        .unwrap();
        let b = RunToken::of("c", "t1", &json!({"taskDefinition": "web", "count": 1})).unwrap();
        let c = RunToken::of("c", "t1", &json!({"taskDefinition": "web", "count": 2})).unwrap();
        assert_eq!(a.fingerprint, b.fingerprint);
        assert_ne!(a.fingerprint, c.fingerprint);
        assert!(RunToken::of("c", "has space", &json!({})).is_err());
        assert!(RunToken::of("c", &"x".repeat(65), &json!({})).is_err());
    }

    fn seen(state: &State, t: &RunToken, now: i64) -> &'static str {
        state
            .update(|tx| {
                let s = match t.seen(tx, now)? {
                    Seen::New => "new",
                    Seen::Same(_) => "same",
                    Seen::Different => "different",
                };
                Ok((s, Vec::new()))
            })
            .unwrap()
    }

    #[test]
    fn a_token_is_remembered_for_24_hours_then_swept() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::LogStore::open(dir.path()).unwrap();
        let state = State::new(std::sync::Arc::new(store));
        let first = RunToken::of("c", "t1", &json!({"taskDefinition": "web"})).unwrap();
        let other = RunToken::of("c", "t1", &json!({"taskDefinition": "db"})).unwrap();
        assert_eq!(seen(&state, &first, 0), "new");
        state
            .commit(
                first
                    .record_ops(&state, vec!["task/c/1".into()], 0)
                    .unwrap(),
            )
            .unwrap();
        assert_eq!(seen(&state, &first, 1_000), "same");
        assert_eq!(seen(&state, &other, 1_000), "different");
        assert_eq!(
            seen(&state, &first, TTL_MS + 1),
            "new",
            "forgotten after 24 h"
        );
        // Some later recording sweeps it (one in SWEEP_EVERY does).
        let swept = (0..200)
            .map(|i| RunToken::of("c", &format!("later-{i}"), &json!({})).unwrap())
            .map(|t| t.record_ops(&state, Vec::new(), TTL_MS + 1).unwrap())
            .find(|ops| ops.len() > 1)
            .expect("a recording that sweeps");
        assert!(swept
            .iter()
            .any(|op| matches!(op, Op::Delete(k) if k == "run-tokens/c/t1")));
    }
}
