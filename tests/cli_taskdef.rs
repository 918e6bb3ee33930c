//! The journey's first steps through the real binary: `berth dev`, clusters, task definitions,
//! and every validation rule as a user meets it (non-zero exit, the field named, nothing changed).

mod common;

use common::{berth, fixtures, ServerProcess};

#[test]
fn cluster_create_then_list_as_json_shows_it() {
    let data = tempfile::tempdir().unwrap();
    let dev = ServerProcess::start("dev", data.path());
    let r = berth(&dev.grpc, &["cluster", "create", "demo"]);
    assert!(r.ok, "{}", r.stderr);
    assert!(r.stdout.contains("demo"), "{}", r.stdout);
    let list = berth(&dev.grpc, &["cluster", "list", "-o", "json"]).json();
    let names: Vec<&str> = list["clusters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["clusterName"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["default", "demo"]);
    assert_eq!(list["clusters"][1]["status"], "ACTIVE");
    assert_eq!(
        list["clusters"][1]["clusterArn"],
        "arn:aws:ecs:us-east-1:000000000000:cluster/demo"
    );
    // Creating an existing name returns it; deleting works; describe of a missing one fails.
    assert!(berth(&dev.grpc, &["cluster", "create", "demo"]).ok);
    let del = berth(&dev.grpc, &["cluster", "delete", "demo", "-o", "json"]);
    assert!(del.ok, "{}", del.stderr);
    assert_eq!(del.json()["cluster"]["status"], "INACTIVE");
    let gone = berth(&dev.grpc, &["cluster", "describe", "nope"]);
    assert!(!gone.ok);
    assert!(
        gone.stderr.contains("ClusterNotFoundException"),
        "{}",
        gone.stderr
    );
    assert!(
        gone.stderr.contains("berth cluster create nope"),
        "{}",
        gone.stderr
    );
}

#[test]
fn a_console_export_registers_as_revision_1_then_2() {
    let data = tempfile::tempdir().unwrap();
    let dev = ServerProcess::start("dev", data.path());
    let file = fixtures().join("console-export.json");
    let file = file.to_str().unwrap();
    let first = berth(
        &dev.grpc,
        &["taskdef", "register", "-f", file, "-o", "json"],
    );
    assert!(first.ok, "{}", first.stderr);
    assert_eq!(first.json()["taskDefinition"]["revision"], 1);
    let ignored = first.json()["ignoredFields"].clone();
    for f in [
        "executionRoleArn",
        "requiresAttributes",
        "compatibilities",
        "tags",
    ] {
        assert!(
            ignored.as_array().unwrap().iter().any(|v| v == f),
            "{f} not listed as ignored: {ignored}"
        );
    }
    let second = berth(&dev.grpc, &["taskdef", "register", "-f", file]);
    assert!(second.ok, "{}", second.stderr);
    assert!(
        second.stdout.contains("registered web:2"),
        "{}",
        second.stdout
    );
    assert!(
        second.stderr.contains("executionRoleArn"),
        "{}",
        second.stderr
    );

    let d = berth(&dev.grpc, &["taskdef", "describe", "web", "-o", "json"]).json();
    let td = &d["taskDefinition"];
    assert_eq!(td["family"], "web");
    assert_eq!(td["revision"], 2);
    assert_eq!(td["status"], "ACTIVE");
    assert_eq!(
        td["taskDefinitionArn"],
        "arn:aws:ecs:us-east-1:000000000000:task-definition/web:2"
    );
    assert_eq!(td["cpu"], "256");
    assert_eq!(td["memory"], "512");
    assert_eq!(td["containerDefinitions"][0]["name"], "web");
    assert_eq!(td["containerDefinitions"][0]["essential"], true);
    assert_eq!(
        td["containerDefinitions"][0]["portMappings"][0]["containerPort"],
        80
    );

    // Deregistering the latest makes FAMILY resolve to the one before; revisions keep growing.
    assert!(berth(&dev.grpc, &["taskdef", "deregister", "web:2"]).ok);
    let d = berth(&dev.grpc, &["taskdef", "describe", "web", "-o", "json"]).json();
    assert_eq!(d["taskDefinition"]["revision"], 1);
    let inactive = berth(
        &dev.grpc,
        &["taskdef", "list", "--status", "INACTIVE", "-o", "json"],
    )
    .json();
    assert_eq!(inactive["taskDefinitions"].as_array().unwrap().len(), 1);
    let third = berth(
        &dev.grpc,
        &["taskdef", "register", "-f", file, "-o", "json"],
    );
    assert_eq!(third.json()["taskDefinition"]["revision"], 3);
    let old = berth(&dev.grpc, &["taskdef", "describe", "web:2", "-o", "json"]).json();
    assert_eq!(old["taskDefinition"]["status"], "INACTIVE");
}

#[test]
fn every_invalid_file_exits_non_zero_naming_the_field_and_changes_nothing() {
    let data = tempfile::tempdir().unwrap();
    let dev = ServerProcess::start("dev", data.path());
    let ok = fixtures().join("cli-input.json");
    assert!(
        berth(
            &dev.grpc,
            &["taskdef", "register", "-f", ok.to_str().unwrap()]
        )
        .ok
    );
    let before = berth(
        &dev.grpc,
        &["taskdef", "list", "--status", "ALL", "-o", "json"],
    )
    .stdout;

    let expected = std::fs::read_to_string(fixtures().join("invalid/EXPECTED.tsv")).unwrap();
    let mut checked = 0;
    for line in expected
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let (file, fragment) = line.split_once('\t').unwrap();
        let path = fixtures().join("invalid").join(file);
        let r = berth(
            &dev.grpc,
            &["taskdef", "register", "-f", path.to_str().unwrap()],
        );
        assert!(!r.ok, "{file} was accepted: {}", r.stdout);
        assert_eq!(r.code, Some(1), "{file}");
        assert!(
            r.stderr.contains(fragment),
            "{file}: expected {fragment:?} in {:?}",
            r.stderr
        );
        assert_eq!(
            r.stderr.trim().lines().count(),
            1,
            "{file}: one line: {}",
            r.stderr
        );
        checked += 1;
    }
    assert_eq!(checked, 21, "every fixture in invalid/ is checked");
    let after = berth(
        &dev.grpc,
        &["taskdef", "list", "--status", "ALL", "-o", "json"],
    )
    .stdout;
    assert_eq!(before, after, "a rejected registration changed the list");
}

#[test]
fn an_unreachable_server_is_one_clear_line() {
    let r = berth("http://127.0.0.1:1", &["cluster", "list"]);
    assert!(!r.ok);
    assert!(
        r.stderr
            .contains("cannot reach the Berth server at http://127.0.0.1:1"),
        "{}",
        r.stderr
    );
}
