//! The web console in a real browser: headless Chromium (Debian's `chromium` and
//! `chromium-driver`) drives the console of an open control plane with an agent on the real
//! Docker engine (what `berth dev` is, in two processes), as a user would: create a cluster, register a task definition, create a service of 2 behind the load
//! balancer, watch it reach 2 running, open its address, read a task's logs, stop a task and see
//! its replacement,
//! delete the service. The services page with 2 running tasks is saved as a PNG (the path is
//! printed); on failure, a screenshot of the moment is saved too.

mod common;
#[path = "console_browser/webdriver.rs"]
mod webdriver;

use common::*;
use serde_json::json;
use std::collections::HashSet;
use std::path::PathBuf;
use std::time::Duration;
use webdriver::{Driver, Sandbox};

fn shots_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("console-browser")
}

/// Saves a screenshot if the test is failing when it is dropped.
struct ShotOnFailure<'a>(&'a Driver);

impl Drop for ShotOnFailure<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let path = shots_dir().join("failure.png");
            match self.0.screenshot(&path) {
                Ok(()) => eprintln!("screenshot of the failure: {}", path.display()),
                Err(e) => eprintln!("no screenshot of the failure: {e}"),
            }
        }
    }
}

/// The agent process, killed when dropped.
struct Agent(std::process::Child);

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Ids of the service's task rows whose last status is RUNNING.
fn running_ids(d: &Driver, service: &str) -> Vec<String> {
    let v = d.script(
        "return [...document.querySelectorAll(`.service[data-name='${arguments[0]}'] tr.task`)]
           .filter(r => r.dataset.status === 'RUNNING').map(r => r.dataset.id);",
        json!([service]),
    );
    serde_json::from_value(v).unwrap_or_default()
}

fn running_count(d: &Driver, service: &str) -> String {
    d.text(&format!(".service[data-name='{service}'] .running-count"))
}

/// An open control plane and an agent on the real Docker engine (what `berth dev` is, in two
/// processes), reachable from the browser's network namespace; cleaned up when dropped.
struct ConsoleEnv {
    dev: ServerProcess,
    cluster: String,
    sandbox: Sandbox,
    dir: tempfile::TempDir,
    _agent: Agent,
    _cleanup: ContainerCleanup,
    /// One browser and network namespace at a time (the namespace is named for the process).
    _serial: std::sync::MutexGuard<'static, ()>,
}

static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

impl ConsoleEnv {
    fn start(prefix: &str) -> Self {
        let serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
        let dir = tempfile::tempdir().unwrap();
        let cluster = unique_cluster(prefix);
        let cleanup = ContainerCleanup {
            cluster: cluster.clone(),
        };
        // The browser lives in its own network namespace and reaches Berth on the host's end
        // of its veth pair: the console and the load balancer listen there. `berth dev` serves
        // only loopback, so an open `berth server --insecure` and an agent stand in for it.
        let sandbox = Sandbox::new();
        let http = format!("{}:0", sandbox.host_ip);
        let mut flags = vec![
            "--insecure",
            "--http",
            &http,
            "--proxy-bind",
            &sandbox.host_ip,
        ];
        flags.extend_from_slice(FAST);
        let dev = ServerProcess::start_with("server", &dir.path().join("server"), &flags);
        let agent = Agent(
            std::process::Command::new(BERTH)
                .args(["--server", &dev.grpc, "agent", "--name", "dev", "--data"])
                .arg(dir.path().join("agent"))
                .args(["--stop-timeout", "5s"])
                .env("BERTH_LOG", "warn")
                .stdout(std::process::Stdio::null())
                .spawn()
                .expect("berth agent"),
        );
        wait_for(Duration::from_secs(60), "the agent's node", || {
            let r = berth(&dev.grpc, &["node", "list"]);
            r.stdout
                .lines()
                .any(|l| l.split_whitespace().nth(1) == Some("dev"))
                .then_some(())
        });
        ConsoleEnv {
            dev,
            cluster,
            sandbox,
            dir,
            _agent: agent,
            _cleanup: cleanup,
            _serial: serial,
        }
    }

    fn console(&self) -> String {
        format!("http://{}/", self.dev.http)
    }

    fn ok(&self, args: &[&str]) -> Run {
        let r = berth(&self.dev.grpc, args);
        assert!(r.ok, "berth {args:?}: {}", r.stderr);
        r
    }
}

#[test]
fn console_runs_a_load_balanced_service_end_to_end() {
    let env = ConsoleEnv::start("console");
    let (dev, cluster, sandbox) = (&env.dev, env.cluster.clone(), &env.sandbox);
    let console = env.console();
    let driver = Driver::start(sandbox);
    let d = &driver;
    let _shot = ShotOnFailure(d);
    let long = Duration::from_secs(90);

    // A cluster, and a bad name shows the same field error the CLI prints.
    d.goto(&format!("{console}#/clusters"));
    d.type_into("#cluster-name", "bad name!");
    d.click("#cluster-create");
    let shown = wait_for(Duration::from_secs(10), "the field error", || {
        Some(d.text("#error")).filter(|t| !t.is_empty())
    });
    let cli = berth(&dev.grpc, &["cluster", "create", "bad name!"]);
    assert!(!cli.ok);
    let message = shown.split_once(": ").map_or("", |(_, m)| m).to_string();
    assert!(shown.contains("clusterName"), "{shown}");
    assert!(
        cli.stderr.contains(&message),
        "console: {shown}\ncli: {}",
        cli.stderr
    );
    d.type_into("#cluster-name", &cluster);
    d.click("#cluster-create");
    d.wait_find(
        &format!("tr[data-name='{cluster}']"),
        Duration::from_secs(10),
    );
    assert_eq!(
        d.script(
            "return document.getElementById('cluster-select').value;",
            json!([])
        ),
        json!(cluster),
        "the new cluster is the one the console works in"
    );

    // A task definition, pasted as ECS JSON.
    d.goto(&format!("{console}#/taskdefs"));
    let def = r#"{"family": "console-web", "containerDefinitions": [{"name": "web", "image": "berth-demo:latest", "memory": 32, "portMappings": [{"containerPort": 80}], "stopTimeout": 5, "environment": [{"name": "MESSAGE", "value": "hello through the console"}]}]}"#;
    d.type_into("#taskdef-json", def);
    d.click("#taskdef-register");
    wait_for(Duration::from_secs(10), "the registration", || {
        d.text("#taskdef-result")
            .contains("Registered console-web:1")
            .then_some(())
    });
    d.wait_find(
        "#taskdef-list tr[data-name='console-web:1']",
        Duration::from_secs(5),
    );

    // A service of 2 behind the proxy.
    let port = free_port();
    d.goto(&format!("{console}#/services"));
    d.type_into("#svc-name", "web");
    d.type_into("#svc-taskdef", "console-web:1");
    d.type_into("#svc-desired", "2");
    d.type_into("#svc-lb-port", &port.to_string());
    d.type_into("#svc-lb-container", "web:80");
    d.type_into("#svc-health-path", "/health");
    d.click("#svc-create");
    d.wait_find(".service[data-name='web']", Duration::from_secs(10));
    let first = wait_for(long, "2 running tasks on the services page", || {
        let ids = running_ids(d, "web");
        (running_count(d, "web") == "2" && ids.len() == 2).then_some(ids)
    });
    let shot = shots_dir().join("services-2-running.png");
    d.screenshot(&shot).expect("screenshot");
    println!("services page with 2 running tasks: {}", shot.display());

    // The service's address, as the console links it (through the load balancer).
    let href = d
        .script(
            "return document.querySelector(`.service[data-name='web'] a.service-address`).href;",
            json!([]),
        )
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert_eq!(href, format!("http://{}:{port}/", sandbox.host_ip));

    // The same tasks on the tasks page, and the node that runs them with its resources.
    d.goto(&format!("{console}#/tasks"));
    wait_for(Duration::from_secs(10), "the tasks page", || {
        let v = d.script(
            "return [...document.querySelectorAll('#task-list tr.task')].map(r => r.dataset.id);",
            json!([]),
        );
        let ids: Vec<String> = serde_json::from_value(v).unwrap_or_default();
        (ids.len() == 2 && first.iter().all(|id| ids.contains(id))).then_some(())
    });
    d.goto(&format!("{console}#/nodes"));
    d.wait_find(
        "#node-list tr[data-name='dev'] button.drain",
        Duration::from_secs(10),
    );
    let node = d.text("#node-list tr[data-name='dev']");
    assert!(
        node.contains("2 running") && node.contains("connected") && !node.contains("disconnected"),
        "{node}"
    );

    // The service's address answers through the load balancer.
    wait_for(long, "the service's page through the proxy", || {
        d.goto(&href);
        d.text("body")
            .contains("hello through the console")
            .then_some(())
    });

    // A task's logs, read through its agent: the demo logs the requests it served.
    d.goto(&format!("{console}#/services"));
    let victim = first[0].clone();
    d.click(&format!(
        ".service[data-name='web'] tr.task[data-id='{victim}'] button.logs"
    ));
    let logs = wait_for(Duration::from_secs(20), "the task's logs", || {
        Some(d.text("#service-logs pre.logs")).filter(|t| t.contains("GET /"))
    });
    assert!(logs.contains(" 200"), "{logs}");

    // Stop one task: the service replaces it.
    d.click(&format!(
        ".service[data-name='web'] tr.task[data-id='{victim}'] button.stop-task"
    ));
    let replaced = wait_for(long, "a replacement task running", || {
        let ids = running_ids(d, "web");
        (ids.len() == 2 && !ids.contains(&victim)).then_some(ids)
    });
    let before: HashSet<&String> = first.iter().collect();
    assert!(
        replaced.iter().any(|id| !before.contains(id)),
        "{first:?} → {replaced:?}"
    );
    let events = d.text(".service[data-name='web'] .events");
    assert!(events.contains("has started 1 tasks"), "{events}");

    // Delete (the button asks once more); the card goes once the service is inactive.
    d.click(".service[data-name='web'] button.delete-service");
    d.click(".service[data-name='web'] button.delete-service.confirm");
    wait_for(long, "the service to be gone from the page", || {
        d.find(".service[data-name='web']").is_none().then_some(())
    });
    let described = berth(
        &dev.grpc,
        &[
            "service",
            "describe",
            "web",
            "--cluster",
            &cluster,
            "-o",
            "json",
        ],
    );
    assert!(described.ok, "{}", described.stderr);
    assert_eq!(
        described.json()["service"]["status"],
        "INACTIVE",
        "{}",
        described.stdout
    );
    assert!(
        containers_with_label(&format!("berth.cluster={cluster}"))
            .iter()
            .all(|id| !is_running(id)),
        "no container of the service still runs"
    );
}

fn is_running(id: &str) -> bool {
    let out = std::process::Command::new("docker")
        .args(["inspect", "-f", "{{.State.Running}}", id])
        .output()
        .expect("docker inspect");
    String::from_utf8_lossy(&out.stdout).trim() == "true"
}

/// The number of points the console has drawn in one chart's series of a service card.
fn chart_points(d: &Driver, service: &str, chart: &str, series: &str) -> i64 {
    d.script(
        "const p = document.querySelector(`.service[data-name='${arguments[0]}'] svg.${arguments[1]} polyline.${arguments[2]}`);
         return p ? Number(p.dataset.points) : 0;",
        json!([service, chart, series]),
    )
    .as_i64()
    .unwrap_or(0)
}

#[test]
fn console_draws_a_canary_shift_live_and_shows_the_load_balancer_behind_it() {
    let env = ConsoleEnv::start("consoleshift");
    let cluster = env.cluster.clone();
    let port = free_port().to_string();
    env.ok(&["cluster", "create", &cluster]);
    env.ok(&["lb", "create", "shop"]);
    env.ok(&[
        "lb",
        "target-group",
        "create",
        "shop-web",
        "--health-path",
        "/health",
        "--health-interval",
        "1",
        "--health-timeout",
        "1",
        "--deregistration-delay",
        "5",
    ]);
    env.ok(&[
        "lb",
        "listener",
        "create",
        "--lb",
        "shop",
        "--port",
        &port,
        "--forward",
        "shop-web",
    ]);
    let mut tds = Vec::new();
    for message in ["v1", "v2"] {
        tds.push(register_demo(
            &env.dev.grpc,
            env.dir.path(),
            "shop",
            &[("MESSAGE", message)],
        ));
    }
    env.ok(&[
        "service",
        "create",
        "--cluster",
        &cluster,
        "--name",
        "web",
        "--taskdef",
        &tds[0],
        "--desired",
        "2",
        "--target-group",
        "shop-web",
        "--lb-container",
        "web:80",
        "--canary",
        "20%:40s",
        "--rollback-on-5xx",
        "5%",
        "--wait",
        "--timeout",
        "90s",
    ]);
    let driver = Driver::start(&env.sandbox);
    let d = &driver;
    let _shot = ShotOnFailure(d);
    let wrk = common::wrk::Wrk::start_at(&format!("{}:{port}", env.sandbox.host_ip), 2, 60);
    env.ok(&[
        "service",
        "update",
        "web",
        "--cluster",
        &cluster,
        "--taskdef",
        &tds[1],
    ]);

    // The console works in the cluster it last picked.
    d.goto(&format!("{}#/clusters", env.console()));
    d.script(
        "localStorage.setItem('berth.cluster', arguments[0]);",
        json!([cluster]),
    );
    d.goto(&format!("{}#/services", env.console()));
    d.script("location.reload();", json!([]));
    d.wait_find(
        ".service[data-name='web'] .shift[data-stage='PRODUCTION_TRAFFIC_SHIFT']",
        Duration::from_secs(60),
    );
    wait_for(Duration::from_secs(30), "the charts to fill", || {
        (chart_points(d, "web", "traffic-chart", "series-new") >= 5
            && chart_points(d, "web", "rate-chart", "series-new") >= 4
            && chart_points(d, "web", "rate-chart", "series-old") >= 4)
            .then_some(())
    });
    assert_eq!(d.text(".service[data-name='web'] .traffic-percent"), "20%");
    assert!(
        d.find(".service[data-name='web'] svg.errors-chart line.threshold")
            .is_some(),
        "the 5% rollback threshold is drawn"
    );
    let rates = d.text(".service[data-name='web'] .charts");
    assert!(rates.contains("Requests/s"), "{rates}");
    let shot = shots_dir().join("services-canary.png");
    d.screenshot(&shot).expect("screenshot");
    println!("a canary at 20% on the services page: {}", shot.display());

    // The load balancer page: the listener forwarding to the target group, whose targets are
    // both revisions' tasks, healthy.
    d.goto(&format!("{}#/loadbalancers", env.console()));
    d.wait_find(".lb[data-name='shop'] tr.rule", Duration::from_secs(10));
    let rule = d.text(".lb[data-name='shop'] tr.rule td.forward");
    assert!(rule.contains("shop-web (weight 1)"), "{rule}");
    wait_for(Duration::from_secs(20), "four healthy targets", || {
        let n = d
            .script(
                "return document.querySelectorAll(\".tg[data-name='shop-web'] tr.target[data-state='healthy']\").length;",
                json!([]),
            )
            .as_i64()
            .unwrap_or(0);
        (n == 4).then_some(())
    });
    let shot = shots_dir().join("load-balancers.png");
    d.screenshot(&shot).expect("screenshot");
    println!("the load balancer page mid-shift: {}", shot.display());
    drop(wrk);
}
