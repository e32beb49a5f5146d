//! The built-in chat service through real sessions: visitors (token and app-signed JWT),
//! staff, durable numbered messages, retries, catch-up, receipts, presence — and privacy
//! enforced by the router against raw clients.

use crate::support::*;
use base64::Engine as _;
use serde_json::{json, Value};
use std::collections::{HashMap, VecDeque};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;
use switchboard::config::{crossbar, Limits};

pub(crate) fn config(port: u16) -> String {
    config_with(
        port,
        r#""max_message_length": 50, "messages_per_minute": 100000"#,
    )
}

/// The test node with `chat` options `extra` (JSON members).
pub(crate) fn config_with(port: u16, extra: &str) -> String {
    format!(
        r#"{{
  "version": 2,
  "workers": [{{
    "type": "router",
    "realms": [{{"name": "realm1", "roles": [
      {{"name": "visitor"}},
      {{"name": "staff"}},
      {{"name": "backend", "permissions": [{{"uri": "", "match": "prefix", "allow": {{"call": true, "register": true, "publish": true, "subscribe": true}}}}]}}
    ]}}],
    "chat": {{"realm": "realm1", "staff_roles": ["staff"], {extra}}},
    "transports": [{{"type": "web", "endpoint": {{"type": "tcp", "port": {port}, "interface": "127.0.0.1"}},
      "paths": {{
        "ws": {{"type": "websocket", "auth": {{"ticket": {{"type": "visitor", "jwt_hs256_secret": "app-secret"}}}}}},
        "staff": {{"type": "websocket", "auth": {{"ticket": {{"type": "static", "principals": {{"alice": {{"ticket": "alice-pw", "role": "staff"}}}}}}}}}},
        "raw": {{"type": "websocket", "auth": {{"anonymous": {{"type": "static", "role": "backend"}}}}}}
      }}}}]
  }}]
}}"#
    )
}

pub(crate) async fn server() -> TestServer {
    server_with(&config(0)).await
}

pub(crate) async fn server_with(cfg: &str) -> TestServer {
    let loaded = crossbar::parse(cfg, false, "chat.json", Limits::default()).expect("config");
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    TestServer::with(move |o| o.node = loaded.node).await
}

pub(crate) async fn login(url: &str, ticket: &str) -> Client {
    let mut c = Client::connect(url, Ser::Json).await;
    c.send(json!([1, "realm1", {"authmethods": ["ticket"], "roles": {"caller": {}, "subscriber": {}}}]))
        .await;
    let ch = c.recv().await;
    assert_eq!(ch[0], 4, "{ch}");
    c.send(json!([5, ticket, {}])).await;
    let w = c.recv().await;
    assert_eq!(w[0], 2, "WELCOME expected: {w}");
    c.session = w[1].as_u64().expect("session");
    c
}

pub(crate) async fn visitor(srv: &TestServer, token: &str) -> Client {
    login(&format!("ws://{}/ws", srv.addr), token).await
}

pub(crate) async fn staff(srv: &TestServer) -> Client {
    let mut c = Client::connect(&format!("ws://{}/staff", srv.addr), Ser::Json).await;
    c.send(json!([1, "realm1", {"authmethods": ["ticket"], "authid": "alice"}]))
        .await;
    c.recv().await;
    c.send(json!([5, "alice-pw", {}])).await;
    let w = c.recv().await;
    assert_eq!(w[0], 2, "{w}");
    c.session = w[1].as_u64().expect("session");
    c
}

/// CALL switchboard.chat.<name>; RESULT args[0] (or null).
pub(crate) async fn chat(c: &mut Client, name: &str, args: Value, kwargs: Value) -> Value {
    let r = c.request_id();
    c.send(json!([
        48,
        r,
        {},
        format!("switchboard.chat.{name}"),
        args,
        kwargs
    ]))
    .await;
    loop {
        let m = c.recv().await;
        if m[0] == 36 {
            // Events may arrive before the RESULT (a message is published once durable, then
            // acknowledged): keep them for `event`.
            hold(c.session, m[5].clone());
            continue;
        }
        assert_eq!(m[0], 50, "RESULT for {name} expected, got {m}");
        assert_eq!(m[1], r);
        return m[3].get(0).cloned().unwrap_or(Value::Null);
    }
}

pub(crate) async fn chat_error(c: &mut Client, name: &str, args: Value, kwargs: Value) -> String {
    let r = c.request_id();
    c.send(json!([
        48,
        r,
        {},
        format!("switchboard.chat.{name}"),
        args,
        kwargs
    ]))
    .await;
    loop {
        let m = c.recv().await;
        if m[0] == 36 {
            hold(c.session, m[5].clone());
            continue;
        }
        assert_eq!(m[0], 8, "ERROR for {name} expected, got {m}");
        assert_eq!((m[1].as_u64(), m[2].as_u64()), (Some(48), Some(r)), "{m}");
        assert!(
            m[5][0].as_str().is_some_and(|s| !s.is_empty()),
            "explains itself: {m}"
        );
        return m[4].as_str().unwrap_or("").to_owned();
    }
}

/// Events `chat` read while waiting for a RESULT, per session.
static HELD: parking_lot::Mutex<Option<HashMap<u64, VecDeque<Value>>>> =
    parking_lot::Mutex::new(None);

fn hold(session: u64, e: Value) {
    HELD.lock()
        .get_or_insert_with(HashMap::new)
        .entry(session)
        .or_default()
        .push_back(e);
}

fn take_held(session: u64) -> Option<Value> {
    HELD.lock().as_mut()?.get_mut(&session)?.pop_front()
}

/// The next EVENT's kwargs.
pub(crate) async fn event(c: &mut Client) -> Value {
    if let Some(e) = take_held(c.session) {
        return e;
    }
    let m = c.recv().await;
    assert_eq!(m[0], 36, "EVENT expected, got {m}");
    m[5].clone()
}

/// `open()` for a visitor: (its authid, its thread id).
pub(crate) async fn open_thread(c: &mut Client) -> (String, u64) {
    let t = chat(c, "open", json!([]), json!({})).await;
    (
        t["visitor"].as_str().expect("visitor").to_owned(),
        t["thread"].as_u64().expect("thread"),
    )
}

pub(crate) const TOKEN_A: &str = "visitor-token-aaaaaaaaaaaaaaaaaa";
pub(crate) const TOKEN_B: &str = "visitor-token-bbbbbbbbbbbbbbbbbb";

#[tokio::test]
async fn visitor_and_staff_chat_both_ways() {
    let srv = server().await;
    let mut agent = staff(&srv).await;
    agent.subscribe("switchboard.chat.inbox", json!({})).await;
    let mut v = visitor(&srv, TOKEN_A).await;
    let t = chat(&mut v, "open", json!([]), json!({"name": "Ann"})).await;
    let id = t["thread"].as_u64().expect("thread id");
    assert_eq!(t["status"], "open");
    assert!(t["visitor"]
        .as_str()
        .is_some_and(|a| a.starts_with("visitor:")));
    // The same visitor opening again gets the same open thread.
    assert_eq!(
        chat(&mut v, "open", json!([]), json!({})).await["thread"],
        id
    );
    let note = event(&mut agent).await;
    assert_eq!(note["type"], "thread");
    assert_eq!(note["thread"]["visitor_name"], "Ann");
    assert!(
        note["thread"].get("unread").is_none() && note["thread"].get("read").is_none(),
        "per-reader fields are not broadcast: {note}"
    );
    assert_eq!(
        note["thread"]["visitor_online"], true,
        "presence is known from the join itself, before the visitor's first call"
    );
    v.subscribe(&format!("switchboard.chat.thread.{id}"), json!({}))
        .await;

    let sent = chat(
        &mut v,
        "send",
        json!([id, "hello <b>there</b>"]),
        json!({"client_id": "c1"}),
    )
    .await;
    assert_eq!(sent["seq"], 1);
    let own = event(&mut v).await;
    assert_eq!(
        (own["type"].as_str(), own["seq"].as_u64()),
        (Some("message"), Some(1))
    );
    assert_eq!(
        own["text"], "hello <b>there</b>",
        "text travels verbatim; never HTML"
    );
    assert_eq!(own["sender_name"], "Ann");
    let inbox = event(&mut agent).await;
    assert_eq!(inbox["thread"], id);

    let list = chat(&mut agent, "threads", json!([]), json!({})).await;
    assert_eq!(list[0]["thread"], id);
    assert_eq!(list[0]["unread"], 1);
    assert_eq!(
        list[0]["last_text"], "hello <b>there</b>",
        "a preview for the list"
    );
    assert_eq!(list[0]["visitor_online"], true);

    // Staff answer; the visitor sees it on the thread topic, then the receipt and typing.
    agent
        .subscribe(&format!("switchboard.chat.thread.{id}"), json!({}))
        .await;
    chat(&mut agent, "typing", json!([id]), json!({})).await;
    let typing = event(&mut v).await;
    assert_eq!(
        (typing["type"].as_str(), typing["member"].as_str()),
        (Some("typing"), Some("alice"))
    );
    let reply = chat(&mut agent, "send", json!([id, "hi Ann"]), json!({})).await;
    assert_eq!(reply["seq"], 2);
    let e = event(&mut v).await;
    assert_eq!(
        (
            e["seq"].as_u64(),
            e["sender"].as_str(),
            e["sender_role"].as_str()
        ),
        (Some(2), Some("alice"), Some("staff"))
    );
    chat(&mut v, "read", json!([id, 2]), json!({})).await;
    loop {
        let e = event(&mut v).await;
        if e["type"] == "read" {
            assert_eq!(e["seq"], 2);
            break;
        }
    }
    let mine = chat(&mut v, "threads", json!([]), json!({})).await;
    assert_eq!(
        (mine[0]["read"].as_u64(), mine[0]["unread"].as_u64()),
        (Some(2), Some(0))
    );
    // Staff have read nothing yet; their unread counts only the visitor's message, not their
    // own reply; once they read, the visitor sees it in `others_read` (even if it missed the
    // live receipt).
    assert_eq!(mine[0]["others_read"], 0);
    let theirs = chat(&mut agent, "threads", json!([]), json!({})).await;
    assert_eq!(theirs[0]["unread"], 1, "own messages are not unread");
    assert_eq!(theirs[0]["others_read"], 2, "the visitor read up to 2");
    chat(&mut agent, "read", json!([id, 2]), json!({})).await;
    let mine = chat(&mut v, "threads", json!([]), json!({})).await;
    assert_eq!(mine[0]["others_read"], 2);

    // History: newest first by cursor, or everything after a seq (catch-up after reconnect).
    let h = chat(&mut v, "history", json!([id]), json!({"limit": 1})).await;
    assert_eq!(h.as_array().map(Vec::len), Some(1));
    assert_eq!(h[0]["seq"], 2);
    let older = chat(&mut v, "history", json!([id]), json!({"before": 2})).await;
    assert_eq!(older[0]["seq"], 1);
    let after = chat(&mut v, "history", json!([id]), json!({"after": 0})).await;
    let seqs: Vec<u64> = after
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["seq"].as_u64())
        .collect();
    assert_eq!(seqs, [1, 2]);

    // Staff-only operations.
    assert_eq!(
        chat(&mut agent, "assign", json!([id, "alice"]), json!({})).await["assignee"],
        "alice"
    );
    assert_eq!(
        chat(&mut agent, "assign", json!([id, null]), json!({})).await["assignee"],
        json!(null),
        "null unassigns"
    );
    assert_eq!(
        chat(&mut agent, "resolve", json!([id]), json!({})).await["status"],
        "resolved"
    );
    assert_eq!(
        chat_error(&mut v, "resolve", json!([id]), json!({})).await,
        "wamp.error.not_authorized"
    );
    // The visitor learns the status on the thread topic; writing again reopens the thread,
    // which `open` keeps returning (no new empty thread).
    loop {
        let e = event(&mut v).await;
        if e["type"] == "status" && e["status"] == "resolved" {
            break;
        }
    }
    chat(&mut v, "send", json!([id, "one more thing"]), json!({})).await;
    let again = chat(&mut v, "open", json!([]), json!({})).await;
    assert_eq!(
        (again["thread"].clone(), again["status"].clone()),
        (json!(id), json!("open"))
    );
}

#[tokio::test]
async fn retried_sends_do_not_duplicate_and_bad_messages_are_refused() {
    let srv = server().await;
    let mut v = visitor(&srv, TOKEN_A).await;
    let id = chat(&mut v, "open", json!([]), json!({})).await["thread"].clone();
    let first = chat(
        &mut v,
        "send",
        json!([id, "once"]),
        json!({"client_id": "m-1"}),
    )
    .await;
    let again = chat(
        &mut v,
        "send",
        json!([id, "once"]),
        json!({"client_id": "m-1"}),
    )
    .await;
    assert_eq!(first, again, "a retry returns the first result");
    let all = chat(&mut v, "history", json!([id]), json!({"after": 0})).await;
    assert_eq!(all.as_array().map(Vec::len), Some(1));
    assert_eq!(
        chat_error(&mut v, "send", json!([id, "x".repeat(51)]), json!({})).await,
        "wamp.error.invalid_argument"
    );
    assert_eq!(
        chat_error(&mut v, "send", json!([id, "   "]), json!({})).await,
        "wamp.error.invalid_argument"
    );
    assert_eq!(
        chat_error(&mut v, "send", json!([id]), json!({})).await,
        "wamp.error.invalid_argument"
    );
    assert_eq!(
        chat_error(&mut v, "send", json!([id, "x"]), json!({"client_id": 5})).await,
        "wamp.error.invalid_argument"
    );
}

#[tokio::test]
async fn privacy_is_enforced_by_the_router() {
    let srv = server().await;
    let mut a = visitor(&srv, TOKEN_A).await;
    let id = chat(&mut a, "open", json!([]), json!({})).await["thread"]
        .as_u64()
        .expect("id");
    chat(&mut a, "send", json!([id, "private"]), json!({})).await;

    // Another visitor: no subscription, no history, no sending, no trace of the thread.
    let mut b = visitor(&srv, TOKEN_B).await;
    let r = b.request_id();
    let (uri, _) = b
        .expect_error(json!([32, r, {}, format!("switchboard.chat.thread.{id}")]))
        .await;
    assert_eq!(uri, "wamp.error.not_authorized");
    let r = b.request_id();
    let (uri, _) = b
        .expect_error(json!([32, r, {"match": "prefix"}, "switchboard.chat.thread."]))
        .await;
    assert_eq!(uri, "wamp.error.not_authorized");
    assert_eq!(
        chat_error(&mut b, "history", json!([id]), json!({})).await,
        "switchboard.chat.error.no_such_thread"
    );
    assert_eq!(
        chat_error(&mut b, "send", json!([id, "hi"]), json!({})).await,
        "switchboard.chat.error.no_such_thread"
    );
    assert_eq!(
        chat(&mut b, "threads", json!([]), json!({})).await,
        json!([])
    );
    let r = b.request_id();
    let (uri, _) = b
        .expect_error(json!([32, r, {}, "switchboard.chat.inbox"]))
        .await;
    assert_eq!(uri, "wamp.error.not_authorized");

    // Staff may follow every thread with one prefix subscription; a visitor may not.
    let mut agent = staff(&srv).await;
    agent
        .subscribe("switchboard.chat.thread.", json!({"match": "prefix"}))
        .await;
    // A raw client whose role allows everything by its static rules still may not read or
    // write chat topics, nor impersonate the service.
    let mut raw = Client::connect(&format!("ws://{}/raw", srv.addr), Ser::Json).await;
    raw.join("realm1").await;
    for (msg, what) in [
        (
            json!([32, 1, {}, format!("switchboard.chat.thread.{id}")]),
            "subscribe",
        ),
        (
            json!([32, 2, {"match": "wildcard"}, "switchboard.chat..1"]),
            "wildcard subscribe",
        ),
        (
            json!([16, 3, {"acknowledge": true}, format!("switchboard.chat.thread.{id}"), ["forged"]]),
            "publish",
        ),
        (json!([64, 4, {}, "switchboard.chat.steal"]), "register"),
        (json!([48, 5, {}, "switchboard.chat.threads", []]), "call"),
    ] {
        let (uri, _) = raw.expect_error(msg).await;
        assert_eq!(uri, "wamp.error.not_authorized", "{what}");
    }
}

#[tokio::test]
async fn app_signed_tokens_identify_logged_in_users() {
    use hmac::{Hmac, KeyInit, Mac};
    let e = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs()
        + 600;
    let claims = format!(r#"{{"sub":"42","name":"Bob Jones","exp":{exp}}}"#);
    let signed = format!(
        "{}.{}",
        e(br#"{"alg":"HS256","typ":"JWT"}"#),
        e(claims.as_bytes())
    );
    let mut mac = <Hmac<sha2::Sha256> as KeyInit>::new_from_slice(b"app-secret").expect("key");
    mac.update(signed.as_bytes());
    let token = format!("{signed}.{}", e(&mac.finalize().into_bytes()));
    let srv = server().await;
    let mut u = visitor(&srv, &token).await;
    let t = chat(&mut u, "open", json!([]), json!({})).await;
    assert_eq!(t["visitor"], "user:42");
    assert_eq!(t["visitor_name"], "Bob Jones");
    // A forged token is refused at login.
    let mut c = Client::connect(&format!("ws://{}/ws", srv.addr), Ser::Json).await;
    c.send(json!([1, "realm1", {"authmethods": ["ticket"]}]))
        .await;
    c.recv().await;
    c.send(json!([5, format!("{signed}.AAAA"), {}])).await;
    c.expect_abort("wamp.error.not_authorized").await;
}

#[tokio::test]
async fn presence_follows_sessions_and_counts_tabs_once() {
    let srv = server().await;
    let mut agent = staff(&srv).await;
    agent
        .subscribe("switchboard.chat.presence", json!({}))
        .await;
    let mut tab1 = visitor(&srv, TOKEN_A).await;
    let online = event(&mut agent).await;
    assert_eq!(online["online"], true);
    let who = online["authid"].clone();
    let mut tab2 = visitor(&srv, TOKEN_A).await;
    chat(
        &mut tab1,
        "page",
        json!(["https://shop.example/cart", "Cart"]),
        json!({}),
    )
    .await;
    let moved = event(&mut agent).await;
    assert_eq!(
        (moved["page_title"].clone(), moved["online"].clone()),
        (json!("Cart"), json!(true)),
        "staff learn where the visitor is"
    );
    let p = chat(&mut agent, "presence", json!([]), json!({})).await;
    assert_eq!(p["visitors"][0]["authid"], who);
    assert_eq!(p["visitors"][0]["sessions"], 2, "two tabs, one person");
    assert_eq!(p["visitors"][0]["page_title"], "Cart");
    assert_eq!(
        chat(&mut tab2, "presence", json!([]), json!({})).await,
        json!({"staff_online": true})
    );
    drop(tab1);
    agent.expect_silence(Duration::from_millis(300)).await;
    drop(tab2);
    let offline = event(&mut agent).await;
    assert_eq!(
        (offline["authid"].clone(), offline["online"].clone()),
        (who, json!(false))
    );
}

/// Acknowledged messages survive SIGKILL of the real binary, in order.
#[tokio::test]
async fn acknowledged_messages_survive_kill_9() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let cfg = dir.path().join("node.json");
    std::fs::write(&cfg, config(port)).expect("config");
    let data = dir.path().join("data");
    let start = || {
        let mut child = Command::new(env!("CARGO_BIN_EXE_switchboard"))
            .arg("--config")
            .arg(&cfg)
            .arg("--data-dir")
            .arg(&data)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("starts");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("ready");
        child
    };
    let url = format!("ws://127.0.0.1:{port}/ws");
    let mut child = start();
    let mut v = login(&url, TOKEN_A).await;
    let id = chat(&mut v, "open", json!([]), json!({})).await["thread"].clone();
    // Many in flight at once, so they share flushes (group commit).
    const N: u64 = 200;
    for i in 0..N {
        let r = v.request_id();
        v.send(json!([48, r, {}, "switchboard.chat.send", [id, format!("m{i}")], {"client_id": format!("k{i}")}]))
            .await;
    }
    let mut acked = 0;
    while acked < N {
        let m = v.recv().await;
        assert_eq!(m[0], 50, "{m}");
        acked += 1;
    }
    child.kill().expect("SIGKILL");
    child.wait().expect("reaped");
    let mut child = start();
    let mut v = login(&url, TOKEN_A).await;
    let all = chat(
        &mut v,
        "history",
        json!([id]),
        json!({"after": 0, "limit": 500}),
    )
    .await;
    let texts: Vec<String> = all
        .as_array()
        .expect("list")
        .iter()
        .map(|m| m["text"].as_str().unwrap_or("").to_owned())
        .collect();
    let mut sorted = texts.clone();
    sorted.sort_by_key(|t| t[1..].parse::<u64>().unwrap_or(0));
    assert_eq!(texts.len() as u64, N, "every acknowledged message is there");
    let seqs: Vec<u64> = all
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["seq"].as_u64())
        .collect();
    assert_eq!(
        seqs,
        (1..=N).collect::<Vec<_>>(),
        "numbered without gaps, in order"
    );
    // Sending again continues the numbering.
    let next = chat(&mut v, "send", json!([id, "after restart"]), json!({})).await;
    assert_eq!(next["seq"], N + 1);
    child.kill().expect("stop");
    let _ = child.wait();
}

#[tokio::test]
async fn search_export_and_forget() {
    let srv = server().await;
    let mut a = visitor(&srv, TOKEN_A).await;
    let ta = chat(&mut a, "open", json!([]), json!({})).await["thread"].clone();
    chat(
        &mut a,
        "send",
        json!([ta, "Where is my ORDER 1234?"]),
        json!({}),
    )
    .await;
    chat(&mut a, "send", json!([ta, "hello"]), json!({})).await;
    let mut b = visitor(&srv, TOKEN_B).await;
    let tb = chat(&mut b, "open", json!([]), json!({})).await["thread"].clone();
    chat(
        &mut b,
        "send",
        json!([tb, "another order question"]),
        json!({}),
    )
    .await;

    let mut agent = staff(&srv).await;
    let found = chat(&mut agent, "search", json!(["order"]), json!({})).await;
    let texts: Vec<&str> = found
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["text"].as_str())
        .collect();
    assert_eq!(
        texts,
        ["another order question", "Where is my ORDER 1234?"],
        "case-insensitive, newest first"
    );
    assert_eq!(
        chat_error(&mut a, "search", json!(["order"]), json!({})).await,
        "wamp.error.not_authorized"
    );
    assert_eq!(
        chat_error(&mut agent, "search", json!([""]), json!({})).await,
        "wamp.error.invalid_argument"
    );

    let export = chat(&mut a, "export", json!([ta]), json!({})).await;
    assert_eq!(export["thread"]["thread"], ta);
    assert_eq!(export["messages"].as_array().map(Vec::len), Some(2));
    assert_eq!(
        chat_error(&mut b, "export", json!([ta]), json!({})).await,
        "switchboard.chat.error.no_such_thread"
    );

    // A visitor forgets itself; staff forget another visitor.
    assert_eq!(
        chat_error(&mut a, "forget", json!(["someone-else"]), json!({})).await,
        "wamp.error.not_authorized"
    );
    assert_eq!(
        chat(&mut a, "forget", json!([]), json!({})).await["threads"],
        1
    );
    assert_eq!(
        chat_error(&mut a, "history", json!([ta]), json!({})).await,
        "switchboard.chat.error.no_such_thread"
    );
    agent.subscribe("switchboard.chat.inbox", json!({})).await;
    let who_b = chat(&mut b, "threads", json!([]), json!({})).await[0]["visitor"].clone();
    assert_eq!(
        chat(&mut agent, "forget", json!([who_b]), json!({})).await["threads"],
        1
    );
    loop {
        let e = event(&mut agent).await;
        if e["type"] == "deleted" {
            assert_eq!(e["thread"], tb, "open inboxes learn of the deletion");
            break;
        }
    }
    let left = chat(&mut agent, "search", json!(["order"]), json!({})).await;
    assert_eq!(left, json!([]), "nothing of either visitor is left");
    assert_eq!(
        chat(&mut agent, "threads", json!([]), json!({})).await,
        json!([])
    );
}

#[tokio::test]
async fn visitors_are_rate_limited() {
    let srv = server_with(&config_with(0, r#""messages_per_minute": 3"#)).await;
    let mut v = visitor(&srv, TOKEN_A).await;
    let id = chat(&mut v, "open", json!([]), json!({})).await["thread"].clone();
    for i in 0..3 {
        chat(&mut v, "send", json!([id, format!("m{i}")]), json!({})).await;
    }
    let r = v.request_id();
    let (uri, args) = v
        .expect_error(json!([
            48,
            r,
            {},
            "switchboard.chat.send",
            [id, "one too many"]
        ]))
        .await;
    assert_eq!(uri, "switchboard.chat.error.rate_limited");
    assert!(
        args[0].as_str().is_some_and(|m| m.contains("retry in")),
        "{args}"
    );
    // Staff are not limited.
    let mut agent = staff(&srv).await;
    for i in 0..5 {
        chat(&mut agent, "send", json!([id, format!("s{i}")]), json!({})).await;
    }
}

#[tokio::test]
async fn ice_servers_hand_out_stun_and_turn_credentials() {
    let cfg = config(0).replace(
        r#""chat": {"#,
        r#""calls": {"ice_uris": ["stun:stun.example.net:3478", "turn:turn.example.net:3478?transport=udp"], "turn_secret": "turn-secret", "credential_ttl": 600},
    "chat": {"#,
    );
    let srv = server_with(&cfg).await;
    let mut v = visitor(&srv, TOKEN_A).await;
    let id = chat(&mut v, "open", json!([]), json!({})).await["thread"]
        .as_u64()
        .expect("thread");
    v.subscribe(&format!("switchboard.chat.thread.{id}"), json!({}))
        .await;
    let mut agent = staff(&srv).await;
    agent
        .subscribe(&format!("switchboard.chat.thread.{id}"), json!({}))
        .await;

    // ICE servers: STUN as configured, TURN with REST credentials for the caller.
    let ice = chat(&mut v, "ice_servers", json!([]), json!({})).await;
    assert_eq!(ice[0]["urls"], json!(["stun:stun.example.net:3478"]));
    let user = ice[1]["username"].as_str().expect("username").to_owned();
    let (expiry, who) = user.split_once(':').expect("expiry:userid");
    assert!(who.starts_with("visitor:"));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let expiry: u64 = expiry.parse().expect("number");
    assert!((now + 590..=now + 610).contains(&expiry), "ttl 600 s");
    use hmac::{Hmac, KeyInit, Mac};
    let mut mac = <Hmac<sha1::Sha1> as KeyInit>::new_from_slice(b"turn-secret").expect("key");
    mac.update(user.as_bytes());
    assert_eq!(
        ice[1]["credential"],
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    );
}

/// A minimal SMTP sink (RFC 5321 happy path), written here: collects each message's DATA.
async fn smtp_sink() -> (u16, tokio::sync::mpsc::UnboundedReceiver<String>) {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((sock, _)) = listener.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let (r, mut w) = sock.into_split();
                let mut lines = BufReader::new(r).lines();
                let _ = w.write_all(b"220 sink ESMTP\r\n").await;
                let mut data: Option<String> = None;
                while let Ok(Some(line)) = lines.next_line().await {
                    if let Some(d) = data.as_mut() {
                        if line == "." {
                            let _ = tx.send(std::mem::take(d));
                            data = None;
                            let _ = w.write_all(b"250 queued\r\n").await;
                        } else {
                            d.push_str(&line);
                            d.push('\n');
                        }
                        continue;
                    }
                    let verb = line.get(..4).unwrap_or("").to_ascii_uppercase();
                    let reply: &[u8] = match verb.as_str() {
                        "EHLO" | "HELO" => b"250 sink\r\n",
                        "DATA" => {
                            data = Some(String::new());
                            b"354 go ahead\r\n"
                        }
                        "QUIT" => {
                            let _ = w.write_all(b"221 bye\r\n").await;
                            break;
                        }
                        _ => b"250 ok\r\n",
                    };
                    let _ = w.write_all(reply).await;
                }
            });
        }
    });
    (port, rx)
}

#[tokio::test]
async fn offline_messages_are_stored_and_emailed_to_staff() {
    let (port, mut mail) = smtp_sink().await;
    let cfg = config(0).replace(
        r#""max_message_length": 50"#,
        &format!(
            r#""max_message_length": 200, "email": {{"smtp_host": "127.0.0.1", "smtp_port": {port}, "from": "chat@shop.example", "to": ["team@shop.example"]}}"#
        ),
    );
    let srv = server_with(&cfg).await;
    let mut v = visitor(&srv, TOKEN_A).await;
    // Nobody is online.
    assert_eq!(
        chat(&mut v, "presence", json!([]), json!({})).await,
        json!({"staff_online": false})
    );
    let r = chat(
        &mut v,
        "leave_message",
        json!(["Do you ship to Norway? <b>asap</b>"]),
        json!({"email": "kari@example.no", "name": "Kari", "client_id": "off-1"}),
    )
    .await;
    assert_eq!(r["emailed"], true);
    // A retry with the same client_id stores and sends nothing more.
    let again = chat(
        &mut v,
        "leave_message",
        json!(["Do you ship to Norway? <b>asap</b>"]),
        json!({"email": "kari@example.no", "name": "Kari", "client_id": "off-1"}),
    )
    .await;
    assert_eq!(
        (again["seq"].clone(), again["duplicate"].clone()),
        (r["seq"].clone(), json!(true))
    );
    let id = r["thread"].clone();
    let body = tokio::time::timeout(std::time::Duration::from_secs(10), mail.recv())
        .await
        .expect("an email in time")
        .expect("sink open");
    assert!(body.contains("Subject: Chat message from Kari"), "{body}");
    assert!(body.contains("Reply-To: kari@example.no"), "{body}");
    assert!(
        body.contains("Do you ship to Norway? <b>asap</b>"),
        "plain text, verbatim: {body}"
    );
    assert!(
        body.to_ascii_lowercase()
            .contains("content-type: text/plain"),
        "{body}"
    );
    // Staff find it in the thread when they come back, with the address to answer.
    let mut agent = staff(&srv).await;
    let h = chat(&mut agent, "history", json!([id]), json!({"after": 0})).await;
    let texts: Vec<&str> = h
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["text"].as_str())
        .collect();
    assert_eq!(
        texts,
        [
            "Do you ship to Norway? <b>asap</b>",
            "Left while no one was online; answer by email to kari@example.no"
        ]
    );
    let kinds: Vec<&str> = h
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["kind"].as_str())
        .collect();
    assert_eq!(
        kinds,
        ["text", "system"],
        "the service's note says what it is"
    );
    // Bad input.
    for (args, kwargs) in [
        (json!(["hi"]), json!({"email": "not an address"})),
        (json!(["hi"]), json!({})),
        (json!([""]), json!({"email": "a@b.co"})),
    ] {
        assert_eq!(
            chat_error(&mut v, "leave_message", args, kwargs).await,
            "wamp.error.invalid_argument"
        );
    }
    assert_eq!(
        chat_error(
            &mut agent,
            "leave_message",
            json!(["x"]),
            json!({"email": "a@b.co"})
        )
        .await,
        "wamp.error.not_authorized"
    );
}
