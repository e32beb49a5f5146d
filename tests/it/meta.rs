//! The meta API through real sessions: session, subscription and registration procedures and
//! events, kill, testaments, and the permissions that guard them.

use crate::support::*;
use serde_json::{json, Value};
use std::time::Duration;
use switchboard::config::{crossbar, Limits};

/// CALL `procedure` and return RESULT's args (panics on anything else).
async fn call(c: &mut Client, procedure: &str, args: Value, kwargs: Value) -> Value {
    let r = c.request_id();
    c.send(json!([48, r, {}, procedure, args, kwargs])).await;
    let m = c.recv().await;
    assert_eq!(m[0], 50, "RESULT for {procedure} expected, got {m}");
    assert_eq!(m[1], r);
    m.get(3).cloned().unwrap_or(json!([]))
}

async fn call_error(c: &mut Client, procedure: &str, args: Value, kwargs: Value) -> String {
    let r = c.request_id();
    c.expect_error(json!([48, r, {}, procedure, args, kwargs]))
        .await
        .0
}

/// The next EVENT on `sub`.
async fn event(c: &mut Client, sub: u64) -> Value {
    let m = c.recv().await;
    assert_eq!(m[0], 36, "EVENT expected, got {m}");
    assert_eq!(m[1], sub, "{m}");
    m.get(4).cloned().unwrap_or(json!([]))
}

#[tokio::test]
async fn welcome_announces_the_meta_features() {
    let srv = TestServer::start().await;
    let mut c = srv.client(Ser::Json).await;
    let w = c.join("realm1").await;
    let broker = &w[2]["roles"]["broker"]["features"];
    let dealer = &w[2]["roles"]["dealer"]["features"];
    assert_eq!(broker["session_meta_api"], true);
    assert_eq!(broker["subscription_meta_api"], true);
    assert_eq!(dealer["registration_meta_api"], true);
    assert_eq!(dealer["testament_meta_api"], true);
}

#[tokio::test]
async fn session_join_leave_count_list_get() {
    let srv = TestServer::start().await;
    let mut watcher = srv.joined(Ser::Json).await;
    let on_join = watcher.subscribe("wamp.session.on_join", json!({})).await;
    let on_leave = watcher.subscribe("wamp.session.on_leave", json!({})).await;

    let mut other = srv.joined(Ser::MsgPack).await;
    let joined = event(&mut watcher, on_join).await;
    let d = &joined[0];
    assert_eq!(d["session"], other.session);
    assert_eq!(d["realm"], "realm1");
    assert_eq!(d["authrole"], "anonymous");
    assert_eq!(d["authmethod"], "anonymous");
    assert_eq!(d["serializer"], "msgpack");
    assert_eq!(d["transport"]["channel_framing"], "websocket");

    assert_eq!(
        call(&mut watcher, "wamp.session.count", json!([]), json!({})).await,
        json!([2])
    );
    assert_eq!(
        call(
            &mut watcher,
            "wamp.session.count",
            json!([["nobody"]]),
            json!({})
        )
        .await,
        json!([0])
    );
    let list = call(&mut watcher, "wamp.session.list", json!([]), json!({})).await;
    let mut ids: Vec<u64> = list[0]
        .as_array()
        .expect("list")
        .iter()
        .filter_map(Value::as_u64)
        .collect();
    ids.sort();
    let mut expected = vec![watcher.session, other.session];
    expected.sort();
    assert_eq!(ids, expected);
    let got = call(
        &mut watcher,
        "wamp.session.get",
        json!([other.session]),
        json!({}),
    )
    .await;
    assert_eq!(got[0]["session"], other.session);
    assert_eq!(
        call_error(&mut watcher, "wamp.session.get", json!([12345]), json!({})).await,
        "wamp.error.no_such_session"
    );
    assert_eq!(
        call_error(&mut watcher, "wamp.session.get", json!(["x"]), json!({})).await,
        "wamp.error.invalid_argument"
    );

    other.send(json!([6, {}, "wamp.close.normal"])).await;
    other.recv().await;
    let left = event(&mut watcher, on_leave).await;
    assert_eq!(left, json!([other.session, left[1], "anonymous"]));
    assert!(left[1].is_string(), "the spec's three arguments: {left}");
}

#[tokio::test]
async fn kill_sends_goodbye_and_refuses_itself() {
    let srv = TestServer::start().await;
    let mut admin = srv.joined(Ser::Json).await;
    let mut victim = srv.joined(Ser::Json).await;
    let me = admin.session;
    assert_eq!(
        call_error(&mut admin, "wamp.session.kill", json!([me]), json!({})).await,
        "wamp.error.no_such_session"
    );
    assert_eq!(
        call_error(
            &mut admin,
            "wamp.session.kill",
            json!([victim.session]),
            json!({"reason": "not a uri!"})
        )
        .await,
        "wamp.error.invalid_uri"
    );
    call(
        &mut admin,
        "wamp.session.kill",
        json!([victim.session]),
        json!({"reason": "com.app.bye", "message": "maintenance"}),
    )
    .await;
    let bye = victim.recv().await;
    assert_eq!(bye, json!([6, {"message": "maintenance"}, "com.app.bye"]));
    victim.closed().await;
    assert_eq!(
        call(&mut admin, "wamp.session.count", json!([]), json!({})).await,
        json!([1])
    );

    // By authrole and all: the caller is spared.
    let mut a = srv.joined(Ser::Json).await;
    let mut b = srv.joined(Ser::Cbor).await;
    assert_eq!(
        call(
            &mut admin,
            "wamp.session.kill_by_authrole",
            json!(["anonymous"]),
            json!({})
        )
        .await,
        json!([2])
    );
    for c in [&mut a, &mut b] {
        let m = c.recv().await;
        assert_eq!(m[0], 6);
        assert_eq!(m[2], "wamp.close.normal", "the spec's default reason");
    }
    assert_eq!(
        call(&mut admin, "wamp.session.kill_all", json!([]), json!({})).await,
        json!([0])
    );
}

#[tokio::test]
async fn subscription_and_registration_meta() {
    let srv = TestServer::start().await;
    let mut watcher = srv.joined(Ser::Json).await;
    let on_create = watcher
        .subscribe("wamp.subscription.on_create", json!({}))
        .await;
    let on_sub = watcher
        .subscribe("wamp.subscription.on_subscribe", json!({}))
        .await;
    let on_unsub = watcher
        .subscribe("wamp.subscription.on_unsubscribe", json!({}))
        .await;
    let on_delete = watcher
        .subscribe("wamp.subscription.on_delete", json!({}))
        .await;
    let reg_create = watcher
        .subscribe("wamp.registration.on_create", json!({}))
        .await;
    let reg_register = watcher
        .subscribe("wamp.registration.on_register", json!({}))
        .await;
    let reg_delete = watcher
        .subscribe("wamp.registration.on_delete", json!({}))
        .await;

    let mut c = srv.joined(Ser::Json).await;
    let sub = c.subscribe("com.news.", json!({"match": "prefix"})).await;
    let created = event(&mut watcher, on_create).await;
    assert_eq!(created[0], c.session);
    assert_eq!(created[1]["id"], sub);
    assert_eq!(created[1]["uri"], "com.news.");
    assert_eq!(created[1]["match"], "prefix");
    assert!(created[1]["created"]
        .as_str()
        .is_some_and(|t| t.ends_with('Z')));
    assert_eq!(event(&mut watcher, on_sub).await, json!([c.session, sub]));

    // Procedures.
    let list = call(&mut watcher, "wamp.subscription.list", json!([]), json!({})).await;
    assert!(list[0]["prefix"]
        .as_array()
        .is_some_and(|l| l.contains(&json!(sub))));
    assert_eq!(
        call(
            &mut watcher,
            "wamp.subscription.lookup",
            json!(["com.news.", {"match": "prefix"}]),
            json!({})
        )
        .await,
        json!([sub])
    );
    assert_eq!(
        call(
            &mut watcher,
            "wamp.subscription.lookup",
            json!(["com.news."]),
            json!({})
        )
        .await,
        json!([null])
    );
    assert_eq!(
        call(
            &mut watcher,
            "wamp.subscription.match",
            json!(["com.news.today"]),
            json!({})
        )
        .await,
        json!([[sub]])
    );
    assert_eq!(
        call(
            &mut watcher,
            "wamp.subscription.match",
            json!(["org.other"]),
            json!({})
        )
        .await,
        json!([null])
    );
    assert_eq!(
        call(
            &mut watcher,
            "wamp.subscription.list_subscribers",
            json!([sub]),
            json!({})
        )
        .await,
        json!([[c.session]])
    );
    assert_eq!(
        call(
            &mut watcher,
            "wamp.subscription.count_subscribers",
            json!([sub]),
            json!({})
        )
        .await,
        json!([1])
    );
    assert_eq!(
        call_error(
            &mut watcher,
            "wamp.subscription.get",
            json!([42]),
            json!({})
        )
        .await,
        "wamp.error.no_such_subscription"
    );

    // Unsubscribing the last subscriber deletes it: on_unsubscribe, then on_delete.
    let r = c.request_id();
    c.send(json!([34, r, sub])).await;
    assert_eq!(c.recv().await[0], 35);
    assert_eq!(event(&mut watcher, on_unsub).await, json!([c.session, sub]));
    assert_eq!(
        event(&mut watcher, on_delete).await,
        json!([c.session, sub])
    );

    // Registrations mirror it.
    let reg = c
        .register(
            "com.calc.",
            json!({"match": "prefix", "invoke": "roundrobin"}),
        )
        .await;
    let created = event(&mut watcher, reg_create).await;
    assert_eq!(created[1]["id"], reg);
    assert_eq!(created[1]["invoke"], "roundrobin");
    assert_eq!(
        event(&mut watcher, reg_register).await,
        json!([c.session, reg])
    );
    assert_eq!(
        call(
            &mut watcher,
            "wamp.registration.match",
            json!(["com.calc.add"]),
            json!({})
        )
        .await,
        json!([reg])
    );
    assert_eq!(
        call(
            &mut watcher,
            "wamp.registration.list_callees",
            json!([reg]),
            json!({})
        )
        .await,
        json!([[c.session]])
    );
    assert_eq!(
        call(
            &mut watcher,
            "wamp.registration.count_callees",
            json!([reg]),
            json!({})
        )
        .await,
        json!([1])
    );
    let got = call(
        &mut watcher,
        "wamp.registration.get",
        json!([reg]),
        json!({}),
    )
    .await;
    assert_eq!(got[0]["uri"], "com.calc.");
    // The session leaves: its registration goes with the meta events.
    c.send(json!([6, {}, "wamp.close.normal"])).await;
    c.recv().await;
    assert_eq!(
        event(&mut watcher, reg_delete).await,
        json!([c.session, reg])
    );
    assert_eq!(
        call_error(
            &mut watcher,
            "wamp.registration.get",
            json!([reg]),
            json!({})
        )
        .await,
        "wamp.error.no_such_registration"
    );
    assert_eq!(
        call_error(&mut watcher, "wamp.nothing.here", json!([]), json!({})).await,
        "wamp.error.no_such_procedure"
    );
}

#[tokio::test]
async fn testaments_are_published_when_the_session_goes_away() {
    let srv = TestServer::with_limits(Limits {
        ping_interval: Some(Duration::from_millis(300)),
        ping_timeout: Duration::from_millis(300),
        ..Limits::default()
    })
    .await;
    let mut listener = srv.joined(Ser::Json).await;
    let sub = listener.subscribe("com.presence.gone", json!({})).await;

    // Orderly GOODBYE: detached before destroyed, each in order added; flushed ones are gone.
    let mut c = srv.joined(Ser::Json).await;
    let who = c.session;
    for (arg, scope) in [("d1", "destroyed"), ("x1", "detached"), ("d2", "destroyed")] {
        call(
            &mut c,
            "wamp.session.add_testament",
            json!(["com.presence.gone", [arg], {"who": who}]),
            json!({"scope": scope}),
        )
        .await;
    }
    call(
        &mut c,
        "wamp.session.add_testament",
        json!(["com.presence.gone", ["flushed"], {}]),
        json!({"scope": "detached"}),
    )
    .await;
    call(
        &mut c,
        "wamp.session.flush_testaments",
        json!([]),
        json!({"scope": "detached"}),
    )
    .await;
    call(
        &mut c,
        "wamp.session.add_testament",
        json!(["com.presence.gone", ["x2"], {}]),
        json!({"scope": "detached"}),
    )
    .await;
    assert_eq!(
        call_error(
            &mut c,
            "wamp.session.add_testament",
            json!(["wamp.session.on_join", [], {}]),
            json!({})
        )
        .await,
        "wamp.error.invalid_uri"
    );
    assert_eq!(
        call_error(
            &mut c,
            "wamp.session.add_testament",
            json!(["com.presence.gone", [], {}]),
            json!({"scope": "forever"})
        )
        .await,
        "wamp.error.invalid_argument"
    );
    c.send(json!([6, {}, "wamp.close.normal"])).await;
    let order: Vec<Value> = {
        let mut v = Vec::new();
        for _ in 0..3 {
            v.push(event(&mut listener, sub).await[0].clone());
        }
        v
    };
    assert_eq!(
        order,
        json!(["x2", "d1", "d2"]).as_array().cloned().unwrap(),
        "flushing 'detached' dropped x1 and 'flushed'; detached ones go first"
    );

    // A connection that dies (no GOODBYE, no pong): the testament still goes out.
    let mut dead = srv.joined(Ser::Json).await;
    call(
        &mut dead,
        "wamp.session.add_testament",
        json!(["com.presence.gone", ["dead"], {}]),
        json!({}),
    )
    .await;
    drop(dead);
    assert_eq!(event(&mut listener, sub).await, json!(["dead"]));
}

const RESTRICTED: &str = r#"{
  "version": 2,
  "workers": [{
    "type": "router",
    "realms": [{"name": "realm1", "roles": [
      {"name": "app", "permissions": [{"uri": "com.", "match": "prefix", "allow": {"call": true, "subscribe": true, "publish": true, "register": true}}]},
      {"name": "ops", "permissions": [{"uri": "", "match": "prefix", "allow": {"call": true, "subscribe": true, "publish": true, "register": true}}]}
    ]}],
    "transports": [{"type": "web", "endpoint": {"type": "tcp", "port": 0, "interface": "127.0.0.1"},
      "paths": {"ws": {"type": "websocket", "auth": {"anonymous": {"type": "static", "role": "app"}}},
                "ops": {"type": "websocket", "auth": {"anonymous": {"type": "static", "role": "ops"}}}}}]
  }]
}"#;

#[tokio::test]
async fn meta_api_is_permission_checked() {
    let loaded =
        crossbar::parse(RESTRICTED, false, "meta.json", Limits::default()).expect("config");
    let srv = TestServer::with(move |o| o.node = loaded.node).await;
    let mut app = srv.joined(Ser::Json).await;
    assert_eq!(
        call_error(&mut app, "wamp.session.list", json!([]), json!({})).await,
        "wamp.error.not_authorized"
    );
    let r = app.request_id();
    let (uri, _) = app
        .expect_error(json!([32, r, {}, "wamp.session.on_join"]))
        .await;
    assert_eq!(uri, "wamp.error.not_authorized");
    let mut ops = Client::connect(&format!("ws://{}/ops", srv.addr), Ser::Json).await;
    ops.join("realm1").await;
    assert_eq!(
        call(&mut ops, "wamp.session.count", json!([["app"]]), json!({})).await,
        json!([1])
    );
}
