//! Scheduled tasks on the real Docker engine under `berth dev`, driven by the real clients: an
//! `aws scheduler create-schedule` and an `aws events put-rule` + `put-targets`, both
//! `cron(* * * * ? *)`, each start their task within 5 s of the minute, exactly once per tick;
//! `ecs cron` (ecs-deploy) moves the rule to a new revision, which the next tick runs; and
//! `berth schedule describe` shows the runs and their tasks. Containers carry the test's
//! cluster label and are removed even when it fails.

mod common;

use common::aws::*;
use common::*;
use serde_json::{json, Value};
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// Sleeps until `at_ms` (epoch milliseconds).
fn sleep_until(at_ms: i64) {
    let left = at_ms - now_ms();
    if left > 0 {
        std::thread::sleep(Duration::from_millis(left as u64));
    }
}

/// The cluster's tasks (running and stopped), described by `aws ecs`.
fn tasks(http: &str, c: &Creds, cluster: &str) -> Vec<Value> {
    let mut all = Vec::new();
    for status in ["RUNNING", "STOPPED"] {
        let l = aws_ok(
            http,
            c,
            &[
                "list-tasks",
                "--cluster",
                cluster,
                "--desired-status",
                status,
            ],
        );
        let arns: Vec<String> = l["taskArns"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap().to_string())
            .collect();
        if arns.is_empty() {
            continue;
        }
        let mut args = vec!["describe-tasks", "--cluster", cluster, "--tasks"];
        args.extend(arns.iter().map(String::as_str));
        let d = aws_ok(http, c, &args);
        all.extend(d["tasks"].as_array().unwrap().iter().cloned());
    }
    all
}

fn started_by<'a>(all: &'a [Value], who: &str) -> Vec<&'a Value> {
    all.iter().filter(|t| t["startedBy"] == who).collect()
}

fn created_ms(t: &Value) -> i64 {
    (t["createdAt"]
        .as_f64()
        .unwrap_or_else(|| panic!("createdAt: {t}"))
        * 1000.0) as i64
}

/// Waits (bounded) until `who` has `n` tasks, then checks the newest was created within 5 s
/// of `tick_ms` and reached RUNNING; returns it.
fn check_tick(
    dev: &ServerProcess,
    c: &Creds,
    cluster: &str,
    who: &str,
    n: usize,
    tick_ms: i64,
) -> Value {
    let http = dev.http.as_str();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let newest = loop {
        let all = tasks(http, c, cluster);
        let mine = started_by(&all, who);
        if mine.len() >= n {
            assert_eq!(
                mine.len(),
                n,
                "{who}: one task per tick, no more: {mine:#?}"
            );
            break mine
                .iter()
                .max_by_key(|t| created_ms(t))
                .map(|t| (*t).clone())
                .unwrap();
        }
        if std::time::Instant::now() > deadline {
            let shown = berth(&dev.grpc, &["schedule", "list", "-o", "json"]);
            panic!(
                "{who}: {} of {n} tasks 20 s after the tick\nschedules: {}\nlog: {}",
                mine.len(),
                shown.stdout,
                dev.log()
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let late = created_ms(&newest) - tick_ms;
    assert!(
        (0..=5_000).contains(&late),
        "{who}: created {late} ms after the tick: {newest}"
    );
    assert_eq!(newest["group"], "family:cron-job", "{newest}");
    let arn = newest["taskArn"].as_str().unwrap().to_string();
    aws_ok(
        http,
        c,
        &[
            "wait",
            "tasks-running",
            "--cluster",
            cluster,
            "--tasks",
            &arn,
        ],
    );
    let d = aws_ok(
        http,
        c,
        &["describe-tasks", "--cluster", cluster, "--tasks", &arn],
    );
    let started = (d["tasks"][0]["startedAt"].as_f64().unwrap() * 1000.0) as i64;
    assert!(
        started - tick_ms <= 5_000,
        "{who}: running {} ms after the tick",
        started - tick_ms
    );
    newest
}

#[test]
fn schedules_and_rules_run_their_task_once_per_tick() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = unique_cluster("cron");
    let _cleanup = ContainerCleanup {
        cluster: cluster.clone(),
    };
    let dev = ServerProcess::start_with("dev", dir.path(), FAST);
    let http = dev.http.as_str();
    let c = Creds::default();
    let cl = cluster.as_str();
    let created = aws_ok(http, &c, &["create-cluster", "--cluster-name", cl]);
    let cluster_arn = created["cluster"]["clusterArn"]
        .as_str()
        .unwrap()
        .to_string();
    let def = json!({"family": "cron-job", "containerDefinitions": [{
        "name": "job", "image": "berth-demo:latest", "memory": 32, "essential": true,
        "environment": [{"name": "MESSAGE", "value": "one"}], "stopTimeout": 2}]});
    let file = dir.path().join("job.json");
    std::fs::write(&file, def.to_string()).unwrap();
    let reg = aws_ok(
        http,
        &c,
        &[
            "register-task-definition",
            "--cli-input-json",
            &format!("file://{}", file.display()),
        ],
    );
    let td1 = reg["taskDefinition"]["taskDefinitionArn"]
        .as_str()
        .unwrap()
        .to_string();

    // Both are set up well before a minute's tick, so that tick is the first either owes.
    if now_ms() % 60_000 > 45_000 {
        sleep_until(now_ms() / 60_000 * 60_000 + 61_000);
    }
    let target = json!({
        "Arn": cluster_arn, "RoleArn": "arn:aws:iam::000000000000:role/ecsEvents",
        "EcsParameters": {"TaskDefinitionArn": td1, "TaskCount": 1, "LaunchType": "EC2"}
    });
    let s = aws_for(
        "scheduler",
        http,
        &c,
        &[
            "create-schedule",
            "--name",
            "every-minute",
            "--schedule-expression",
            "cron(* * * * ? *)",
            "--schedule-expression-timezone",
            "Europe/Paris",
            "--flexible-time-window",
            "Mode=OFF",
            "--target",
            &target.to_string(),
        ],
    );
    assert!(s.ok, "{}{}", s.stdout, s.stderr);
    let events = |args: &[&str]| {
        let r = aws_for("events", http, &c, args);
        assert!(
            r.ok,
            "aws events {}: {}{}",
            args.join(" "),
            r.stdout,
            r.stderr
        );
        if r.stdout.trim().is_empty() {
            Value::Null
        } else {
            r.json()
        }
    };
    events(&[
        "put-rule",
        "--name",
        "nightly",
        "--schedule-expression",
        "cron(* * * * ? *)",
    ]);
    let mut rule_target = target.clone();
    rule_target["Id"] = json!("job");
    let put = events(&[
        "put-targets",
        "--rule",
        "nightly",
        "--targets",
        &json!([rule_target]).to_string(),
    ]);
    assert_eq!(put["FailedEntryCount"], 0, "{put}");
    // The rule's tags, and a target id it does not have, answer as EventBridge's do.
    let arn = events(&["describe-rule", "--name", "nightly"])["Arn"]
        .as_str()
        .expect("the rule's Arn")
        .to_string();
    events(&[
        "tag-resource",
        "--resource-arn",
        &arn,
        "--tags",
        "Key=team,Value=ops",
    ]);
    let listed = events(&["list-tags-for-resource", "--resource-arn", &arn]);
    assert_eq!(
        listed["Tags"],
        json!([{"Key": "team", "Value": "ops"}]),
        "{listed}"
    );
    events(&[
        "untag-resource",
        "--resource-arn",
        &arn,
        "--tag-keys",
        "team",
    ]);
    let listed = events(&["list-tags-for-resource", "--resource-arn", &arn]);
    assert_eq!(listed["Tags"], json!([]), "{listed}");
    let removed = events(&["remove-targets", "--rule", "nightly", "--ids", "nope"]);
    assert_eq!(removed["FailedEntryCount"], 1, "{removed}");
    assert_eq!(
        removed["FailedEntries"][0]["ErrorCode"], "ResourceNotFoundException",
        "{removed}"
    );
    let tick1 = now_ms() / 60_000 * 60_000 + 60_000;
    assert!(
        tasks(http, &c, cl).is_empty(),
        "nothing runs before the tick"
    );

    sleep_until(tick1);
    check_tick(&dev, &c, cl, "chronos-schedule/every-minute", 1, tick1);
    let r1 = check_tick(&dev, &c, cl, "events-rule/nightly", 1, tick1);
    assert_eq!(r1["taskDefinitionArn"], td1.as_str());

    // ecs-deploy's `ecs cron`: a new revision (new environment), and the rule's target on it;
    // revision 1 stays active for the schedule that still names it.
    let mut ecs_cron = Command::new(venv().join("bin/ecs"));
    let (url, _) = http_url(http);
    ecs_cron
        .args([
            "cron",
            cl,
            "cron-job",
            "nightly",
            "-e",
            "job",
            "MESSAGE",
            "two",
            "--no-deregister",
        ])
        .env("AWS_ACCESS_KEY_ID", &c.key_id)
        .env("AWS_SECRET_ACCESS_KEY", &c.secret)
        .env("AWS_DEFAULT_REGION", &c.region)
        .env("AWS_ENDPOINT_URL", &url)
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null");
    let out = ecs_cron.output().expect("run ecs cron");
    assert!(
        out.status.success(),
        "ecs cron: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let listed = events(&["list-targets-by-rule", "--rule", "nightly"]);
    let td2 = listed["Targets"][0]["EcsParameters"]["TaskDefinitionArn"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(td2.ends_with("cron-job:2"), "{listed}");

    let tick2 = tick1 + 60_000;
    assert!(
        now_ms() < tick2 - 2_000,
        "ecs cron finished before the next tick"
    );
    sleep_until(tick2);
    check_tick(&dev, &c, cl, "chronos-schedule/every-minute", 2, tick2);
    let r2 = check_tick(&dev, &c, cl, "events-rule/nightly", 2, tick2);
    assert_eq!(
        r2["taskDefinitionArn"],
        td2.as_str(),
        "the next tick runs the new revision"
    );

    // What the CLI shows: next runs, and the last runs with their tasks.
    let d = berth(
        &dev.grpc,
        &["schedule", "describe", "nightly", "-o", "json"],
    );
    assert!(d.ok, "{}", d.stderr);
    let v = &d.json()["schedules"][0];
    assert_eq!(v["runs"].as_array().unwrap().len(), 2, "{v}");
    assert_eq!(v["runs"][0]["tasks"][0]["taskArn"], r2["taskArn"], "{v}");
    assert_eq!(v["runs"][0]["tasks"][0]["lastStatus"], "RUNNING", "{v}");
    assert!(!v["nextRuns"].as_array().unwrap().is_empty(), "{v}");
    let table = berth(&dev.grpc, &["schedule", "list"]);
    assert!(
        table.stdout.contains("every-minute") && table.stdout.contains("RUNNING"),
        "{}",
        table.stdout
    );

    // Disabled: the next tick starts nothing.
    events(&["disable-rule", "--name", "nightly"]);
    let g = aws_for(
        "scheduler",
        http,
        &c,
        &["delete-schedule", "--name", "every-minute"],
    );
    assert!(g.ok, "{}", g.stderr);
    sleep_until(tick2 + 61_000);
    let all = tasks(http, &c, cl);
    assert_eq!(started_by(&all, "events-rule/nightly").len(), 2);
    assert_eq!(started_by(&all, "chronos-schedule/every-minute").len(), 2);
}
