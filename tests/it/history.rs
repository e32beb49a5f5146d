//! Event history (Crossbar's realm `store.event-history`, kept in sled) and event retention,
//! through real sessions — including a kill -9 of the real binary between publishing and
//! reading.

use crate::support::*;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use switchboard::config::{crossbar, Limits};

fn config(port: u16) -> String {
    format!(
        r#"{{
  "version": 2,
  "workers": [{{
    "type": "router",
    "realms": [{{"name": "realm1",
      "roles": [
        {{"name": "anonymous", "permissions": [{{"uri": "", "match": "prefix", "allow": {{"call": true, "register": true, "publish": true, "subscribe": true}}}}]}},
        {{"name": "blind", "permissions": [{{"uri": "", "match": "prefix", "allow": {{"call": true, "publish": true}}}}]}}
      ],
      "store": {{"type": "memory", "event-history": [
        {{"uri": "com.hist.", "match": "prefix", "limit": 5}},
        {{"uri": "com.one", "limit": 100}}
      ]}}
    }}],
    "transports": [{{"type": "web", "endpoint": {{"type": "tcp", "port": {port}, "interface": "127.0.0.1"}},
      "paths": {{"ws": {{"type": "websocket"}},
                "blind": {{"type": "websocket", "auth": {{"anonymous": {{"type": "static", "role": "blind"}}}}}}}}}}]
  }}]
}}"#
    )
}

async fn server() -> TestServer {
    let loaded = crossbar::parse(&config(0), false, "h.json", Limits::default()).expect("config");
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    TestServer::with(move |o| o.node = loaded.node).await
}

async fn publish(c: &mut Client, topic: &str, args: Value, options: Value) -> u64 {
    let r = c.request_id();
    let mut options = options;
    options["acknowledge"] = json!(true);
    c.send(json!([16, r, options, topic, args])).await;
    let m = c.recv().await;
    assert_eq!(m[0], 17, "PUBLISHED expected, got {m}");
    assert_eq!(m[1], r);
    m[2].as_u64().expect("publication")
}

async fn call(c: &mut Client, args: Value, kwargs: Value) -> Value {
    let r = c.request_id();
    c.send(json!([
        48,
        r,
        {},
        "wamp.subscription.get_events",
        args,
        kwargs
    ]))
    .await;
    let m = c.recv().await;
    assert_eq!(m[0], 50, "RESULT expected, got {m}");
    m[3][0].clone()
}

fn field(events: &Value, key: &str) -> Vec<Value> {
    events
        .as_array()
        .expect("list of events")
        .iter()
        .map(|e| e[key].clone())
        .collect()
}

#[tokio::test]
async fn get_events_returns_the_kept_events_in_both_forms() {
    let srv = server().await;
    let mut p = srv.joined(Ser::Json).await;
    let mut pubs = Vec::new();
    for i in 0..7 {
        pubs.push(publish(&mut p, "com.hist.a", json!([i, "\u{0}AAE="]), json!({})).await);
    }
    let mut s = srv.joined(Ser::MsgPack).await;
    let sub = s.subscribe("com.hist.a", json!({})).await;

    // Crossbar's positional form: newest first, at most `limit` (the rule keeps 5).
    let ev = call(&mut s, json!([sub, 100]), json!({})).await;
    assert_eq!(
        field(&ev, "publication"),
        pubs[2..].iter().rev().map(|p| json!(p)).collect::<Vec<_>>()
    );
    assert_eq!(
        ev[0]["args"],
        json!([6, "\u{0}AAE="]),
        "binary survives storage"
    );
    assert_eq!(ev[0]["topic"], "com.hist.a");
    assert_eq!(ev[0]["subscription"], sub);
    assert!(ev[0]["timestamp"]
        .as_str()
        .is_some_and(|t| t.ends_with('Z')));
    let ev = call(&mut s, json!([sub, 2]), json!({})).await;
    assert_eq!(field(&ev, "publication"), [json!(pubs[6]), json!(pubs[5])]);
    // Default limit (10) and the keyword form, oldest first.
    let ev = call(&mut s, json!([sub]), json!({"reverse": false, "limit": 3})).await;
    assert_eq!(
        field(&ev, "publication"),
        [json!(pubs[2]), json!(pubs[3]), json!(pubs[4])]
    );
    let ev = call(
        &mut s,
        json!([sub]),
        json!({"reverse": false, "after_publication": pubs[4]}),
    )
    .await;
    assert_eq!(field(&ev, "publication"), [json!(pubs[5]), json!(pubs[6])]);
    let ev = call(
        &mut s,
        json!([sub]),
        json!({"before_time": "2000-01-01T00:00:00Z"}),
    )
    .await;
    assert_eq!(ev, json!([]));

    // A prefix subscription reads every matching topic; `topic` narrows it.
    publish(&mut p, "com.hist.b", json!(["b"]), json!({})).await;
    let psub = s.subscribe("com.hist.", json!({"match": "prefix"})).await;
    let ev = call(&mut s, json!([psub, 100]), json!({})).await;
    assert_eq!(ev.as_array().map(Vec::len), Some(6));
    assert_eq!(ev[0]["topic"], "com.hist.b");
    let ev = call(&mut s, json!([psub]), json!({"topic": "com.hist.b"})).await;
    assert_eq!(field(&ev, "args"), [json!(["b"])]);

    // Events addressed to particular sessions are not kept.
    publish(
        &mut p,
        "com.one",
        json!(["secret"]),
        json!({"eligible": [s.session]}),
    )
    .await;
    publish(&mut p, "com.one", json!(["public"]), json!({})).await;
    let one = s.subscribe("com.one", json!({})).await;
    let ev = call(&mut s, json!([one, 10]), json!({})).await;
    assert_eq!(field(&ev, "args"), [json!(["public"])]);

    // No history for this topic; no such subscription; bad arguments.
    let other = s.subscribe("com.other", json!({})).await;
    let r = s.request_id();
    let (uri, _) = s
        .expect_error(json!([48, r, {}, "wamp.subscription.get_events", [other]]))
        .await;
    assert_eq!(uri, "wamp.error.history_unavailable");
    let r = s.request_id();
    let (uri, _) = s
        .expect_error(json!([48, r, {}, "wamp.subscription.get_events", [12345]]))
        .await;
    assert_eq!(uri, "wamp.error.no_such_subscription");
    let r = s.request_id();
    let (uri, _) = s
        .expect_error(
            json!([48, r, {}, "wamp.subscription.get_events", [sub], {"from_time": "soon"}]),
        )
        .await;
    assert_eq!(uri, "wamp.error.invalid_argument");
}

#[tokio::test]
async fn reading_history_needs_subscribe_permission() {
    let srv = server().await;
    let mut p = srv.joined(Ser::Json).await;
    publish(&mut p, "com.one", json!([1]), json!({})).await;
    let sub = p.subscribe("com.one", json!({})).await;
    // "blind" may call but not subscribe: it cannot read what it could not have received.
    let mut blind = Client::connect(&format!("ws://{}/blind", srv.addr), Ser::Json).await;
    blind.join("realm1").await;
    let r = blind.request_id();
    let (uri, _) = blind
        .expect_error(json!([48, r, {}, "wamp.subscription.get_events", [sub]]))
        .await;
    assert_eq!(uri, "wamp.error.not_authorized");
}

#[tokio::test]
async fn retained_events_reach_late_subscribers_that_ask() {
    let srv = TestServer::start().await;
    let mut p = srv.joined(Ser::Json).await;
    publish(
        &mut p,
        "com.state.temp",
        json!([20]),
        json!({"retain": true}),
    )
    .await;
    let last = publish(
        &mut p,
        "com.state.temp",
        json!([21]),
        json!({"retain": true}),
    )
    .await;
    publish(&mut p, "com.state.temp", json!([99]), json!({})).await;
    publish(
        &mut p,
        "com.state.hum",
        json!([40]),
        json!({"retain": true, "exclude_me": false}),
    )
    .await;

    let mut s = srv.joined(Ser::Cbor).await;
    let sub = s
        .subscribe("com.state.temp", json!({"get_retained": true}))
        .await;
    let e = s.recv().await;
    assert_eq!(e[0], 36);
    assert_eq!(e[1], sub);
    assert_eq!(
        e[2], last,
        "the last retained event, not the later unretained one"
    );
    assert_eq!(e[3]["retained"], true);
    assert_eq!(e[4], json!([21]));

    // Without get_retained: nothing. With a pattern: every matching retained topic.
    let mut quiet = srv.joined(Ser::Json).await;
    quiet.subscribe("com.state.temp", json!({})).await;
    quiet
        .expect_silence(std::time::Duration::from_millis(200))
        .await;
    let psub = quiet
        .subscribe(
            "com.state.",
            json!({"match": "prefix", "get_retained": true}),
        )
        .await;
    let mut topics = Vec::new();
    for _ in 0..2 {
        let e = quiet.recv().await;
        assert_eq!(e[1], psub);
        topics.push(e[3]["topic"].as_str().unwrap_or("").to_owned());
    }
    topics.sort();
    assert_eq!(topics, ["com.state.hum", "com.state.temp"]);
}

/// Publishes acknowledged events to the real binary, kills it with SIGKILL, starts it again on
/// the same data directory: every acknowledged event is there, in order.
#[tokio::test]
async fn acknowledged_history_survives_kill_9() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("port");
        l.local_addr().expect("addr").port()
    };
    let cfg = dir.path().join("node.json");
    std::fs::write(&cfg, config(port)).expect("config written");
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
            .expect("binary starts");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("ready line");
        assert!(line.contains("listening"), "{line}");
        child
    };
    let url = format!("ws://127.0.0.1:{port}/ws");
    let mut child = start();
    let mut p = Client::connect(&url, Ser::Json).await;
    p.join("realm1").await;
    const N: u64 = 50;
    let mut pubs = Vec::new();
    for i in 0..N {
        pubs.push(publish(&mut p, "com.one", json!([i]), json!({})).await);
    }
    child.kill().expect("SIGKILL");
    child.wait().expect("reaped");

    let mut child = start();
    let mut s = Client::connect(&url, Ser::Json).await;
    s.join("realm1").await;
    let sub = s.subscribe("com.one", json!({})).await;
    let ev = call(
        &mut s,
        json!([sub]),
        json!({"limit": 1000, "reverse": false}),
    )
    .await;
    assert_eq!(
        field(&ev, "publication"),
        pubs.iter().map(|p| json!(p)).collect::<Vec<_>>()
    );
    assert_eq!(
        field(&ev, "args"),
        (0..N).map(|i| json!([i])).collect::<Vec<_>>()
    );
    child.kill().expect("stop");
    let _ = child.wait();
}
