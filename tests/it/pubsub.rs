use crate::support::*;
use serde_json::json;
use std::time::Duration;

const QUIET: Duration = Duration::from_millis(200);

#[tokio::test]
async fn publish_reaches_subscribers_in_every_serializer_with_payload_intact() {
    let srv = TestServer::start().await;
    let mut subs = Vec::new();
    for ser in ALL {
        let mut c = srv.joined(ser).await;
        let id = c.subscribe("com.app.news", json!({})).await;
        subs.push((c, id));
    }
    // All three subscribers share one subscription id.
    assert!(subs.iter().all(|(_, id)| *id == subs[0].1));
    let binary = "\u{0}AAEC/w=="; // bytes 00 01 02 ff
    for pub_ser in ALL {
        let mut p = srv.joined(pub_ser).await;
        let args = json!([1, -2, 3.5, "héllo", binary, null, true, [binary], {"b": binary}, 18446744073709551615u64]);
        let kwargs = json!({"nested": {"list": [1, 2, {"x": binary}]}, "empty": {}});
        p.send(json!([16, 9, {"acknowledge": true}, "com.app.news", args, kwargs]))
            .await;
        let ack = p.recv().await;
        assert_eq!(ack[0], 17);
        assert_eq!(ack[1], 9);
        let publication = ack[2].clone();
        for (c, id) in subs.iter_mut() {
            let e = c.recv().await;
            assert_eq!(
                e,
                json!([36, *id, publication, {}, args, kwargs]),
                "{pub_ser:?} → {:?}",
                c.ser
            );
        }
    }
}

#[tokio::test]
async fn publisher_is_excluded_unless_it_asks() {
    let srv = TestServer::start().await;
    let mut c = srv.joined(Ser::Json).await;
    let sub = c.subscribe("com.me", json!({})).await;
    c.send(json!([16, 1, {}, "com.me", ["skip"]])).await;
    c.expect_silence(QUIET).await;
    c.send(json!([16, 2, {"exclude_me": false}, "com.me", ["mine"]]))
        .await;
    let e = c.recv().await;
    assert_eq!(e[1], sub);
    assert_eq!(e[4], json!(["mine"]));
}

#[tokio::test]
async fn black_and_white_listing() {
    let srv = TestServer::start().await;
    let mut a = srv.joined(Ser::Json).await;
    let mut b = srv.joined(Ser::MsgPack).await;
    let mut c = srv.joined(Ser::Cbor).await;
    for x in [&mut a, &mut b, &mut c] {
        x.subscribe("com.list", json!({})).await;
    }
    let (ida, idb, idc) = (a.session, b.session, c.session);
    let authid_b = {
        // Learn b's authid from a disclosed publication.
        a.send(json!([16, 1, {"disclose_me": true, "exclude_me": false}, "com.list", ["who"]]))
            .await;
        let e = a.recv().await;
        assert_eq!(e[3]["publisher"], ida);
        b.recv().await;
        c.recv().await;
        // b publishes disclosed so we learn its authid.
        b.send(json!([16, 2, {"disclose_me": true}, "com.list", []]))
            .await;
        let e = a.recv().await;
        c.recv().await;
        e[3]["publisher_authid"]
            .as_str()
            .expect("authid")
            .to_owned()
    };
    let mut p = srv.joined(Ser::Json).await;
    let cases = vec![
        (json!({"exclude": [idb]}), vec![true, false, true]),
        (json!({"eligible": [ida, idc]}), vec![true, false, true]),
        (
            json!({"eligible": [ida, idb], "exclude": [ida]}),
            vec![false, true, false],
        ),
        (
            json!({"exclude_authid": [authid_b]}),
            vec![true, false, true],
        ),
        (
            json!({"eligible_authid": [authid_b]}),
            vec![false, true, false],
        ),
        (
            json!({"exclude_authrole": ["anonymous"]}),
            vec![false, false, false],
        ),
        (
            json!({"eligible_authrole": ["anonymous"]}),
            vec![true, true, true],
        ),
        (
            json!({"eligible_authrole": ["admin"]}),
            vec![false, false, false],
        ),
    ];
    for (i, (opts, expect)) in cases.into_iter().enumerate() {
        p.send(json!([16, 100 + i, opts, "com.list", [i]])).await;
        for (x, want) in [&mut a, &mut b, &mut c].into_iter().zip(expect) {
            if want {
                let e = x.recv().await;
                assert_eq!(e[4], json!([i]), "case {i} {opts}");
            } else {
                x.expect_silence(QUIET).await;
            }
        }
    }
}

#[tokio::test]
async fn publisher_identification() {
    let srv = TestServer::start().await;
    let mut s = srv.joined(Ser::Json).await;
    s.subscribe("com.id", json!({})).await;
    let mut p = srv.joined(Ser::Json).await;
    p.send(json!([16, 1, {}, "com.id", []])).await;
    let e = s.recv().await;
    assert_eq!(e[3], json!({}), "not disclosed unless asked");
    p.send(json!([16, 2, {"disclose_me": true}, "com.id", []]))
        .await;
    let e = s.recv().await;
    assert_eq!(e[3]["publisher"], p.session);
    assert_eq!(e[3]["publisher_authrole"], "anonymous");
    assert!(e[3]["publisher_authid"].is_string());
}

#[tokio::test]
async fn prefix_and_wildcard_subscriptions_all_receive_with_topic() {
    let srv = TestServer::start().await;
    let mut exact = srv.joined(Ser::Json).await;
    let mut prefix = srv.joined(Ser::MsgPack).await;
    let mut wild = srv.joined(Ser::Cbor).await;
    let sx = exact.subscribe("com.shop.order.created", json!({})).await;
    let sp = prefix
        .subscribe("com.shop", json!({"match": "prefix"}))
        .await;
    let sw = wild
        .subscribe("com..order.", json!({"match": "wildcard"}))
        .await;
    assert!(sx != sp && sp != sw);
    let mut p = srv.joined(Ser::Json).await;
    p.send(json!([16, 1, {}, "com.shop.order.created", ["o1"]]))
        .await;
    assert_eq!(
        exact.recv().await,
        json!([
            36,
            sx,
            exact_pub(&mut prefix, sp, "com.shop.order.created").await,
            {},
            ["o1"]
        ])
    );
    let e = wild.recv().await;
    assert_eq!(e[1], sw);
    assert_eq!(e[3]["topic"], "com.shop.order.created");
    // Only the prefix subscriber matches this one.
    p.send(json!([16, 2, {}, "com.shop.cart", ["c"]])).await;
    let e = prefix.recv().await;
    assert_eq!(e[3]["topic"], "com.shop.cart");
    exact.expect_silence(QUIET).await;
    wild.expect_silence(Duration::from_millis(10)).await;
}

/// Receives the prefix subscriber's copy and returns the publication id (shared by all copies).
async fn exact_pub(prefix: &mut Client, sp: u64, topic: &str) -> serde_json::Value {
    let e = prefix.recv().await;
    assert_eq!(e[1], sp);
    assert_eq!(e[3]["topic"], topic);
    e[2].clone()
}

#[tokio::test]
async fn one_session_with_overlapping_subscriptions_gets_one_event_per_subscription() {
    let srv = TestServer::start().await;
    let mut s = srv.joined(Ser::Json).await;
    let a = s.subscribe("a.b.c", json!({})).await;
    let b = s.subscribe("a.b", json!({"match": "prefix"})).await;
    let mut p = srv.joined(Ser::Json).await;
    p.send(json!([16, 1, {}, "a.b.c", []])).await;
    let mut got = vec![
        s.recv().await[1].as_u64().unwrap_or(0),
        s.recv().await[1].as_u64().unwrap_or(0),
    ];
    got.sort();
    let mut want = vec![a, b];
    want.sort();
    assert_eq!(got, want);
}

#[tokio::test]
async fn unsubscribe_stops_delivery_and_unknown_ids_error() {
    let srv = TestServer::start().await;
    let mut s = srv.joined(Ser::Json).await;
    let id = s.subscribe("com.u", json!({})).await;
    assert_eq!(
        s.subscribe("com.u", json!({})).await,
        id,
        "subscribing twice returns the same id"
    );
    s.send(json!([34, 50, id])).await;
    assert_eq!(s.recv().await, json!([35, 50]));
    let mut p = srv.joined(Ser::Json).await;
    p.send(json!([16, 1, {}, "com.u", []])).await;
    s.expect_silence(QUIET).await;
    let (uri, args) = s.expect_error(json!([34, 51, id])).await;
    assert_eq!(uri, "wamp.error.no_such_subscription");
    assert!(args[0].as_str().is_some());
    assert_eq!(srv.status().await["realms"][0]["subscriptions"], 0);
}

#[tokio::test]
async fn invalid_uris_and_options_are_errors_with_spec_uris() {
    let srv = TestServer::start().await;
    let mut c = srv.joined(Ser::Json).await;
    for (msg, want) in [
        (json!([32, 1, {}, "com..bad"]), "wamp.error.invalid_uri"),
        (json!([32, 2, {}, "com.b ad"]), "wamp.error.invalid_uri"),
        (
            json!([32, 3, {"match": "regex"}, "com.x"]),
            "wamp.error.invalid_argument",
        ),
        (
            json!([32, 4, {"match": 5}, "com.x"]),
            "wamp.error.invalid_argument",
        ),
        (
            json!([16, 5, {"acknowledge": true}, "com..x"]),
            "wamp.error.invalid_uri",
        ),
        (
            json!([16, 6, {"acknowledge": true}, "wamp.session.on_join"]),
            "wamp.error.invalid_uri",
        ),
        (
            json!([16, 7, {"acknowledge": true, "exclude": "x"}, "com.x"]),
            "wamp.error.invalid_argument",
        ),
        (
            json!([16, 8, {"acknowledge": true, "exclude": [0]}, "com.x"]),
            "wamp.error.invalid_argument",
        ),
    ] {
        let (uri, args) = c.expect_error(msg.clone()).await;
        assert_eq!(uri, want, "{msg}");
        assert!(
            args[0].as_str().is_some_and(|s| !s.is_empty()),
            "readable message for {msg}"
        );
    }
    // Without acknowledge a failed publish is silent (spec).
    c.send(json!([16, 9, {}, "com..x"])).await;
    c.expect_silence(QUIET).await;
}

#[tokio::test]
async fn fan_out_reaches_sixty_subscribers_of_mixed_serializers() {
    let srv = TestServer::start().await;
    let mut subs = Vec::new();
    for i in 0..60 {
        let mut c = srv.joined(ALL[i % 3]).await;
        c.subscribe("com.many", json!({})).await;
        subs.push(c);
    }
    let mut p = srv.joined(Ser::Json).await;
    p.send(json!([16, 1, {"acknowledge": true}, "com.many", ["x"]]))
        .await;
    assert_eq!(p.recv().await[0], 17);
    for c in subs.iter_mut() {
        assert_eq!(c.recv().await[4], json!(["x"]));
    }
}
