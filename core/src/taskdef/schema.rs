//! The shape of an ECS task definition's JSON as Berth models it: each key with its kind, the
//! schema both the decoder and the kept unmodelled fields walk.

use serde_json::Value;

#[derive(Clone, Copy)]
pub(super) enum Kind {
    Str,
    Int,
    Bool,
    StrList,
    IntList,
    StrMap,
    /// Task-level cpu / memory: ECS takes "256", "1 vCPU", "1GB" or a bare number.
    StrOrInt,
    Obj(&'static [(&'static str, Kind)]),
    ObjList(&'static [(&'static str, Kind)]),
}

use Kind::*;

const KEY_VALUE: &[(&str, Kind)] = &[("name", Str), ("value", Str)];
const PORT_MAPPING: &[(&str, Kind)] = &[
    ("containerPort", Int),
    ("hostPort", Int),
    ("protocol", Str),
    ("name", Str),
];
const HEALTH_CHECK: &[(&str, Kind)] = &[
    ("command", StrList),
    ("interval", Int),
    ("timeout", Int),
    ("retries", Int),
    ("startPeriod", Int),
];
const MOUNT_POINT: &[(&str, Kind)] = &[
    ("sourceVolume", Str),
    ("containerPath", Str),
    ("readOnly", Bool),
];
const VOLUME_FROM: &[(&str, Kind)] = &[("sourceContainer", Str), ("readOnly", Bool)];
const HOST_VOLUME: &[(&str, Kind)] = &[("sourcePath", Str)];
const DOCKER_VOLUME: &[(&str, Kind)] = &[
    ("scope", Str),
    ("autoprovision", Bool),
    ("driver", Str),
    ("driverOpts", StrMap),
    ("labels", StrMap),
];
const VOLUME: &[(&str, Kind)] = &[
    ("name", Str),
    ("host", Obj(HOST_VOLUME)),
    ("dockerVolumeConfiguration", Obj(DOCKER_VOLUME)),
];
const SECRET: &[(&str, Kind)] = &[("name", Str), ("valueFrom", Str)];
const REPOSITORY_CREDENTIALS: &[(&str, Kind)] = &[("credentialsParameter", Str)];
const DEPENDENCY: &[(&str, Kind)] = &[("containerName", Str), ("condition", Str)];
const LOG_CONFIGURATION: &[(&str, Kind)] = &[("logDriver", Str), ("options", StrMap)];
const ULIMIT: &[(&str, Kind)] = &[("name", Str), ("softLimit", Int), ("hardLimit", Int)];
const CAPABILITIES: &[(&str, Kind)] = &[("add", StrList), ("drop", StrList)];
const DEVICE: &[(&str, Kind)] = &[
    ("hostPath", Str),
    ("containerPath", Str),
    ("permissions", StrList),
];
const TMPFS: &[(&str, Kind)] = &[
    ("containerPath", Str),
    ("size", Int),
    ("mountOptions", StrList),
];
const LINUX_PARAMETERS: &[(&str, Kind)] = &[
    ("capabilities", Obj(CAPABILITIES)),
    ("devices", ObjList(DEVICE)),
    ("initProcessEnabled", Bool),
    ("sharedMemorySize", Int),
    ("tmpfs", ObjList(TMPFS)),
    ("maxSwap", Int),
    ("swappiness", Int),
];
const HOST_ENTRY: &[(&str, Kind)] = &[("hostname", Str), ("ipAddress", Str)];
const SYSTEM_CONTROL: &[(&str, Kind)] = &[("namespace", Str), ("value", Str)];
const RESTART_POLICY: &[(&str, Kind)] = &[
    ("enabled", Bool),
    ("ignoredExitCodes", IntList),
    ("restartAttemptPeriod", Int),
];
const RESOURCE_REQUIREMENT: &[(&str, Kind)] = &[("type", Str), ("value", Str)];
const CONTAINER: &[(&str, Kind)] = &[
    ("name", Str),
    ("image", Str),
    ("cpu", Int),
    ("memory", Int),
    ("memoryReservation", Int),
    ("portMappings", ObjList(PORT_MAPPING)),
    ("essential", Bool),
    ("environment", ObjList(KEY_VALUE)),
    ("command", StrList),
    ("entryPoint", StrList),
    ("healthCheck", Obj(HEALTH_CHECK)),
    ("dependsOn", ObjList(DEPENDENCY)),
    ("stopTimeout", Int),
    ("workingDirectory", Str),
    ("user", Str),
    ("dockerLabels", StrMap),
    ("mountPoints", ObjList(MOUNT_POINT)),
    ("volumesFrom", ObjList(VOLUME_FROM)),
    ("secrets", ObjList(SECRET)),
    ("repositoryCredentials", Obj(REPOSITORY_CREDENTIALS)),
    ("links", StrList),
    ("logConfiguration", Obj(LOG_CONFIGURATION)),
    ("ulimits", ObjList(ULIMIT)),
    ("linuxParameters", Obj(LINUX_PARAMETERS)),
    ("readonlyRootFilesystem", Bool),
    ("extraHosts", ObjList(HOST_ENTRY)),
    ("dnsServers", StrList),
    ("dnsSearchDomains", StrList),
    ("hostname", Str),
    ("systemControls", ObjList(SYSTEM_CONTROL)),
    ("startTimeout", Int),
    ("interactive", Bool),
    ("pseudoTerminal", Bool),
    ("privileged", Bool),
    ("dockerSecurityOptions", StrList),
    ("restartPolicy", Obj(RESTART_POLICY)),
    ("resourceRequirements", ObjList(RESOURCE_REQUIREMENT)),
];
pub(super) const TASK_DEFINITION: &[(&str, Kind)] = &[
    ("family", Str),
    ("containerDefinitions", ObjList(CONTAINER)),
    ("cpu", StrOrInt),
    ("memory", StrOrInt),
    ("networkMode", Str),
    ("volumes", ObjList(VOLUME)),
    ("pidMode", Str),
    ("ipcMode", Str),
];

/// The paths of the unmodelled fields in a definition's stored rest (see `unmodeled`), found by
/// walking it beside the schema: a modelled key holds more rest, any other key is a field.
pub(super) fn rest_paths(rest: &Value) -> Vec<String> {
    let mut out = Vec::new();
    rest_paths_in(rest, TASK_DEFINITION, "", &mut out);
    out
}

fn rest_paths_in(v: &Value, schema: &[(&str, Kind)], path: &str, out: &mut Vec<String>) {
    let Value::Object(m) = v else { return };
    for (key, child) in m {
        let p = join(path, key);
        match (schema.iter().find(|(name, _)| name == key), child) {
            (Some((_, Obj(inner))), _) => rest_paths_in(child, inner, &p, out),
            (Some((_, ObjList(inner))), Value::Array(items)) => {
                for (i, item) in items.iter().enumerate() {
                    rest_paths_in(item, inner, &format!("{p}[{i}]"), out);
                }
            }
            _ => out.push(p),
        }
    }
}

pub(super) fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}
