//! Per-session message counters (`messages_in`, `messages_out` in `wamp.session.get` and
//! `wamp.session.on_join`): what they count, and what they do not (keep-alive pings, the
//! session before a GOODBYE on the same connection).

use crate::support::*;
use serde_json::{json, Value};
use std::time::Duration;
use switchboard::config::Limits;

/// `wamp.session.get(session)` as seen by `watcher`.
async fn details(watcher: &mut Client, session: u64) -> Value {
    let r = watcher.request_id();
    watcher
        .send(json!([48, r, {}, "wamp.session.get", [session]]))
        .await;
    let m = watcher.recv().await;
    assert_eq!(m[0], 50, "RESULT expected, got {m}");
    assert_eq!(m[1], r);
    m[3][0].clone()
}

fn counts(d: &Value) -> (u64, u64) {
    (
        d["messages_in"].as_u64().expect("messages_in"),
        d["messages_out"].as_u64().expect("messages_out"),
    )
}

#[tokio::test]
async fn counts_messages_from_and_to_a_session() {
    let srv = TestServer::start().await;
    let mut watcher = srv.joined(Ser::Json).await;
    let on_join = watcher.subscribe("wamp.session.on_join", json!({})).await;

    let mut c = srv.joined(Ser::MsgPack).await;
    // on_join is published after WELCOME: one message out, none in.
    let ev = watcher.recv().await;
    assert_eq!(ev[0], 36, "EVENT expected, got {ev}");
    assert_eq!(ev[1], on_join);
    assert_eq!(counts(&ev[4][0]), (0, 1), "{ev}");
    assert_eq!(counts(&details(&mut watcher, c.session).await), (0, 1));

    // SUBSCRIBE → SUBSCRIBED, acknowledged PUBLISH → PUBLISHED (no EVENT to itself).
    let sub = c.subscribe("com.counters", json!({})).await;
    c.send(json!([16, 1, {"acknowledge": true}, "com.counters", ["x"]]))
        .await;
    assert_eq!(c.recv().await[0], 17);
    assert_eq!(counts(&details(&mut watcher, c.session).await), (2, 3));

    // Three EVENTs from someone else: out only.
    for i in 0..3 {
        watcher
            .send(json!([16, 10 + i, {}, "com.counters", [i]]))
            .await;
        let e = c.recv().await;
        assert_eq!((e[0].clone(), e[1].clone()), (json!(36), json!(sub)));
    }
    assert_eq!(counts(&details(&mut watcher, c.session).await), (2, 6));

    // A refused request counts both ways (CALL in, ERROR out).
    let (uri, _) = c
        .expect_error(json!([48, 7, {}, "com.nobody.home", []]))
        .await;
    assert_eq!(uri, "wamp.error.no_such_procedure");
    assert_eq!(counts(&details(&mut watcher, c.session).await), (3, 7));

    // Asked about itself, the watcher's count includes this CALL but not its RESULT yet.
    // In: SUBSCRIBE, 4 × CALL, 3 × PUBLISH, this CALL. Out: WELCOME, SUBSCRIBED, the on_join
    // EVENT, 4 × RESULT.
    let own = watcher.session;
    assert_eq!(counts(&details(&mut watcher, own).await), (9, 7));
}

#[tokio::test]
async fn a_new_session_on_the_same_connection_starts_from_zero() {
    let srv = TestServer::start().await;
    let mut watcher = srv.joined(Ser::Json).await;
    let mut c = srv.joined(Ser::Json).await;
    c.subscribe("com.a", json!({})).await;
    c.subscribe("com.b", json!({})).await;
    let first = c.session;
    assert_eq!(counts(&details(&mut watcher, first).await), (2, 3));

    c.send(json!([6, {}, "wamp.close.close_realm"])).await;
    let bye = c.recv().await;
    assert_eq!(bye[0], 6, "GOODBYE expected, got {bye}");
    c.join("realm1").await;
    assert_ne!(c.session, first);
    assert_eq!(
        counts(&details(&mut watcher, c.session).await),
        (0, 1),
        "only the new WELCOME"
    );
}

#[tokio::test]
async fn keepalive_pings_are_not_messages() {
    let srv = TestServer::with_limits(Limits {
        ping_interval: Some(Duration::from_millis(100)),
        ..Limits::default()
    })
    .await;
    let mut watcher = srv.joined(Ser::Json).await;
    let mut c = srv.joined(Ser::Json).await;
    // `c` keeps reading (its library answers the pings) through several ping intervals.
    c.expect_silence(Duration::from_millis(700)).await;
    assert_eq!(counts(&details(&mut watcher, c.session).await), (0, 1));
}
