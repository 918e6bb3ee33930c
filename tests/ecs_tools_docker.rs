//! Real ECS clients, unchanged, against `berth dev` on the real Docker engine: ecs-deploy's
//! `ecs deploy` (a new image tag and environment variable, waited for), `ecs scale` and
//! `ecs run`, each checked through the API; and an Ansible playbook of community.aws's
//! ecs_cluster, ecs_taskdefinition and ecs_service, whose second run changes nothing. Clients
//! reach Berth through `AWS_ENDPOINT_URL_ECS` (ecs-deploy) and `endpoint_url` (Ansible).

mod common;

use common::aws::*;
use common::*;
use serde_json::{json, Value};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

static SERIAL: Mutex<()> = Mutex::new(());

/// `berth dev` with a cluster of its own, as `DevEnv`, but with a heartbeat timeout long enough
/// that a loaded test machine never loses the node mid-deployment: ecs-deploy reads any
/// "unable to place" event as a failed deployment, as it would on ECS.
struct Env {
    dev: ServerProcess,
    cluster: String,
    dir: tempfile::TempDir,
    _cleanup: ContainerCleanup,
    _serial: std::sync::MutexGuard<'static, ()>,
}

impl Env {
    fn start(prefix: &str) -> Self {
        let serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
        let dir = tempfile::tempdir().unwrap();
        let cluster = unique_cluster(prefix);
        let cleanup = ContainerCleanup {
            cluster: cluster.clone(),
        };
        let mut flags: Vec<&str> = FAST.to_vec();
        if let Some(i) = flags.iter().position(|f| *f == "--heartbeat-timeout") {
            flags[i + 1] = "20s";
        }
        let dev = ServerProcess::start_with("dev", dir.path(), &flags);
        assert!(berth(&dev.grpc, &["cluster", "create", &cluster]).ok);
        Env {
            dev,
            cluster,
            dir,
            _cleanup: cleanup,
            _serial: serial,
        }
    }

    fn ok(&self, args: &[&str]) -> Run {
        let r = berth(&self.dev.grpc, args);
        assert!(r.ok, "berth {args:?}: {}", r.stderr);
        r
    }
}

/// A local image tag made for the test, removed when dropped.
struct Tag(String);

impl Drop for Tag {
    fn drop(&mut self) {
        // Docker refuses while a removed container still holds the image: ask again, bounded.
        for _ in 0..20 {
            let gone = Command::new("docker")
                .args(["rmi", &self.0])
                .output()
                .is_ok_and(|o| o.status.success());
            let listed = Command::new("docker")
                .args(["images", "-q", &self.0])
                .output()
                .is_ok_and(|o| !o.stdout.is_empty());
            if gone || !listed {
                return;
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }
}

/// A tool from the test venv with the client environment of the aws CLI, pointed at `http`.
fn tool(http: &str, bin: &str, args: &[&str], dir: &std::path::Path) -> Run {
    let venv = venv();
    let (url, _) = http_url(http);
    let path = format!(
        "{}:{}",
        venv.join("bin").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let c = Creds::default();
    let out = Command::new(venv.join("bin").join(bin))
        .args(args)
        .current_dir(dir)
        .env("PATH", path)
        .env("AWS_ACCESS_KEY_ID", &c.key_id)
        .env("AWS_SECRET_ACCESS_KEY", &c.secret)
        .env("AWS_DEFAULT_REGION", &c.region)
        .env("AWS_REGION", &c.region)
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_SESSION_TOKEN")
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_ENDPOINT_URL_ECS", &url)
        .env("BERTH_ECS_URL", &url)
        .env("ANSIBLE_LOCAL_TEMP", dir.join("ansible-tmp"))
        .env("ANSIBLE_HOME", dir.join("ansible-home"))
        .env("ANSIBLE_NOCOLOR", "1")
        .env("ANSIBLE_PYTHON_INTERPRETER", venv.join("bin/python3"))
        .env("ANSIBLE_LOCALHOST_WARNING", "false")
        .env("ANSIBLE_INVENTORY_UNPARSED_WARNING", "false")
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("run {bin}: {e}"));
    // What the tool told its user, in the test's output (shown on failure or --nocapture).
    println!(
        "$ {bin} {}\n{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout)
    );
    Run {
        ok: out.status.success(),
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn env_of(td: &Value) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = td["containerDefinitions"][0]["environment"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|e| {
            (
                e["name"].as_str().unwrap_or("").to_string(),
                e["value"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    env.sort();
    env
}

#[test]
fn ecs_deploy_scales_runs_and_deploys_against_berth() {
    // Dropped after the dev and its containers: Docker keeps a tag a container still uses.
    let tag = Tag(format!("berth-demo:ecs-tools-{}", std::process::id()));
    let env = Env::start("ecs-tools");
    let http = env.dev.http.as_str();
    let c = Creds::default();
    let cl = env.cluster.as_str();
    let ecs = |args: &[&str]| aws_ok(http, &c, args);

    // The new tag is the demo image under another name, made offline.
    assert!(env.ok(&["images", "build"]).ok);
    let tagged = Command::new("docker")
        .args(["tag", "berth-demo:latest", &tag.0])
        .output()
        .unwrap();
    assert!(tagged.status.success(), "{tagged:?}");

    let file = env.dir.path().join("web.json");
    std::fs::write(
        &file,
        json!({
            "family": format!("{cl}-web"),
            "containerDefinitions": [{
                "name": "web", "image": "berth-demo:latest", "memory": 32, "essential": true,
                "portMappings": [{"containerPort": 80, "hostPort": 0}],
                "environment": [{"name": "MESSAGE", "value": "one"}],
                "stopTimeout": 2
            }]
        })
        .to_string(),
    )
    .unwrap();
    ecs(&[
        "register-task-definition",
        "--cli-input-json",
        &format!("file://{}", file.display()),
    ]);
    let family = format!("{cl}-web");
    ecs(&[
        "create-service",
        "--cluster",
        cl,
        "--service-name",
        "web",
        "--task-definition",
        &family,
        "--desired-count",
        "1",
    ]);
    ecs(&[
        "wait",
        "services-stable",
        "--cluster",
        cl,
        "--services",
        "web",
    ]);

    // ecs deploy: a new image and a new variable, waited for until the deployment is done.
    let dir = env.dir.path();
    let r = tool(
        http,
        "ecs",
        &[
            "deploy",
            cl,
            "web",
            "--image",
            "web",
            &tag.0,
            "-e",
            "web",
            "COLOUR",
            "blue",
            "--timeout",
            "120",
        ],
        dir,
    );
    assert!(r.ok, "ecs deploy: {}\n{}", r.stdout, r.stderr);
    let svc = &ecs(&["describe-services", "--cluster", cl, "--services", "web"])["services"][0];
    assert_eq!(
        svc["taskDefinition"],
        format!("arn:aws:ecs:us-east-1:000000000000:task-definition/{family}:2")
    );
    assert_eq!(
        svc["deployments"].as_array().map(Vec::len),
        Some(1),
        "{svc}"
    );
    assert_eq!(svc["runningCount"], 1, "{svc}");
    let td = &ecs(&[
        "describe-task-definition",
        "--task-definition",
        &format!("{family}:2"),
    ])["taskDefinition"];
    assert_eq!(td["containerDefinitions"][0]["image"], tag.0.as_str());
    assert_eq!(
        env_of(td),
        [
            ("COLOUR".into(), "blue".into()),
            ("MESSAGE".into(), "one".into())
        ]
    );
    let tasks = ecs(&["list-tasks", "--cluster", cl, "--service-name", "web"]);
    let arns: Vec<&str> = tasks["taskArns"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let mut args = vec!["describe-tasks", "--cluster", cl, "--tasks"];
    args.extend(&arns);
    let described = ecs(&args);
    for t in described["tasks"].as_array().unwrap() {
        assert!(
            t["taskDefinitionArn"].as_str().unwrap().ends_with(":2"),
            "{t}"
        );
        assert_eq!(t["lastStatus"], "RUNNING", "{t}");
    }

    // ecs scale: two tasks, waited for.
    let r = tool(
        http,
        "ecs",
        &["scale", cl, "web", "2", "--timeout", "120"],
        dir,
    );
    assert!(r.ok, "ecs scale: {}\n{}", r.stdout, r.stderr);
    let svc = &ecs(&["describe-services", "--cluster", cl, "--services", "web"])["services"][0];
    assert_eq!(
        (svc["desiredCount"].clone(), svc["runningCount"].clone()),
        (json!(2), json!(2)),
        "{svc}"
    );

    // ecs run: a one-off task of the definition, started by ecs-deploy, with its override.
    let r = tool(
        http,
        "ecs",
        &["run", cl, &family, "1", "-e", "web", "MESSAGE", "once"],
        dir,
    );
    assert!(r.ok, "ecs run: {}\n{}", r.stdout, r.stderr);
    let listed = ecs(&["list-tasks", "--cluster", cl, "--started-by", "ECS Deploy"]);
    let arns = listed["taskArns"].as_array().unwrap();
    assert_eq!(arns.len(), 1, "{listed}");
    let one = &ecs(&[
        "describe-tasks",
        "--cluster",
        cl,
        "--tasks",
        arns[0].as_str().unwrap(),
    ])["tasks"][0];
    assert_eq!(one["startedBy"], "ECS Deploy");
    assert_eq!(one["group"], format!("family:{family}"));
    // ecs-deploy sends the container's whole environment, with the change, as the override.
    let overridden = &one["overrides"]["containerOverrides"][0];
    assert_eq!(overridden["name"], "web", "{one}");
    assert!(
        overridden["environment"]
            .as_array()
            .is_some_and(|e| e.contains(&json!({"name": "MESSAGE", "value": "once"}))),
        "{one}"
    );

    // RunTask's clientToken, as ECS keeps it: a retry starts nothing new; the same token with
    // another request is a ConflictException and starts nothing either.
    let program = format!(
        r#"
import boto3, json, os
from botocore.exceptions import ClientError
ecs = boto3.client("ecs", endpoint_url=os.environ["ENDPOINT"])
kw = dict(cluster="{cl}", taskDefinition="{family}", startedBy="token-test", group="batch",
          clientToken="retry-me-1")
first = ecs.run_task(**kw)["tasks"]
again = ecs.run_task(**kw)["tasks"]
try:
    ecs.run_task(**dict(kw, count=2))
    conflict = None
except ClientError as e:
    conflict = e.response["Error"]["Code"]
listed = ecs.list_tasks(cluster="{cl}", startedBy="token-test")["taskArns"]
print(json.dumps({{"first": [t["taskArn"] for t in first], "again": [t["taskArn"] for t in again],
                  "group": first[0]["group"], "conflict": conflict, "listed": listed}}))
"#
    );
    let out = boto3(http, &c, &program);
    assert_eq!(out["first"].as_array().map(Vec::len), Some(1), "{out}");
    assert_eq!(out["again"], out["first"]);
    assert_eq!(out["listed"], out["first"]);
    assert_eq!(out["group"], "batch");
    assert_eq!(out["conflict"], "ConflictException");
}

const PLAYBOOK: &str = r#"
- hosts: localhost
  connection: local
  gather_facts: false
  module_defaults:
    group/aws:
      endpoint_url: "{{ lookup('env', 'BERTH_ECS_URL') }}"
      region: us-east-1
  tasks:
    - name: cluster
      community.aws.ecs_cluster:
        name: "{{ cluster }}"
        state: present
    - name: task definition
      community.aws.ecs_taskdefinition:
        family: "{{ cluster }}-site"
        state: present
        network_mode: bridge
        containers:
          - name: web
            image: berth-demo:latest
            memory: 32
            essential: true
            portMappings:
              - containerPort: 80
                hostPort: 0
            environment:
              - name: MESSAGE
                value: from ansible
      register: td
    - name: service
      community.aws.ecs_service:
        name: site
        cluster: "{{ cluster }}"
        state: present
        # FAMILY:REVISION, as ECS answers it: a bare family would never match the service.
        task_definition: "{{ td.taskdefinition.family }}:{{ td.taskdefinition.revision }}"
        desired_count: 1
"#;

fn recap_changed(stdout: &str) -> Option<u32> {
    let line = stdout
        .lines()
        .find(|l| l.starts_with("localhost") && l.contains("changed="))?;
    let n = line.split("changed=").nth(1)?;
    n.split_whitespace().next()?.parse().ok()
}

#[test]
fn an_ansible_playbook_makes_cluster_definition_and_service_then_changes_nothing() {
    let env = Env::start("ecs-ansible");
    let http = env.dev.http.as_str();
    let c = Creds::default();
    // Ansible names the cluster itself: the DevEnv's own cluster is left alone.
    let cl = format!("{}-a", env.cluster);
    let _cleanup = ContainerCleanup {
        cluster: cl.clone(),
    };
    let dir = env.dir.path();
    std::fs::write(dir.join("site.yml"), PLAYBOOK).unwrap();
    let vars = format!("cluster={cl}");
    let play = || {
        tool(
            http,
            "ansible-playbook",
            &["-i", "localhost,", "-e", &vars, "site.yml"],
            dir,
        )
    };

    let first = play();
    assert!(first.ok, "first run: {}\n{}", first.stdout, first.stderr);
    assert_eq!(recap_changed(&first.stdout), Some(3), "{}", first.stdout);
    let svc = &aws_ok(
        http,
        &c,
        &["describe-services", "--cluster", &cl, "--services", "site"],
    )["services"][0];
    assert_eq!(svc["status"], "ACTIVE", "{svc}");
    assert_eq!(svc["desiredCount"], 1);
    assert!(
        svc["taskDefinition"]
            .as_str()
            .unwrap()
            .ends_with(&format!("{cl}-site:1")),
        "{svc}"
    );

    let second = play();
    assert!(
        second.ok,
        "second run: {}\n{}",
        second.stdout, second.stderr
    );
    assert_eq!(recap_changed(&second.stdout), Some(0), "{}", second.stdout);
    let families = aws_ok(
        http,
        &c,
        &[
            "list-task-definitions",
            "--family-prefix",
            &format!("{cl}-site"),
        ],
    );
    assert_eq!(
        families["taskDefinitionArns"].as_array().map(Vec::len),
        Some(1),
        "{families}"
    );

    // The service's task runs; then it is taken down so the cluster's containers go.
    wait_for(
        Duration::from_secs(60),
        "the playbook's service to run its task",
        || {
            let s = aws_ok(
                http,
                &c,
                &["describe-services", "--cluster", &cl, "--services", "site"],
            );
            (s["services"][0]["runningCount"] == 1).then_some(())
        },
    );
    aws_ok(
        http,
        &c,
        &[
            "delete-service",
            "--cluster",
            &cl,
            "--service",
            "site",
            "--force",
        ],
    );
}
