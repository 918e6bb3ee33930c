//! Trust on `berth server`: TLS verified against DATA/ca.crt, bearer tokens with roles, agents
//! that join with DATA/join.token and from then on use their certificate (across a server
//! restart, and renewed before it expires), and no token in any log.

mod common;

use common::*;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A `berth agent` whose stderr is kept; killed on drop.
struct Agent {
    child: Child,
    output: Arc<Mutex<Vec<String>>>,
}

impl Agent {
    fn start(server: &str, name: &str, data: &Path, join: &[&str]) -> Self {
        let mut child = Command::new(BERTH)
            .args(["--server", server, "agent", "--name", name, "--data"])
            .arg(data)
            .args(join)
            .env_remove("BERTH_CA")
            .env_remove("BERTH_TOKEN")
            .env("BERTH_LOG", LOG)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn agent");
        let output = Arc::new(Mutex::new(Vec::new()));
        let _lines = capture(child.stderr.take().unwrap(), "agent", output.clone());
        Self { child, output }
    }

    fn log(&self) -> String {
        self.output.lock().unwrap().join("\n")
    }

    /// Waits (bounded) for the process to end on its own; its exit status.
    fn exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let deadline = std::time::Instant::now() + limit;
        while std::time::Instant::now() < deadline {
            if let Ok(Some(s)) = self.child.try_wait() {
                return Some(s);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        None
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Verbose enough that a token slipping into a log line would show.
const LOG: &str = "info,berth_control_plane=debug,berth_trust=debug,berth_agent=debug";

const FLAGS: &[&str] = &[
    "--no-proxy",
    "--heartbeat",
    "500ms",
    "--heartbeat-timeout",
    "2s",
];

fn read(path: &Path) -> String {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .trim()
        .to_string()
}

/// `node list -o json` as the admin: (name, connected) of each node.
fn nodes(url: &str) -> Vec<(String, bool)> {
    let r = berth(url, &["node", "list", "-o", "json"]);
    assert!(r.ok, "node list: {}", r.stderr);
    r.json()["containerInstances"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|n| {
            (
                n["name"].as_str().unwrap_or_default().to_string(),
                n["agentConnected"] == true,
            )
        })
        .collect()
}

fn connected(url: &str, name: &str) -> bool {
    nodes(url).iter().any(|(n, c)| n == name && *c)
}

#[test]
fn tokens_and_join_tokens_decide_who_gets_in_and_no_token_is_logged() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("server");
    let server = ServerProcess::start_logging(
        "server",
        &data,
        &[&["--listen", "127.0.0.1:0"], FLAGS].concat(),
        LOG,
    );
    let url = server.grpc.clone();
    assert!(
        url.starts_with("https://"),
        "berth server serves TLS: {url}"
    );
    let ca = data.join("ca.crt");
    let ca_s = ca.to_str().unwrap();
    let admin = read(&data.join("admin.token"));
    let join = read(&data.join("join.token"));
    #[cfg(unix)]
    for f in ["admin.token", "join.token", "ca.key"] {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(data.join(f))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{f} is owner-only");
    }

    // No token: refused, and told where the admin token is.
    let r = berth_with(&url, &[("BERTH_CA", ca_s)], &["cluster", "list"]);
    assert!(!r.ok, "an unauthenticated call must fail: {}", r.stdout);
    assert!(r.stderr.contains("admin.token"), "{}", r.stderr);
    // Without the CA the client will not trust the server.
    let r = berth_with(&url, &[("BERTH_TOKEN", &admin)], &["cluster", "list"]);
    assert!(!r.ok && r.stderr.contains("--ca"), "{}", r.stderr);
    // Plaintext against TLS does not get through either.
    let plain = url.replace("https://", "http://");
    let r = berth_with(&plain, &[("BERTH_TOKEN", &admin)], &["cluster", "list"]);
    assert!(!r.ok, "plaintext must fail: {}", r.stdout);

    // The admin token creates a cluster (here through --token).
    let cluster = unique_cluster("trust");
    let as_admin = [("BERTH_CA", ca_s)];
    let r = berth_with(
        &url,
        &as_admin,
        &["--token", &admin, "cluster", "create", &cluster],
    );
    assert!(r.ok, "{}", r.stderr);

    // A read-only token: lists, but changes nothing.
    let r = berth_with(
        &url,
        &[("BERTH_CA", ca_s), ("BERTH_TOKEN", &admin)],
        &["token", "create", "--read-only"],
    );
    assert!(r.ok, "{}", r.stderr);
    let read_only = r.stdout.lines().last().unwrap().trim().to_string();
    assert!(read_only.starts_with("berth_"), "{}", r.stdout);
    let ro = [("BERTH_CA", ca_s), ("BERTH_TOKEN", read_only.as_str())];
    let r = berth_with(&url, &ro, &["cluster", "list", "-o", "json"]);
    assert!(r.ok, "{}", r.stderr);
    assert!(r.stdout.contains(&cluster), "{}", r.stdout);
    let r = berth_with(&url, &ro, &["cluster", "create", "not-allowed"]);
    assert!(!r.ok, "a read-only token must not create");
    assert!(r.stderr.contains("read-write token"), "{}", r.stderr);
    let r = berth_with(&url, &ro, &["token", "create"]);
    assert!(!r.ok && r.stderr.contains("admin token"), "{}", r.stderr);
    let listed = berth(&url, &["cluster", "list", "-o", "json"]).stdout;
    assert!(!listed.contains("not-allowed"), "{listed}");
    // A made-up token is refused as unauthenticated.
    let forged = format!("berth_{}_{}", "0".repeat(12), "0".repeat(48));
    let r = berth_with(
        &url,
        &[("BERTH_CA", ca_s), ("BERTH_TOKEN", &forged)],
        &["cluster", "list"],
    );
    assert!(!r.ok && r.stderr.contains("not valid"), "{}", r.stderr);

    // A wrong join token: the agent is refused, exits, and never becomes a node.
    let secret = join.rsplit('-').next().unwrap();
    let wrong = join.replace(secret, &"f".repeat(secret.len()));
    let mut intruder = Agent::start(
        &url,
        "intruder",
        &dir.path().join("bad"),
        &["--join-token", &wrong],
    );
    let status = intruder
        .exit(Duration::from_secs(20))
        .expect("a refused agent exits");
    assert!(!status.success());
    assert!(intruder.log().contains("join token"), "{}", intruder.log());
    assert!(!dir.path().join("bad/tls/identity.pem").exists());

    // The real join token (from the file): the node joins and shows as connected.
    let token_file = data.join("join.token");
    let good = Agent::start(
        &url,
        "member",
        &dir.path().join("good"),
        &["--join-token-file", token_file.to_str().unwrap()],
    );
    wait_for(
        Duration::from_secs(30),
        "the joined agent to connect",
        || connected(&url, "member").then_some(()),
    );
    let names: Vec<String> = nodes(&url).into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, vec!["member".to_string()], "only the joined node");

    // Describe output shows no token either.
    let described = berth(&url, &["node", "list", "-o", "json"]).stdout;
    for (what, secret) in [
        ("admin", &admin),
        ("join", &join),
        ("read-only", &read_only),
    ] {
        assert!(
            !described.contains(secret.as_str()),
            "{what} token in node list"
        );
        assert!(
            !server.log().contains(secret.as_str()),
            "{what} token in the server's log"
        );
        assert!(
            !good.log().contains(secret.as_str()),
            "{what} token in the agent's log"
        );
        assert!(
            !intruder.log().contains(secret.as_str()),
            "{what} token in the refused agent's log"
        );
    }
    assert!(
        server.log().contains("join refused"),
        "the refusal is logged"
    );
}

#[test]
fn a_joined_agent_reconnects_with_its_certificate_after_a_server_restart() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("server");
    let listen = format!("127.0.0.1:{}", free_port());
    let flags = [&["--listen", listen.as_str()], FLAGS].concat();
    let mut server = ServerProcess::start_logging("server", &data, &flags, LOG);
    let url = server.grpc.clone();
    let token_file = data.join("join.token");
    let agent_dir = dir.path().join("agent");
    let mut agent = Agent::start(
        &url,
        "steady",
        &agent_dir,
        &["--join-token-file", token_file.to_str().unwrap()],
    );
    wait_for(Duration::from_secs(30), "the agent to join", || {
        connected(&url, "steady").then_some(())
    });
    let admin = read(&data.join("admin.token"));

    // Both go down; the join token is gone for good; both come back.
    drop(agent);
    server.kill9();
    std::fs::remove_file(&token_file).unwrap();
    let server = ServerProcess::start_logging("server", &data, &flags, LOG);
    assert_eq!(server.grpc, url);
    assert_eq!(
        read(&data.join("admin.token")),
        admin,
        "tokens are kept across restarts"
    );
    assert!(!token_file.exists(), "the join token is not written again");
    agent = Agent::start(&url, "steady", &agent_dir, &[]);
    wait_for(
        Duration::from_secs(30),
        "the agent to reconnect with its certificate",
        || connected(&url, "steady").then_some(()),
    );
    assert_eq!(nodes(&url).len(), 1, "the same node, not a new one");
    assert!(
        !agent.log().contains("joined the cluster"),
        "{}",
        agent.log()
    );
}

#[test]
fn agent_certificates_are_renewed_before_they_expire() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("server");
    let listen = format!("127.0.0.1:{}", free_port());
    // Short enough to watch several renewals; long enough that a loaded machine restarts the
    // server within the last third of a certificate's life.
    let flags = [
        &["--listen", listen.as_str(), "--cert-lifetime", "9s"],
        FLAGS,
    ]
    .concat();
    let mut server = ServerProcess::start_logging("server", &data, &flags, LOG);
    let url = server.grpc.clone();
    let token_file = data.join("join.token");
    let agent_dir = dir.path().join("agent");
    let agent = Agent::start(
        &url,
        "renewing",
        &agent_dir,
        &["--join-token-file", token_file.to_str().unwrap()],
    );
    wait_for(Duration::from_secs(30), "the agent to join", || {
        connected(&url, "renewing").then_some(())
    });
    let first = read(&agent_dir.join("tls/identity.pem"));
    let joined = std::time::Instant::now();
    let renewals = || agent.log().matches("certificate renewed").count();

    // Renewed at two thirds of each life, so past the first certificate's expiry the agent is
    // still in, on a certificate that is not the first.
    wait_for(Duration::from_secs(60), "two renewals", || {
        (renewals() >= 2).then_some(())
    });
    assert!(
        joined.elapsed() > Duration::from_secs(9),
        "the first certificate has expired"
    );
    assert!(connected(&url, "renewing"), "the agent stays connected");
    assert_ne!(
        first,
        read(&agent_dir.join("tls/identity.pem")),
        "renewed on disk"
    );

    // A new TLS session (after a server restart, right after a renewal) is accepted with the
    // renewed certificate: the first one would be refused by now.
    let seen = renewals();
    wait_for(Duration::from_secs(30), "the next renewal", || {
        (renewals() > seen).then_some(())
    });
    server.kill9();
    let server = ServerProcess::start_logging("server", &data, &flags, LOG);
    wait_for(Duration::from_secs(30), "the agent to reconnect", || {
        connected(&url, "renewing").then_some(())
    });
    assert_eq!(nodes(&server.grpc).len(), 1);
}

/// `token list -o json` as the admin: each token's JSON object.
fn tokens(url: &str) -> Vec<serde_json::Value> {
    let r = berth(url, &["token", "list", "-o", "json"]);
    assert!(r.ok, "token list: {}", r.stderr);
    r.json()["tokens"].as_array().cloned().unwrap_or_default()
}

#[test]
fn a_revoked_token_is_refused_on_its_next_call() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("server");
    let server = ServerProcess::start_logging(
        "server",
        &data,
        &[&["--listen", "127.0.0.1:0"], FLAGS].concat(),
        LOG,
    );
    let url = server.grpc.clone();
    let ca = data.join("ca.crt");
    let admin = read(&data.join("admin.token"));
    let made = berth(&url, &["token", "create", "--description", "ci dashboard"]);
    assert!(made.ok, "{}", made.stderr);
    let token = made.stdout.lines().last().unwrap().trim().to_string();
    let as_token = [("BERTH_CA", ca.to_str().unwrap()), ("BERTH_TOKEN", &token)];
    let r = berth_with(&url, &as_token, &["cluster", "list"]);
    assert!(r.ok, "a fresh token works: {}", r.stderr);

    // The list: kinds, the description, when it was last used; never a secret or its hash.
    let listed = tokens(&url);
    let kinds: Vec<&str> = listed.iter().filter_map(|t| t["kind"].as_str()).collect();
    assert_eq!(kinds, ["join", "admin", "read-write"], "{listed:?}");
    let mine = &listed[2];
    let id = mine["id"].as_str().unwrap().to_string();
    assert!(token.contains(&id), "the id is the token's public part");
    assert_eq!(mine["description"], "ci dashboard");
    assert!(mine["createdAt"].as_str().is_some_and(|s| !s.is_empty()));
    wait_for(
        Duration::from_secs(10),
        "its last use to be recorded",
        || {
            tokens(&url)[2]["lastUsedAt"]
                .as_str()
                .filter(|s| !s.is_empty())
                .map(str::to_string)
        },
    );
    let table = berth(&url, &["token", "list"]);
    assert!(table.ok, "{}", table.stderr);
    assert!(
        table.stdout.starts_with("ID") && table.stdout.contains("LAST USED"),
        "{}",
        table.stdout
    );
    for shown in [&table.stdout, &serde_json::to_string(&listed).unwrap()] {
        for secret in [&token, &admin] {
            let hidden = secret.rsplit('_').next().unwrap();
            assert!(!shown.contains(hidden), "a secret in token list: {shown}");
        }
        assert!(!shown.contains("secret"), "no hash field either: {shown}");
    }

    // Revoked: the very next call is refused, naming why; the admin token still works.
    let r = berth(&url, &["token", "revoke", &id]);
    assert!(r.ok, "{}", r.stderr);
    let r = berth_with(&url, &as_token, &["cluster", "list"]);
    assert!(!r.ok, "a revoked token must be refused: {}", r.stdout);
    assert!(
        r.stderr.contains(&format!("token {id} was revoked")),
        "{}",
        r.stderr
    );
    assert!(berth(&url, &["cluster", "list"]).ok);
    let after = tokens(&url);
    assert!(after[2]["revokedAt"]
        .as_str()
        .is_some_and(|s| !s.is_empty()));

    // The admin token and an unknown id are refused with the reason; nothing changes.
    let admin_id = after[1]["id"].as_str().unwrap();
    let r = berth(&url, &["token", "revoke", admin_id]);
    assert!(
        !r.ok && r.stderr.contains("is the admin token"),
        "{}",
        r.stderr
    );
    let r = berth(&url, &["token", "revoke", "nosuchtoken"]);
    assert!(!r.ok && r.stderr.contains("token list"), "{}", r.stderr);
    assert!(
        berth(&url, &["cluster", "list"]).ok,
        "the admin token still works"
    );
}

#[test]
fn a_revoked_agent_certificate_is_refused_and_its_stream_closed() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("server");
    let server = ServerProcess::start_logging(
        "server",
        &data,
        &[&["--listen", "127.0.0.1:0"], FLAGS].concat(),
        LOG,
    );
    let url = server.grpc.clone();
    let token_file = data.join("join.token");
    let join = ["--join-token-file", token_file.to_str().unwrap()];
    let agent = Agent::start(&url, "suspect", &dir.path().join("agent"), &join);
    wait_for(Duration::from_secs(30), "the agent to join", || {
        connected(&url, "suspect").then_some(())
    });

    let r = berth(
        &url,
        &["node", "revoke", "suspect", "--reason", "host compromised"],
    );
    assert!(r.ok, "{}", r.stderr);
    // Its open stream is ended at once (well within the 2 s heartbeat timeout), with the reason.
    wait_for(Duration::from_secs(5), "the stream to be closed", || {
        (!connected(&url, "suspect")).then_some(())
    });
    assert!(
        server
            .log()
            .contains("certificate revoked: agent stream closed"),
        "{}",
        server.log()
    );
    // It keeps trying, and is refused each time, told why.
    wait_for(Duration::from_secs(15), "the agent to be refused", || {
        agent.log().contains("was revoked").then_some(())
    });
    assert!(agent.log().contains("host compromised"), "{}", agent.log());
    std::thread::sleep(Duration::from_secs(3));
    assert!(!connected(&url, "suspect"), "a revoked node stays out");

    // Listed; and the same id cannot join again with the join token.
    let listed = berth(&url, &["cert", "list", "-o", "json"]);
    assert!(listed.ok, "{}", listed.stderr);
    let revoked = listed.json()["revoked"].as_array().cloned().unwrap();
    assert_eq!(revoked.len(), 1, "{revoked:?}");
    let identity = revoked[0]["identity"].as_str().unwrap().to_string();
    assert!(identity.starts_with("node:"), "{identity}");
    drop(agent);
    std::fs::remove_dir_all(dir.path().join("agent/tls")).unwrap();
    let mut again = Agent::start(&url, "suspect", &dir.path().join("agent"), &join);
    wait_for(Duration::from_secs(20), "the rejoin to be refused", || {
        again.log().contains("was revoked").then_some(())
    });
    let _ = again.exit(Duration::from_secs(1));
    assert!(!connected(&url, "suspect"));
}
