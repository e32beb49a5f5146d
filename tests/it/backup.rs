//! `switchboard backup` / `restore` with the real binary: users, event history and chat
//! threads and messages taken from a running server, restored into a fresh data directory,
//! and there after a restart; a damaged backup is refused.

use crate::support::*;
use serde_json::{json, Value};
use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_switchboard");
const TOKEN: &str = "visitor-token-backup-aaaaaaaaaaa";

fn config(port: u16) -> String {
    format!(
        r#"{{
  "version": 2,
  "workers": [{{
    "type": "router",
    "realms": [{{"name": "realm1", "roles": [
      {{"name": "visitor"}},
      {{"name": "staff"}},
      {{"name": "backend", "permissions": [{{"uri": "", "match": "prefix", "allow": {{"call": true, "register": true, "publish": true, "subscribe": true}}}}]}}
    ],
    "store": {{"type": "memory", "event-history": [{{"uri": "com.hist.", "match": "prefix", "limit": 100}}]}}
    }}],
    "chat": {{"realm": "realm1", "staff_roles": ["staff"], "messages_per_minute": 100000}},
    "transports": [{{"type": "web", "endpoint": {{"type": "tcp", "port": {port}, "interface": "127.0.0.1"}},
      "paths": {{
        "ws": {{"type": "websocket", "auth": {{"ticket": {{"type": "visitor"}}}}}},
        "raw": {{"type": "websocket", "auth": {{"anonymous": {{"type": "static", "role": "backend"}}}}}}
      }}}}]
  }}]
}}"#
    )
}

fn run(args: &[&str], data: &Path, stdin: &str) -> Output {
    let mut child = Command::new(BIN)
        .args(args)
        .arg("--data-dir")
        .arg(data)
        .env_remove("SWITCHBOARD_DATA_DIR")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("runs");
    let mut input = child.stdin.take().expect("stdin");
    let _ = input.write_all(stdin.as_bytes());
    drop(input);
    child.wait_with_output().expect("wait")
}

fn ok(out: Output) -> String {
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "stdout {text}\nstderr {}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

fn fails(out: Output) -> String {
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

async fn visitor(port: u16) -> Client {
    let mut c = Client::connect(&format!("ws://127.0.0.1:{port}/ws"), Ser::Json).await;
    c.send(json!([1, "realm1", {"authmethods": ["ticket"], "roles": {"caller": {}, "subscriber": {}}}]))
        .await;
    assert_eq!(c.recv().await[0], 4);
    c.send(json!([5, TOKEN, {}])).await;
    let w = c.recv().await;
    assert_eq!(w[0], 2, "{w}");
    c
}

async fn call(c: &mut Client, procedure: &str, args: Value, kwargs: Value) -> Value {
    let r = c.request_id();
    c.send(json!([48, r, {}, procedure, args, kwargs])).await;
    loop {
        let m = c.recv().await;
        if m[0] == 36 {
            continue;
        }
        assert_eq!(m[0], 50, "RESULT for {procedure} expected, got {m}");
        return m[3].get(0).cloned().unwrap_or(Value::Null);
    }
}

async fn publish(c: &mut Client, topic: &str, n: u64) {
    let r = c.request_id();
    c.send(json!([16, r, {"acknowledge": true}, topic, [n]]))
        .await;
    let m = c.recv().await;
    assert_eq!(m[0], 17, "{m}");
}

fn texts(history: &Value) -> Vec<String> {
    history
        .as_array()
        .expect("list")
        .iter()
        .map(|m| m["text"].as_str().unwrap_or("").to_owned())
        .collect()
}

#[tokio::test]
async fn backup_of_a_running_server_restores_into_a_fresh_directory() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let cfg = tmp.path().join("node.json");
    std::fs::write(&cfg, config(port)).expect("config");
    let a = tmp.path().join("a");
    let b = tmp.path().join("b");
    let file = tmp.path().join("node.swb");

    let server = start_process(&cfg, &a);
    ok(run(&["user", "add", "bob", "--role", "staff"], &a, "pw\n"));
    let mut v = visitor(port).await;
    let thread =
        call(&mut v, "switchboard.chat.open", json!([]), json!({})).await["thread"].clone();
    for t in ["hello", "is anyone there?", "bye"] {
        call(
            &mut v,
            "switchboard.chat.send",
            json!([thread, t]),
            json!({}),
        )
        .await;
    }
    let mut p = Client::connect(&format!("ws://127.0.0.1:{port}/raw"), Ser::Json).await;
    p.join("realm1").await;
    for i in 0..3 {
        publish(&mut p, "com.hist.a", i).await;
    }
    let said = ok(run(&["backup", file.to_str().expect("utf-8")], &a, ""));
    assert!(said.contains("from the running server"), "{said}");
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&file).expect("backup").permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);
    // Written after the backup: not in it.
    call(
        &mut v,
        "switchboard.chat.send",
        json!([thread, "later"]),
        json!({}),
    )
    .await;
    drop(v);
    drop(p);

    // Restoring needs a stopped server (and refuses a directory with data anyway).
    let e = fails(run(&["restore", file.to_str().expect("utf-8")], &a, ""));
    assert!(e.contains("stop it"), "{e}");
    drop(server);

    // A damaged copy is refused with a clear error and writes nothing.
    let mut bytes = std::fs::read(&file).expect("read");
    let at = bytes.len() / 2;
    bytes[at] ^= 0x10;
    let bad = tmp.path().join("bad.swb");
    std::fs::write(&bad, &bytes).expect("write");
    let e = fails(run(&["restore", bad.to_str().expect("utf-8")], &b, ""));
    assert!(e.contains("corrupt") && e.contains("checksum"), "{e}");
    assert!(
        !b.join("db").exists(),
        "nothing written for a damaged backup"
    );
    let e = fails(run(&["restore", cfg.to_str().expect("utf-8")], &b, ""));
    assert!(e.contains("not a switchboard backup"), "{e}");

    let said = ok(run(&["restore", file.to_str().expect("utf-8")], &b, ""));
    assert!(said.contains("restored"), "{said}");
    let e = fails(run(&["restore", file.to_str().expect("utf-8")], &b, ""));
    assert!(e.contains("--force"), "{e}");
    ok(run(
        &["restore", file.to_str().expect("utf-8"), "--force"],
        &b,
        "",
    ));

    let _server = start_process(&cfg, &b);
    let users = ok(run(&["user", "list"], &b, ""));
    assert!(users.contains("bob") && users.contains("staff"), "{users}");
    let mut v = visitor(port).await;
    let history = call(
        &mut v,
        "switchboard.chat.history",
        json!([thread]),
        json!({"after": 0, "limit": 100}),
    )
    .await;
    assert_eq!(texts(&history), ["hello", "is anyone there?", "bye"]);
    let mut s = Client::connect(&format!("ws://127.0.0.1:{port}/raw"), Ser::Json).await;
    s.join("realm1").await;
    let sub = s.subscribe("com.hist.a", json!({})).await;
    let events = call(
        &mut s,
        "wamp.subscription.get_events",
        json!([sub, 10]),
        json!({}),
    )
    .await;
    let args: Vec<Value> = events
        .as_array()
        .expect("events")
        .iter()
        .map(|e| e["args"][0].clone())
        .collect();
    assert_eq!(args, [json!(2), json!(1), json!(0)]);
    // Numbering goes on where the backup left it.
    let next = call(
        &mut v,
        "switchboard.chat.send",
        json!([thread, "again"]),
        json!({}),
    )
    .await;
    assert_eq!(next["seq"], 4);
}
