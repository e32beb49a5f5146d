//! Reloading the configuration while sessions stay connected: new permissions apply to
//! sessions already joined, realms come and go, and a broken config is rejected whole.

use crate::support::*;
use serde_json::json;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;
use switchboard::config::{crossbar, Limits};

/// A node whose anonymous role may subscribe under `prefix`; `extra_realm` adds realm2.
fn config(prefix: &str, extra_realm: bool) -> String {
    let realm2 = if extra_realm {
        r#", {"name": "realm2", "roles": [{"name": "anonymous", "permissions": [{"uri": "", "match": "prefix", "allow": {"subscribe": true}}]}]}"#
    } else {
        ""
    };
    format!(
        r#"{{"version": 2, "workers": [{{"type": "router",
  "realms": [{{"name": "realm1", "roles": [{{"name": "anonymous", "permissions": [
     {{"uri": "{prefix}", "match": "prefix", "allow": {{"subscribe": true, "publish": true}}}}]}}]}}{realm2}],
  "transports": [{{"type": "websocket", "endpoint": {{"type": "tcp", "port": 0, "interface": "127.0.0.1"}}}}]}}]}}"#
    )
}

fn node(text: &str) -> switchboard::config::NodeConfig {
    crossbar::parse(text, false, "reload.json", Limits::default())
        .expect("config loads")
        .node
}

async fn subscribe_result(c: &mut Client, topic: &str) -> Result<u64, String> {
    let r = c.request_id();
    c.send(json!([32, r, {}, topic])).await;
    let m = c.recv().await;
    match m[0].as_u64() {
        Some(33) => Ok(m[2].as_u64().expect("id")),
        _ => Err(m[4].as_str().unwrap_or_default().to_owned()),
    }
}

#[tokio::test]
async fn reload_applies_to_joined_sessions_and_adds_and_removes_realms() {
    let first = node(&config("com.a.", false));
    let srv = TestServer::with(move |o| o.node = first).await;
    let running = srv.running.as_ref().expect("running");
    let mut c = srv.joined(Ser::Json).await;
    assert!(subscribe_result(&mut c, "com.a.x").await.is_ok());
    assert_eq!(
        subscribe_result(&mut c, "com.b.x").await,
        Err("wamp.error.not_authorized".into())
    );

    let r = running.reload(&node(&config("com.", true)));
    assert_eq!(r.updated, vec!["realm1".to_owned()]);
    assert_eq!(r.added, vec!["realm2".to_owned()]);
    assert!(r.needs_restart.is_empty(), "{r:?}");
    // The same session, never disconnected, now may subscribe more.
    assert!(subscribe_result(&mut c, "com.b.x").await.is_ok());
    let mut other = srv.joined_realm(Ser::Json, "realm2").await;
    assert!(subscribe_result(&mut other, "anything").await.is_ok());

    // Taking realm2 away closes its sessions; realm1's stay.
    let r = running.reload(&node(&config("com.a.", false)));
    assert_eq!(r.removed, vec!["realm2".to_owned()]);
    let closing = other.recv().await;
    assert_eq!(closing[0], 6, "GOODBYE: {closing}");
    assert_eq!(closing[2], "wamp.close.system_shutdown");
    assert_eq!(
        subscribe_result(&mut c, "com.b.y").await,
        Err("wamp.error.not_authorized".into()),
        "the narrower rule applies again"
    );
    let mut late = srv.client(Ser::Json).await;
    late.send(json!([1, "realm2", {"roles": {"subscriber": {}}}]))
        .await;
    late.expect_abort("wamp.error.no_such_realm").await;

    // What cannot change live is reported, not applied.
    let mut moved = node(&config("com.a.", false));
    moved.router.limits.session.subscriptions = 5;
    moved.listeners[0].endpoint =
        switchboard::config::Endpoint::Tcp("127.0.0.1:1".parse().expect("addr"));
    let r = running.reload(&moved);
    assert_eq!(
        r.needs_restart,
        vec!["limits".to_owned(), "listeners".to_owned()]
    );
}

#[tokio::test]
async fn sighup_reloads_the_file_and_keeps_the_running_config_when_the_new_one_is_broken() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("node.json");
    std::fs::write(&file, config("com.a.", false)).expect("write config");
    let mut child = Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .arg("--config")
        .arg(&file)
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("binary starts");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("ready line");
    let addr = line
        .trim()
        .strip_prefix("switchboard listening on http://")
        .expect("ready line")
        .to_owned();
    let url = format!("ws://{addr}/ws");
    let mut c = Client::connect(&url, Ser::Json).await;
    c.join("realm1").await;
    assert!(subscribe_result(&mut c, "com.b.x").await.is_err());
    let hup = || {
        let ok = Command::new("kill")
            .arg("-HUP")
            .arg(child.id().to_string())
            .status()
            .expect("kill");
        assert!(ok.success());
    };

    std::fs::write(&file, config("com.", false)).expect("write config");
    hup();
    let mut allowed = false;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        if subscribe_result(&mut c, "com.b.x").await.is_ok() {
            allowed = true;
            break;
        }
    }
    assert!(allowed, "the reloaded rules apply to the connected session");

    // A broken file: rejected, the running rules stay, the session stays.
    std::fs::write(&file, "{ not json").expect("write config");
    hup();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(subscribe_result(&mut c, "com.b.z").await.is_ok());
    assert!(subscribe_result(&mut c, "org.other").await.is_err());

    // `switchboard reload` (systemd's ExecReload) does the same and reports the outcome.
    let data = dir.path().join("data");
    let reload = |data: &std::path::Path| {
        Command::new(env!("CARGO_BIN_EXE_switchboard"))
            .arg("reload")
            .arg("--data-dir")
            .arg(data)
            .env_remove("SWITCHBOARD_DATA_DIR")
            .output()
            .expect("binary runs")
    };
    let refused = tokio::task::spawn_blocking({
        let data = data.clone();
        move || reload(&data)
    })
    .await
    .expect("join");
    assert!(
        !refused.status.success(),
        "a broken config fails the reload"
    );
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("rejected"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    std::fs::write(&file, config("", false)).expect("write config");
    let done = tokio::task::spawn_blocking({
        let data = data.clone();
        move || reload(&data)
    })
    .await
    .expect("join");
    assert!(
        done.status.success(),
        "{}",
        String::from_utf8_lossy(&done.stderr)
    );
    assert!(String::from_utf8_lossy(&done.stdout).contains("configuration reloaded"));
    assert!(subscribe_result(&mut c, "org.other").await.is_ok());
    let nobody = tokio::task::spawn_blocking({
        let d = dir.path().join("elsewhere");
        move || reload(&d)
    })
    .await
    .expect("join");
    assert!(!nobody.status.success());

    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
    let out = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .expect("join")
        .expect("output");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("configuration reloaded"), "{stderr}");
    assert!(
        stderr.contains("new config was rejected, the running one is kept"),
        "{stderr}"
    );
    assert!(out.status.success(), "{stderr}");
}

/// A node whose websocket transport admits `alice` with `ticket`.
fn ticket_config(ticket: &str) -> String {
    format!(
        r#"{{"version": 2, "workers": [{{"type": "router",
  "realms": [{{"name": "realm1", "roles": [{{"name": "user", "permissions": [
     {{"uri": "", "match": "prefix", "allow": {{"subscribe": true}}}}]}}]}}],
  "transports": [{{"type": "websocket", "endpoint": {{"type": "tcp", "port": 0, "interface": "127.0.0.1"}},
     "auth": {{"ticket": {{"type": "static", "principals": {{"alice": {{"ticket": "{ticket}", "role": "user"}}}}}}}}}}]}}]}}"#
    )
}

async fn ticket_login(url: &str, ticket: &str) -> Result<Client, String> {
    let mut c = Client::connect(url, Ser::Json).await;
    c.send(json!([1, "realm1", {"authmethods": ["ticket"], "authid": "alice"}]))
        .await;
    let ch = c.recv().await;
    assert_eq!(ch[0], 4, "CHALLENGE: {ch}");
    c.send(json!([5, ticket, {}])).await;
    let m = c.recv().await;
    match m[0].as_u64() {
        Some(2) => Ok(c),
        _ => Err(m[2].as_str().unwrap_or_default().to_owned()),
    }
}

#[tokio::test]
async fn reload_changes_transport_authentication_for_new_logins_only() {
    let first = node(&ticket_config("old-secret"));
    let srv = TestServer::with(move |o| o.node = first).await;
    let running = srv.running.as_ref().expect("running");
    let url = srv.ws_url();
    let mut before = ticket_login(&url, "old-secret")
        .await
        .expect("old ticket works");

    let r = running.reload(&node(&ticket_config("new-secret")));
    assert!(r.needs_restart.is_empty(), "{r:?}");
    assert_eq!(
        ticket_login(&url, "old-secret").await.err().as_deref(),
        Some("wamp.error.not_authorized"),
        "the old ticket is refused"
    );
    assert!(ticket_login(&url, "new-secret").await.is_ok());
    // The session that logged in before keeps working.
    assert!(subscribe_result(&mut before, "com.still.here")
        .await
        .is_ok());
}
