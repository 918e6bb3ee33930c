//! Nothing registered is dropped in silence: every task definition under tests/fixtures/ and
//! deploy/examples/ (and the ECS documentation's kinds of definition in tests/fixtures/ecs-docs/)
//! is registered through the real aws CLI, described, and its description registered again; the
//! two descriptions are equal apart from revision, ARN and registration time, and the first holds
//! every field the file gave. The same holds through `berth taskdef register` and `describe`.

mod common;

use common::aws::*;
use common::*;
use serde_json::{json, Map, Value};
use std::path::{Path, PathBuf};

/// Every valid task definition file the repository ships: (name, definition JSON).
fn definitions() -> Vec<(String, Value)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut files: Vec<PathBuf> = Vec::new();
    for dir in [
        "tests/fixtures",
        "tests/fixtures/ecs-docs",
        "deploy/examples",
    ] {
        for e in std::fs::read_dir(root.join(dir)).unwrap() {
            let p = e.unwrap().path();
            if p.is_file() {
                files.push(p);
            }
        }
    }
    files.sort();
    let mut out = Vec::new();
    for p in files {
        let text = std::fs::read_to_string(&p).unwrap();
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        match p.extension().and_then(|e| e.to_str()) {
            Some("json") => out.push((name, serde_json::from_str(&text).unwrap())),
            // A stack file: its task definitions, each on its own.
            Some("yaml") => {
                let stack: Value = serde_saphyr::from_str(&text).unwrap();
                for (i, td) in stack["taskDefinitions"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
                    .into_iter()
                    .enumerate()
                {
                    out.push((format!("{name}#taskDefinitions[{i}]"), td));
                }
            }
            _ => {}
        }
    }
    assert!(out.len() >= 8, "fixtures found: {}", out.len());
    out
}

/// RegisterTaskDefinition's request members, from botocore's ECS model.
fn register_members() -> Vec<String> {
    let out = std::process::Command::new(venv().join("bin/python3"))
        .args([
            "-c",
            "import json, botocore.session\n\
             m = botocore.session.get_session().get_service_model('ecs')\n\
             print(json.dumps(list(m.operation_model('RegisterTaskDefinition').input_shape.members)))",
        ])
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// What a user would hand to `register-task-definition --cli-input-json`: the definition's
/// request members only (a description's ARN, revision and status are not input).
fn as_input(td: &Value, members: &[String]) -> Value {
    let m: Map<String, Value> = td
        .as_object()
        .unwrap()
        .iter()
        .filter(|(k, v)| members.contains(k) && !v.is_null() && k.as_str() != "tags")
        .map(|(k, v)| (k.clone(), without_nulls(v.clone())))
        .collect();
    Value::Object(m)
}

/// The aws CLI refuses `null` for a structure, so a user's input leaves such fields out.
fn without_nulls(v: Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.into_iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k, without_nulls(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.into_iter().map(without_nulls).collect()),
        other => other,
    }
}

/// The paths where `given` has a value `described` does not hold. Task-level cpu and memory are
/// normalised to units ("1 vCPU" is "1024") and compared by their presence only.
fn missing(given: &Value, described: &Value, path: &str, out: &mut Vec<String>) {
    match (given, described) {
        (Value::Object(g), Value::Object(d)) => {
            for (k, v) in g {
                if v.is_null() {
                    continue;
                }
                let p = format!("{path}.{k}");
                match d.get(k) {
                    Some(_) if normalised(path, k) => {}
                    Some(dv) => missing(v, dv, &p, out),
                    None => out.push(p),
                }
            }
        }
        (Value::Array(g), Value::Array(d)) => {
            for (i, v) in g.iter().enumerate() {
                match d.get(i) {
                    Some(dv) => missing(v, dv, &format!("{path}[{i}]"), out),
                    None => out.push(format!("{path}[{i}]")),
                }
            }
        }
        (g, d) if g == d => {}
        (g, d) => out.push(format!("{path}: gave {g}, described {d}")),
    }
}

/// Values Berth normalises, with a warning at registration: task-level cpu and memory become
/// units ("1 vCPU" is "1024"), and awsvpc runs as bridge with ports mapped dynamically.
fn normalised(path: &str, key: &str) -> bool {
    (path.is_empty() && matches!(key, "cpu" | "memory" | "networkMode"))
        || (key == "hostPort" && path.contains(".portMappings["))
}

fn without_identity(mut td: Value) -> Value {
    let m = td.as_object_mut().unwrap();
    // Events carry their time; what they say is checked on its own.
    for k in [
        "revision",
        "taskDefinitionArn",
        "registeredAt",
        "registeredBy",
        "events",
    ] {
        m.remove(k);
    }
    td
}

fn write(dir: &Path, name: &str, v: &Value) -> PathBuf {
    let p = dir.join(name.replace(['#', '[', ']'], "_"));
    std::fs::write(&p, serde_json::to_vec_pretty(v).unwrap()).unwrap();
    p
}

fn aws_register(http: &str, file: &Path) -> Value {
    let arg = format!("file://{}", file.display());
    aws_ok(
        http,
        &Creds::default(),
        &["register-task-definition", "--cli-input-json", &arg],
    )["taskDefinition"]
        .clone()
}

fn aws_describe(http: &str, arn: &str) -> Value {
    aws_ok(
        http,
        &Creds::default(),
        &["describe-task-definition", "--task-definition", arn],
    )["taskDefinition"]
        .clone()
}

#[test]
fn describe_gives_back_every_registered_field_and_registers_to_the_same_definition() {
    let data = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let srv = ServerProcess::start_logging(
        "server",
        data.path(),
        &["--listen", "127.0.0.1:0", "--insecure", "--no-proxy"],
        "info",
    );
    let members = register_members();
    for (name, td) in definitions() {
        let input = as_input(&td, &members);
        let reg = aws_register(&srv.http, &write(work.path(), &name, &input));
        let first = aws_describe(&srv.http, reg["taskDefinitionArn"].as_str().unwrap());
        let mut lost = Vec::new();
        missing(&input, &first, "", &mut lost);
        assert!(
            lost.is_empty(),
            "{name}: described without {lost:?}:\n{first:#}"
        );

        let again = as_input(&first, &members);
        let reg2 = aws_register(&srv.http, &write(work.path(), &format!("{name}.2"), &again));
        assert_eq!(reg2["revision"], reg["revision"].as_i64().unwrap() + 1);
        let second = aws_describe(&srv.http, reg2["taskDefinitionArn"].as_str().unwrap());
        assert_eq!(
            without_identity(first.clone()),
            without_identity(second),
            "{name}: the description registered again describes differently"
        );
    }

    // The JSON API describes the same fields (merged, not as a blob).
    let body = json!({"taskDefinition": "docs-web-server:1"}).to_string();
    let a = common::http::exchange(
        &srv.http,
        "POST",
        "/api/v1/TaskDefinitions/DescribeTaskDefinition",
        &[("Content-Type", "application/json")],
        body.as_bytes(),
        std::time::Duration::from_secs(10),
    )
    .unwrap();
    assert_eq!(a.status, 200, "{}", a.body);
    let v: Value = serde_json::from_str(&a.body).unwrap();
    let td = &v["taskDefinition"];
    assert_eq!(td["runtimePlatform"]["cpuArchitecture"], "X86_64", "{v:#}");
    assert_eq!(
        td["containerDefinitions"][0]["portMappings"][0]["appProtocol"],
        "http"
    );
    assert!(td.get("unmodeledJson").is_none(), "{v:#}");

    // One log line a registration names what is kept but not acted on.
    let lines = srv.output.lock().unwrap().clone();
    let noted = lines
        .iter()
        .filter(|l| l.contains("stores but does not act on") && l.contains("docs-web-server"))
        .count();
    assert_eq!(noted, 2, "{lines:#?}");
    assert!(
        lines
            .iter()
            .any(|l| l.contains("runtimePlatform") && l.contains("taskRoleArn")),
        "{lines:#?}"
    );
}

#[test]
fn the_cli_describes_every_registered_field_and_registers_its_description_again() {
    let data = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let srv = ServerProcess::start_with("server", data.path(), &["--insecure", "--no-proxy"]);
    for (name, td) in definitions() {
        let file = write(work.path(), &name, &td);
        let reg = berth(
            &srv.grpc,
            &[
                "taskdef",
                "register",
                "-f",
                file.to_str().unwrap(),
                "-o",
                "json",
            ],
        );
        assert!(reg.ok, "{name}: {}", reg.stderr);
        let arn = reg.json()["taskDefinition"]["taskDefinitionArn"]
            .as_str()
            .unwrap()
            .to_string();
        let describe = |arn: &str| {
            let d = berth(&srv.grpc, &["taskdef", "describe", arn, "-o", "json"]);
            assert!(d.ok, "{}", d.stderr);
            d.json()
        };
        let first = describe(&arn);
        assert!(
            first["taskDefinition"].get("unmodeledJson").is_none(),
            "{first:#}"
        );
        let mut given = td.clone();
        for k in [
            "tags",
            "revision",
            "taskDefinitionArn",
            "status",
            "registeredAt",
        ] {
            given.as_object_mut().unwrap().remove(k);
        }
        // The CLI leaves out what is empty, as ECS does.
        let mut lost = Vec::new();
        missing(&prune_empty(given), &first["taskDefinition"], "", &mut lost);
        lost.retain(|p| {
            !p.starts_with(".requiresAttributes") && !p.starts_with(".compatibilities")
        });
        assert!(
            lost.is_empty(),
            "{name}: described without {lost:?}:\n{first:#}"
        );

        if name == "web-server.json" {
            let event = first["taskDefinition"]["events"][0]["message"]
                .as_str()
                .unwrap_or("");
            assert!(
                event.starts_with("Berth stores but does not act on: ")
                    && event.contains("runtimePlatform")
                    && event.contains("taskRoleArn"),
                "{first:#}"
            );
        }
        let file2 = write(work.path(), &format!("{name}.cli2"), &first);
        let reg2 = berth(
            &srv.grpc,
            &[
                "taskdef",
                "register",
                "-f",
                file2.to_str().unwrap(),
                "-o",
                "json",
            ],
        );
        assert!(reg2.ok, "{name}: {}", reg2.stderr);
        let arn2 = reg2.json()["taskDefinition"]["taskDefinitionArn"]
            .as_str()
            .unwrap()
            .to_string();
        let second = describe(&arn2);
        assert_eq!(
            without_identity(first["taskDefinition"].clone()),
            without_identity(second["taskDefinition"].clone()),
            "{name}"
        );
    }
}

fn prune_empty(v: Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.into_iter()
                .filter(|(_, v)| !is_empty(v))
                .map(|(k, v)| (k, prune_empty(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.into_iter().map(prune_empty).collect()),
        other => other,
    }
}

fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(m) => m.is_empty(),
        _ => false,
    }
}
