use crate::support::*;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message as WsMessage;

#[tokio::test]
async fn welcome_announces_roles_for_every_serializer() {
    let srv = TestServer::start().await;
    for ser in ALL {
        let mut c = srv.client(ser).await;
        let w = c.join("realm1").await;
        assert!(w[1]
            .as_u64()
            .is_some_and(|id| (1..=1u64 << 53).contains(&id)));
        let d = &w[2];
        assert_eq!(d["authrole"], "anonymous");
        assert_eq!(d["authmethod"], "anonymous");
        assert_eq!(d["realm"], "realm1");
        assert!(d["authid"].as_str().is_some_and(|s| !s.is_empty()));
        for f in [
            "publisher_exclusion",
            "subscriber_blackwhite_listing",
            "publisher_identification",
            "pattern_based_subscription",
            "session_meta_api",
            "subscription_meta_api",
            "event_history",
            "event_retention",
        ] {
            assert_eq!(
                d["roles"]["broker"]["features"][f], true,
                "{ser:?} broker {f}"
            );
        }
        for f in [
            "progressive_call_results",
            "call_timeout",
            "call_canceling",
            "caller_identification",
            "pattern_based_registration",
            "shared_registration",
        ] {
            assert_eq!(
                d["roles"]["dealer"]["features"][f], true,
                "{ser:?} dealer {f}"
            );
        }
        // Not implemented, so not announced.
        assert!(d["roles"]["broker"]["features"]
            .get("subscription_revocation")
            .is_none());
        assert!(d["roles"]["dealer"]["features"]
            .get("payload_passthru_mode")
            .is_none());
    }
}

#[tokio::test]
async fn unknown_realm_is_aborted_with_no_such_realm() {
    let srv = TestServer::start().await;
    let mut c = srv.client(Ser::Json).await;
    c.send(json!([1, "nope", {}])).await;
    c.expect_abort("wamp.error.no_such_realm").await;
}

#[tokio::test]
async fn invalid_realm_uri_is_aborted() {
    let srv = TestServer::start().await;
    let mut c = srv.client(Ser::Json).await;
    c.send(json!([1, "bad realm", {}])).await;
    c.expect_abort("wamp.error.invalid_uri").await;
}

#[tokio::test]
async fn unsupported_auth_method_is_refused() {
    let srv = TestServer::start().await;
    let mut c = srv.client(Ser::Json).await;
    c.send(json!([1, "realm1", {"authmethods": ["ticket"], "authid": "joe"}]))
        .await;
    c.expect_abort("wamp.error.no_auth_method").await;
}

#[tokio::test]
async fn messages_before_welcome_are_protocol_violations() {
    let srv = TestServer::start().await;
    for msg in [
        json!([32, 1, {}, "a.b"]),
        json!([6, {}, "wamp.close.normal"]),
        json!([48, 1, {}, "a.b"]),
    ] {
        let mut c = srv.client(Ser::Json).await;
        c.send(msg).await;
        c.expect_abort("wamp.error.protocol_violation").await;
    }
}

#[tokio::test]
async fn malformed_input_aborts_only_that_session() {
    let srv = TestServer::start().await;
    let mut bystander = srv.joined(Ser::Json).await;
    let sub = bystander.subscribe("com.x", json!({})).await;
    let bad_inputs = vec![
        (Ser::Json, WsMessage::Text("{not json".into())),
        (Ser::Json, WsMessage::Text("{}".into())),
        (Ser::Json, WsMessage::Text("[]".into())),
        (Ser::Json, WsMessage::Text("[999, 1]".into())),
        (Ser::Json, WsMessage::Text("[\"1\", \"realm1\", {}]".into())),
        (Ser::Json, WsMessage::Text("[1, \"realm1\"]".into())),
        (Ser::Json, WsMessage::Text("[1, \"realm1\", {}, 5]".into())),
        (
            Ser::Json,
            WsMessage::Text("[1, \"realm1\", {\"roles\": \"\\u0000!!!\"}]".into()),
        ),
        (
            Ser::MsgPack,
            WsMessage::Binary(vec![0xc1, 0xff, 0x00].into()),
        ),
        (Ser::Cbor, WsMessage::Binary(vec![0xff, 0xff].into())),
        (
            Ser::Json,
            WsMessage::Text(format!("{}{}", "[".repeat(100_000), "]".repeat(100_000)).into()),
        ),
    ];
    for (ser, m) in bad_inputs {
        let mut c = srv.client(ser).await;
        c.send_raw(m.clone()).await;
        let a = c.expect_abort("wamp.error.protocol_violation").await;
        assert!(a[1]["message"].as_str().is_some(), "{m:?}");
    }
    // Wrong types after joining.
    let mut c = srv.joined(Ser::Json).await;
    c.send(json!([32, 1, "not a dict", "a.b"])).await;
    let a = c.expect_abort("wamp.error.protocol_violation").await;
    assert!(
        a[1]["message"]
            .as_str()
            .unwrap_or("")
            .contains("Options must be a dict"),
        "{a}"
    );
    let mut c = srv.joined(Ser::Json).await;
    c.send(json!([36, 1, 2, {}])).await; // EVENT is router-to-client only
    c.expect_abort("wamp.error.protocol_violation").await;
    let mut c = srv.joined(Ser::Json).await;
    c.send(json!([1, "realm1", {}])).await; // second HELLO
    c.expect_abort("wamp.error.protocol_violation").await;
    // The bystander still works.
    let mut p = srv.joined(Ser::Json).await;
    p.send(json!([16, 1, {}, "com.x", ["still alive"]])).await;
    let e = bystander.recv().await;
    assert_eq!(e, json!([36, sub, e[2], {}, ["still alive"]]));
}

#[tokio::test]
async fn goodbye_is_answered_and_the_session_leaves() {
    let srv = TestServer::start().await;
    let mut c = srv.joined(Ser::MsgPack).await;
    c.register("com.bye", json!({})).await;
    c.send(json!([6, {}, "wamp.close.normal"])).await;
    let g = c.recv().await;
    assert_eq!(g, json!([6, {}, "wamp.close.goodbye_and_out"]));
    // The registration went with the session.
    let mut caller = srv.joined(Ser::Json).await;
    let (uri, _) = caller.expect_error(json!([48, 7, {}, "com.bye"])).await;
    assert_eq!(uri, "wamp.error.no_such_procedure");
    // The same connection may join again.
    let w = c.join("realm1").await;
    assert_eq!(w[0], 2);
}

#[tokio::test]
async fn session_counts_follow_joins_and_disconnects() {
    let srv = TestServer::start().await;
    let a = srv.joined(Ser::Json).await;
    let b = srv.joined(Ser::Cbor).await;
    let st = srv.status().await;
    assert_eq!(st["sessions"], 2);
    assert_eq!(st["realms"][0]["sessions"], 2);
    drop(a);
    drop(b);
    for _ in 0..200 {
        if srv.status().await["sessions"] == 0 {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("sessions did not leave after disconnect");
}
