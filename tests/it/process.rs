use crate::support::*;
use serde_json::json;
use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

struct Proc {
    child: std::process::Child,
    addr: std::net::SocketAddr,
}

fn spawn(dir: &std::path::Path) -> Proc {
    spawn_with(dir, &[], &[])
}

/// The binary with extra arguments and environment variables.
fn spawn_with(dir: &std::path::Path, args: &[&str], env: &[(&str, &str)]) -> Proc {
    let mut child = Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .args(["--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir)
        .args(args)
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("binary starts");
    let stdout = child.stdout.take().expect("stdout");
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("read line");
    let addr = line
        .trim()
        .strip_prefix("switchboard listening on http://")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .parse()
        .expect("address");
    Proc { child, addr }
}

fn terminate(p: &mut Proc) -> (std::process::ExitStatus, String) {
    let status = Command::new("kill")
        .arg("-TERM")
        .arg(p.child.id().to_string())
        .status()
        .expect("kill");
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(st) = p.child.try_wait().expect("wait") {
            let mut err = String::new();
            if let Some(mut e) = p.child.stderr.take() {
                let _ = e.read_to_string(&mut err);
            }
            return (st, err);
        }
        assert!(Instant::now() < deadline, "did not exit after SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test]
async fn zero_config_start_warns_and_sigterm_shuts_down_cleanly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut p = spawn(dir.path());
    let mut c = Client::connect(&format!("ws://{}/ws", p.addr), Ser::Json).await;
    c.join("realm1").await;
    c.subscribe("com.x", json!({})).await;
    let (status, stderr) = tokio::task::spawn_blocking(move || {
        let r = terminate(&mut p);
        (r, p)
    })
    .await
    .map(|(r, _)| r)
    .expect("join");
    assert!(status.success(), "exit status {status:?}\n{stderr}");
    assert!(
        stderr.contains("development default"),
        "warning printed: {stderr}"
    );
    assert!(stderr.contains("stopped cleanly"), "{stderr}");
    // The client saw a WebSocket close "going away" (so Autobahn clients reconnect).
    let close = c.closed().await;
    assert_eq!(close_code_of(&close), 1001, "{close:?}");
    // The store was closed properly: the same data directory opens again.
    let mut p2 = spawn(dir.path());
    let (st, _) = tokio::task::spawn_blocking(move || terminate(&mut p2))
        .await
        .expect("join");
    assert!(st.success());
}

const TICKET_CONFIG: &str = r#"{
  "version": 2,
  "workers": [{
    "type": "router",
    "realms": [{"name": "realm1", "roles": [{"name": "user"}]}],
    "transports": [{"type": "web", "endpoint": {"type": "tcp", "port": 0, "interface": "127.0.0.1"},
      "paths": {"ws": {"type": "websocket", "auth": {"ticket": {"type": "static",
        "principals": {"joe": {"ticket": "joes-s3cret-ticket", "role": "user"}}}}}}}]
  }]
}"#;

/// `--log-format json`: one JSON object per line on stderr, at debug level too — and no line
/// carries a ticket, neither the configured one nor a wrong one a client sent.
#[tokio::test]
async fn json_logs_carry_no_secret() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("node.json");
    std::fs::write(&config, TICKET_CONFIG).expect("write config");
    let config = config.to_string_lossy().into_owned();
    let mut p = spawn_with(
        &dir.path().join("data"),
        &["--config", &config, "--log-format", "json"],
        &[("RUST_LOG", "debug")],
    );
    let url = format!("ws://{}/ws", p.addr);
    for ticket in ["wrong-guess-ticket", "joes-s3cret-ticket"] {
        let mut c = Client::connect(&url, Ser::Json).await;
        c.send(json!([1, "realm1", {"authmethods": ["ticket"], "authid": "joe"}]))
            .await;
        assert_eq!(c.recv().await[0], 4);
        c.send(json!([5, ticket, {}])).await;
        let m = c.recv().await;
        assert_eq!(m[0], if ticket.starts_with("wrong") { 3 } else { 2 }, "{m}");
    }
    // A plain HTTP request with a token in its query string.
    let (head, _) = http_get(p.addr, "/setup?token=s3cret-setup-token").await;
    assert!(head.starts_with("HTTP/1.1"), "{head}");
    let (status, stderr) = tokio::task::spawn_blocking(move || terminate(&mut p))
        .await
        .expect("join");
    assert!(status.success(), "{stderr}");
    let lines: Vec<serde_json::Value> = stderr
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(lines
        .iter()
        .all(|l| l["level"].is_string() && l["timestamp"].is_string()));
    let messages: Vec<&str> = lines.iter().filter_map(|l| l["message"].as_str()).collect();
    assert!(messages.contains(&"authentication failed"), "{messages:?}");
    // Session lines carry the session id; request lines the request's id, method and path.
    let failed = lines
        .iter()
        .find(|l| l["message"] == "authentication failed")
        .expect("line");
    assert!(failed["session"].as_u64().is_some(), "{failed}");
    let answered = lines
        .iter()
        .find(|l| l["message"] == "http request answered" && l["span"]["path"] == "/setup")
        .unwrap_or_else(|| panic!("no request line: {stderr}"));
    assert!(answered["span"]["request"].as_u64().is_some(), "{answered}");
    assert_eq!(answered["span"]["method"], "GET");
    assert!(messages.contains(&"stopped cleanly"), "{messages:?}");
    assert!(
        !stderr.contains("s3cret") && !stderr.contains("wrong-guess"),
        "{stderr}"
    );
}

/// The binary allocates with jemalloc, not glibc's malloc (README "Soak": with glibc's
/// per-thread arenas RSS climbed under a durable chat load while the live heap stayed flat).
/// jemalloc prints its statistics at exit when its configuration asks for them.
#[test]
fn the_binary_allocates_with_jemalloc() {
    let out = Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .arg("--version")
        .env("_RJEM_MALLOC_CONF", "stats_print:true")
        .output()
        .expect("binary runs");
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("jemalloc statistics"),
        "no jemalloc statistics at exit; stderr: {stderr}"
    );
}
