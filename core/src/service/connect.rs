//! A service's `serviceConnectConfiguration`, checked against its task definition the way ECS
//! checks it: every `portName` names a port mapping of the definition, aliases are ports 1-65535
//! with DNS-style names, no two aliases of the service claim the same name and port, a `tcp`
//! port takes no per-request timeout, and a service that offers ports needs a namespace (its own
//! or the cluster's `serviceConnectDefaults`). Each error names the field and says the fix.
//!
//! Pure: the caller hands in the JSON as sent and the definition; nothing here reads the store.

use crate::error::FieldError;
use berth_proto::v1::TaskDefinition;
use serde_json::{Map, Value};

const ROOT: &str = "serviceConnectConfiguration";

/// A named port mapping of a task definition and its `appProtocol` (empty: tcp).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamedPort {
    pub name: String,
    pub container: String,
    pub container_port: i32,
    pub app_protocol: String,
}

/// One client alias a Service Connect service offers: `dns_name:port` reaches its `port_name`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alias {
    pub port_name: String,
    pub discovery_name: String,
    pub dns_name: String,
    pub port: i32,
    /// http, http2, grpc, or tcp.
    pub app_protocol: String,
}

/// What a valid configuration means.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Checked {
    pub enabled: bool,
    pub namespace: String,
    pub aliases: Vec<Alias>,
}

/// The definition's named port mappings, with the `appProtocol` kept in its unmodelled JSON.
pub fn named_ports(td: &TaskDefinition) -> Vec<NamedPort> {
    let rest: Value = serde_json::from_str(&td.unmodeled_json).unwrap_or(Value::Null);
    let mut out = Vec::new();
    for (ci, c) in td.container_definitions.iter().enumerate() {
        for (pi, p) in c.port_mappings.iter().enumerate() {
            if p.name.is_empty() {
                continue;
            }
            let app = rest["containerDefinitions"][ci]["portMappings"][pi]["appProtocol"]
                .as_str()
                .unwrap_or("tcp");
            out.push(NamedPort {
                name: p.name.clone(),
                container: c.name.clone(),
                container_port: p.container_port,
                app_protocol: app.to_string(),
            });
        }
    }
    out
}

/// A DNS label sequence: 1-253 characters, letters, digits, hyphens and dots, no label empty or
/// starting or ending with a hyphen.
fn dns_name(name: &str) -> bool {
    (1..=253).contains(&name.len())
        && name.split('.').all(|l| {
            (1..=63).contains(&l.len())
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        })
}

fn keys(errs: &mut Vec<FieldError>, at: &str, m: &Map<String, Value>, allowed: &[&str]) {
    for k in m.keys().filter(|k| !allowed.contains(&k.as_str())) {
        errs.push(FieldError::new(
            format!("{at}.{k}"),
            format!(
                "is not a field of it; the fields are {}",
                allowed.join(", ")
            ),
        ));
    }
}

fn port(errs: &mut Vec<FieldError>, at: &str, v: &Value) -> Option<i32> {
    match v.as_i64() {
        Some(p) if (1..=65535).contains(&p) => Some(p as i32),
        _ => {
            errs.push(FieldError::new(at, format!("{v} must be a port, 1-65535")));
            None
        }
    }
}

/// Checks `config` (the JSON as sent) against `td`. `cluster_namespace`: the cluster's
/// `serviceConnectDefaults.namespace`, used when the configuration names none.
pub fn check(
    config: &Value,
    td: &TaskDefinition,
    cluster_namespace: &str,
) -> Result<Checked, Vec<FieldError>> {
    let mut errs = Vec::new();
    let Some(m) = config.as_object() else {
        return Err(vec![FieldError::new(ROOT, "must be an object")]);
    };
    let (enabled, namespace, services) = top_level(&mut errs, m, cluster_namespace);
    let ports = named_ports(td);
    let mut aliases: Vec<Alias> = Vec::new();
    for (i, s) in services.iter().enumerate() {
        let at = format!("{ROOT}.services[{i}]");
        service_entry(&mut errs, &at, s, &ports, &mut aliases);
    }
    if !errs.is_empty() {
        return Err(errs);
    }
    Ok(Checked {
        enabled,
        namespace,
        aliases,
    })
}

/// The configuration's own fields: whether it is enabled, its namespace (the cluster's when it
/// names none) and its services, each required where the others need it.
fn top_level(
    errs: &mut Vec<FieldError>,
    m: &Map<String, Value>,
    cluster_namespace: &str,
) -> (bool, String, Vec<Value>) {
    keys(
        errs,
        ROOT,
        m,
        &["enabled", "namespace", "services", "logConfiguration"],
    );
    let enabled = match m.get("enabled") {
        Some(Value::Bool(b)) => *b,
        _ => {
            errs.push(FieldError::new(
                format!("{ROOT}.enabled"),
                "is required: true or false",
            ));
            false
        }
    };
    let namespace = match m.get("namespace") {
        None => cluster_namespace.to_string(),
        Some(Value::String(s)) if !s.trim().is_empty() => s.trim().to_string(),
        Some(v) => {
            errs.push(FieldError::new(
                format!("{ROOT}.namespace"),
                format!("{v} must be a namespace name or ARN"),
            ));
            String::new()
        }
    };
    let services = list(errs, &format!("{ROOT}.services"), m.get("services"));
    if !services.is_empty() && !enabled {
        errs.push(FieldError::new(
            format!("{ROOT}.services"),
            "are given but enabled is false; set enabled to true, or drop services",
        ));
    }
    if enabled && namespace.is_empty() {
        errs.push(FieldError::new(
            format!("{ROOT}.namespace"),
            "is required: name the namespace, or set the cluster's serviceConnectDefaults.namespace",
        ));
    }
    (enabled, namespace, services)
}

/// The list at `at` (none: empty); anything else is named.
fn list(errs: &mut Vec<FieldError>, at: &str, v: Option<&Value>) -> Vec<Value> {
    match v {
        None => Vec::new(),
        Some(Value::Array(a)) => a.clone(),
        Some(_) => {
            errs.push(FieldError::new(at, "must be a list"));
            Vec::new()
        }
    }
}

/// One entry of `services`: the named port it serves, its discovery name, its timeouts, and
/// its client aliases (added to `aliases`, each name and port once).
fn service_entry(
    errs: &mut Vec<FieldError>,
    at: &str,
    s: &Value,
    ports: &[NamedPort],
    aliases: &mut Vec<Alias>,
) {
    let Some(s) = s.as_object() else {
        errs.push(FieldError::new(at, "must be an object"));
        return;
    };
    keys(
        errs,
        at,
        s,
        &[
            "portName",
            "discoveryName",
            "clientAliases",
            "ingressPortOverride",
            "timeout",
            "tls",
        ],
    );
    let port_name = s.get("portName").and_then(Value::as_str).unwrap_or("");
    let Some(named) = ports.iter().find(|p| p.name == port_name) else {
        let known: Vec<&str> = ports.iter().map(|p| p.name.as_str()).collect();
        errs.push(FieldError::new(
            format!("{at}.portName"),
            if known.is_empty() {
                format!("{port_name:?} names no port mapping: the task definition names none; give a portMappings entry a name")
            } else {
                format!("{port_name:?} names no port mapping of the task definition; use one of {}", known.join(", "))
            },
        ));
        return;
    };
    let discovery = match s.get("discoveryName") {
        None => port_name.to_string(),
        Some(Value::String(d)) if dns_name(d) && d.len() <= 64 => d.clone(),
        Some(v) => {
            errs.push(FieldError::new(
                format!("{at}.discoveryName"),
                format!("{v} must be 1-64 letters, digits, hyphens and dots"),
            ));
            return;
        }
    };
    if let Some(v) = s.get("ingressPortOverride") {
        port(errs, &format!("{at}.ingressPortOverride"), v);
    }
    if let Some(t) = s.get("timeout") {
        timeout(errs, &format!("{at}.timeout"), t, named);
    }
    let given = list(errs, &format!("{at}.clientAliases"), s.get("clientAliases"));
    for (j, a) in given.iter().enumerate() {
        let at = format!("{at}.clientAliases[{j}]");
        if let Some(alias) = client_alias(errs, &at, a, named, &discovery, aliases) {
            aliases.push(alias);
        }
    }
}

/// `timeout`: whole seconds, and no per-request timeout on a TCP port (it has no requests).
fn timeout(errs: &mut Vec<FieldError>, at: &str, t: &Value, named: &NamedPort) {
    let Some(t) = t.as_object() else {
        errs.push(FieldError::new(at, "must be an object"));
        return;
    };
    keys(
        errs,
        at,
        t,
        &["idleTimeoutSeconds", "perRequestTimeoutSeconds"],
    );
    for (k, v) in t {
        if !v.as_i64().is_some_and(|n| (0..=2_147_483_647).contains(&n)) {
            errs.push(FieldError::new(
                format!("{at}.{k}"),
                format!("{v} must be a whole number of seconds, 0 or more"),
            ));
        }
    }
    if t.contains_key("perRequestTimeoutSeconds") && named.app_protocol == "tcp" {
        errs.push(FieldError::new(
            format!("{at}.perRequestTimeoutSeconds"),
            format!("port {} is tcp (its appProtocol): TCP has no requests to time; use idleTimeoutSeconds or set appProtocol to http, http2 or grpc", named.name),
        ));
    }
}

/// One client alias of the service's entry for port `named`: its port (required) and DNS name
/// (the discovery name by default); None, with the field named, when it is not one, or when
/// `earlier` already holds that name and port.
fn client_alias(
    errs: &mut Vec<FieldError>,
    at: &str,
    a: &Value,
    named: &NamedPort,
    discovery: &str,
    earlier: &[Alias],
) -> Option<Alias> {
    let Some(a) = a.as_object() else {
        errs.push(FieldError::new(at, "must be an object"));
        return None;
    };
    keys(errs, at, a, &["port", "dnsName", "testTrafficRules"]);
    let p = match a.get("port") {
        None => {
            errs.push(FieldError::new(
                format!("{at}.port"),
                "is required: the port clients call",
            ));
            None
        }
        Some(v) => port(errs, &format!("{at}.port"), v),
    }?;
    let dns = match a.get("dnsName") {
        None => discovery.to_string(),
        Some(Value::String(d)) if dns_name(d) => d.clone(),
        Some(v) => {
            errs.push(FieldError::new(
                format!("{at}.dnsName"),
                format!("{v} must be a DNS name: letters, digits, hyphens, dots"),
            ));
            return None;
        }
    };
    if earlier.iter().any(|x| x.dns_name == dns && x.port == p) {
        errs.push(FieldError::new(
            at,
            format!("{dns}:{p} is already an alias of this service; give each alias its own name or port"),
        ));
        return None;
    }
    Some(Alias {
        port_name: named.name.clone(),
        discovery_name: discovery.to_string(),
        dns_name: dns,
        port: p,
        app_protocol: named.app_protocol.clone(),
    })
}

/// A TCP alias needs its port to itself on every node (nothing tells TCP connections apart by
/// name); HTTP aliases share a port, told apart by their Host. The first clash between `mine`
/// and another service's aliases (`theirs`: service name and its aliases), as the field to fix.
pub fn port_clash(mine: &[Alias], theirs: &[(String, Vec<Alias>)]) -> Option<FieldError> {
    let http = |a: &Alias| a.app_protocol != "tcp";
    for (i, a) in mine.iter().enumerate() {
        for (service, others) in theirs {
            for o in others.iter().filter(|o| o.port == a.port) {
                if http(a) && http(o) && o.dns_name != a.dns_name {
                    continue;
                }
                return Some(FieldError::new(
                    format!("{ROOT}.services clientAliases port {}", a.port),
                    format!(
                        "alias #{i} {}:{} clashes with service {service}'s alias {}:{}; {}",
                        a.dns_name,
                        a.port,
                        o.dns_name,
                        o.port,
                        if http(a) && http(o) {
                            "two services cannot answer the same name; pick another dnsName"
                        } else {
                            "a tcp alias needs its port to itself on every node; pick another port"
                        }
                    ),
                ));
            }
        }
    }
    None
}

#[cfg(test)]
#[path = "connect_tests.rs"]
mod tests;
