//! The lifecycle hook runner: the IO half of a traffic shift's hooks. The planner records a hook
//! it waits for as PENDING on the deployment; this calls it (an HTTP POST of the deployment's
//! stage as JSON), and writes what it answered back onto the deployment, where the next pass
//! reads it. IN_PROGRESS is asked again every few seconds. Runs only on the leader, beside the
//! controllers. It reads every service once, then only the services the change feed names, so a
//! fleet of services without hooks costs it nothing.

use crate::state::{put, State};
use crate::time;
use berth_proto::v1::{HookRun, Service};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use serde_json::{json, Value};
use std::collections::HashSet;
use std::time::Duration;
use tokio::sync::broadcast::error::TryRecvError;
use tokio::sync::watch;

/// How often the runner looks for hooks to call, and how soon IN_PROGRESS is asked again.
const EVERY: Duration = Duration::from_secs(1);
const AGAIN_AFTER_MS: i64 = 3_000;
/// One call's bound; a hook that cannot be reached this many times in a row has FAILED.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);
const MAX_UNREACHABLE: i32 = 3;

pub async fn run(state: State, mut stopped: watch::Receiver<bool>) {
    let mut changes = state.store().subscribe();
    let mut tick = tokio::time::interval(EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Service keys with a hook run not yet answered for good; None: read every service.
    let mut watched: Option<HashSet<String>> = None;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stopped.wait_for(|s| *s) => return,
        }
        let mut touched = HashSet::new();
        loop {
            match changes.try_recv() {
                Ok(c) if c.resync => watched = None,
                Ok(c) => touched.extend(
                    c.keys
                        .iter()
                        .filter(|k| k.starts_with(crate::state::keys::SERVICES))
                        .cloned(),
                ),
                Err(TryRecvError::Lagged(_)) => watched = None,
                Err(_) => break,
            }
        }
        let (due, now_watched) = {
            let state = state.clone();
            let known = watched.take();
            tokio::task::spawn_blocking(move || {
                let keys = known.map(|mut w| {
                    w.extend(touched);
                    w
                });
                due(&state, keys, time::now_millis())
            })
            .await
            .unwrap_or_default()
        };
        watched = Some(now_watched);
        for (key, svc, deployment, run) in due {
            let answer = call(&svc, &deployment, &run).await;
            let state = state.clone();
            let _ = tokio::task::spawn_blocking(move || {
                record(&state, &key, &deployment, &run, answer)
            })
            .await;
        }
    }
}

/// A service the runner calls hooks for, and the one it waits on.
type Due = (String, Service, String, HookRun);

/// Hook runs to call now (PENDING ones, and IN_PROGRESS ones last asked a while ago) among
/// `keys` (None: every service), and the services still to watch.
fn due(state: &State, keys: Option<HashSet<String>>, now: i64) -> (Vec<Due>, HashSet<String>) {
    let services: Vec<Service> = match keys {
        None => state
            .scan::<Service>(crate::state::keys::SERVICES)
            .unwrap_or_default(),
        Some(keys) => keys
            .iter()
            .filter_map(|k| state.get::<Service>(k).ok().flatten())
            .collect(),
    };
    let mut out = Vec::new();
    let mut watch = HashSet::new();
    for svc in services {
        let Some(dep) = svc.deployments.first() else {
            continue;
        };
        if dep
            .hooks
            .iter()
            .any(|r| !matches!(r.status.as_str(), "SUCCEEDED" | "FAILED"))
        {
            watch.insert(crate::model::services::key_of(&svc));
        }
        for r in &dep.hooks {
            let last = time::parse_rfc3339(&r.called_at).unwrap_or(0);
            let again = matches!(r.status.as_str(), "IN_PROGRESS" | "UNREACHABLE")
                && now - last >= AGAIN_AFTER_MS;
            if r.status == "PENDING" || again {
                out.push((
                    crate::model::services::key_of(&svc),
                    svc.clone(),
                    dep.id.clone(),
                    r.clone(),
                ));
            }
        }
    }
    (out, watch)
}

/// What the hook said: its status and reason, or why it could not be asked.
type Answer = Result<(String, String), String>;

async fn call(svc: &Service, deployment: &str, run: &HookRun) -> Answer {
    let details = svc
        .deployment_configuration
        .as_ref()
        .and_then(|d| {
            d.lifecycle_hooks
                .iter()
                .find(|h| h.hook_target_arn == run.url)
        })
        .map(|h| serde_json::from_str::<Value>(&h.hook_details).unwrap_or(Value::Null))
        .unwrap_or(Value::Null);
    let d = svc.deployments.iter().find(|d| d.id == deployment);
    let body = json!({
        "serviceArn": svc.service_arn,
        "clusterArn": svc.cluster_arn,
        "deploymentId": deployment,
        "lifecycleStage": run.stage,
        "step": run.step,
        "taskDefinition": d.map(|d| d.task_definition.clone()),
        "trafficPercent": d.map(|d| d.traffic_percent),
        "hookDetails": details,
    });
    match tokio::time::timeout(CALL_TIMEOUT, post(&run.url, body.to_string())).await {
        Ok(Ok((status, text))) if (200..300).contains(&status) => {
            let v: Value = serde_json::from_str(&text)
                .map_err(|_| format!("answered {status} without JSON: {:?}", short(&text)))?;
            let hook_status = v["hookStatus"].as_str().unwrap_or_default();
            match hook_status {
                "SUCCEEDED" | "FAILED" | "IN_PROGRESS" => Ok((
                    hook_status.to_string(),
                    v["reason"].as_str().unwrap_or_default().to_string(),
                )),
                other => Err(format!(
                    "hookStatus {other:?} is not SUCCEEDED, FAILED or IN_PROGRESS"
                )),
            }
        }
        Ok(Ok((status, text))) => Err(format!("answered {status}: {:?}", short(&text))),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(format!("no answer within {CALL_TIMEOUT:?}")),
    }
}

fn short(s: &str) -> &str {
    let end = s.char_indices().nth(200).map_or(s.len(), |(i, _)| i);
    s[..end].trim()
}

/// One POST over a fresh connection: the status and the body.
pub(crate) async fn post(url: &str, body: String) -> Result<(u16, String), String> {
    let uri: hyper::Uri = url.parse().map_err(|e| format!("{url:?}: {e}"))?;
    if uri.scheme_str() != Some("http") {
        return Err(format!("{url:?}: only http:// hooks are called"));
    }
    let host = uri.host().ok_or_else(|| format!("{url:?} has no host"))?;
    let port = uri.port_u16().unwrap_or(80);
    let stream = tokio::net::TcpStream::connect((host, port))
        .await
        .map_err(|e| format!("cannot connect: {e}"))?;
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .map_err(|e| format!("HTTP: {e}"))?;
    tokio::spawn(conn);
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let req = hyper::Request::post(path)
        .header(hyper::header::HOST, format!("{host}:{port}"))
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| e.to_string())?;
    let resp = sender
        .send_request(req)
        .await
        .map_err(|e| format!("HTTP: {e}"))?;
    let status = resp.status().as_u16();
    let bytes = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| format!("reading the answer: {e}"))?
        .to_bytes();
    Ok((status, String::from_utf8_lossy(&bytes).into_owned()))
}

/// Writes the answer onto the deployment's hook run, unless it has moved on meanwhile.
fn record(state: &State, key: &str, deployment: &str, run: &HookRun, answer: Answer) {
    let now = time::now_millis();
    let result = state.update(|tx| {
        let Some(mut svc) = tx.get::<Service>(key)? else {
            return Ok(((), Vec::new()));
        };
        let Some(r) = svc
            .deployments
            .iter_mut()
            .filter(|d| d.id == deployment)
            .flat_map(|d| d.hooks.iter_mut())
            .find(|r| r.stage == run.stage && r.step == run.step && r.url == run.url)
        else {
            return Ok(((), Vec::new()));
        };
        if matches!(r.status.as_str(), "SUCCEEDED" | "FAILED") {
            return Ok(((), Vec::new()));
        }
        r.calls += 1;
        r.called_at = time::rfc3339(now);
        match &answer {
            Ok((status, reason)) => {
                r.status = status.clone();
                r.reason = reason.clone();
            }
            Err(why) if r.calls >= MAX_UNREACHABLE => {
                r.status = "FAILED".into();
                r.reason = format!("not answered {MAX_UNREACHABLE} times: {why}");
            }
            Err(why) => {
                r.status = "UNREACHABLE".into();
                r.reason = why.clone();
            }
        }
        tracing::info!(hook = %r.url, stage = %r.stage, status = %r.status, reason = %r.reason, "lifecycle hook answered");
        Ok(((), vec![put(key.to_string(), &svc)]))
    });
    if let Err(e) = result {
        tracing::warn!(error = %e, "a lifecycle hook's answer not recorded; it is asked again");
    }
}
