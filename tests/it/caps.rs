//! Session caps (subscriptions, registrations, calls in flight, topics per realm) and
//! connection caps (in all, per address): refused cleanly, counted, and freed again.

use crate::support::*;
use serde_json::json;
use std::time::Duration;
use switchboard::config::{ConnectionLimits, Limits, SessionLimits};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const LIMIT: &str = "switchboard.error.limit_exceeded";

fn session_caps() -> Limits {
    Limits {
        session: SessionLimits {
            subscriptions: 3,
            registrations: 2,
            calls_in_flight: 2,
            topics_per_realm: 5,
        },
        ..Limits::default()
    }
}

/// The value of one labelled series in `/metrics` (0 when absent).
async fn metric(srv: &TestServer, series: &str) -> u64 {
    // Under a connection cap the previous request's place may take a moment to come back.
    let mut body = String::new();
    for _ in 0..100 {
        let (head, b) = http_get(srv.addr, "/metrics").await;
        if head.starts_with("HTTP/1.1 200") {
            body = b;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    body.lines()
        .find_map(|l| l.strip_prefix(series).map(str::trim))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

async fn subscribe_refused(c: &mut Client, topic: &str, limit: &str) {
    let r = c.request_id();
    let (uri, args) = c.expect_error(json!([32, r, {}, topic])).await;
    assert_eq!(uri, LIMIT);
    let msg = args[0].as_str().unwrap_or_default().to_owned();
    assert!(msg.contains(limit), "names the limit: {msg}");
}

#[tokio::test]
async fn subscriptions_per_session_and_topics_per_realm() {
    let srv = TestServer::with_limits(session_caps()).await;
    let mut a = srv.joined(Ser::Json).await;
    let t1 = a.subscribe("com.t1", json!({})).await;
    a.subscribe("com.t2", json!({})).await;
    a.subscribe("com.t3", json!({})).await;
    subscribe_refused(&mut a, "com.t4", "subscriptions_per_session").await;
    // What it holds it may subscribe to again; freeing one makes room.
    assert_eq!(a.subscribe("com.t1", json!({})).await, t1);
    let r = a.request_id();
    a.send(json!([34, r, t1])).await;
    assert_eq!(a.recv().await[0], 35);
    a.subscribe("com.t4", json!({})).await;

    // The realm keeps at most 5 topics: t2, t3, t4 and b's u1, u2.
    let mut b = srv.joined(Ser::MsgPack).await;
    b.subscribe("com.u1", json!({})).await;
    b.subscribe("com.u2", json!({})).await;
    subscribe_refused(&mut b, "com.u3", "topics_per_realm").await;
    // A topic that already exists takes no new place.
    b.subscribe("com.t2", json!({})).await;
    // Prefix and exact subscriptions to one URI are different topics.
    let mut p = srv.joined(Ser::Json).await;
    let r = p.request_id();
    let (uri, _) = p
        .expect_error(json!([32, r, {"match": "prefix"}, "com.t3"]))
        .await;
    assert_eq!(uri, LIMIT);

    // Nothing held was lost: a publication still reaches both.
    let r = p.request_id();
    p.send(json!([16, r, {}, "com.t2", ["still here"]])).await;
    assert_eq!(a.recv().await[4], json!(["still here"]));
    assert_eq!(b.recv().await[4], json!(["still here"]));

    let refused = |l: &str| format!("switchboard_limit_refusals_total{{limit=\"{l}\"}}");
    assert_eq!(metric(&srv, &refused("subscriptions_per_session")).await, 1);
    assert_eq!(metric(&srv, &refused("topics_per_realm")).await, 2);
}

#[tokio::test]
async fn registrations_and_calls_in_flight_per_session() {
    let srv = TestServer::with_limits(session_caps()).await;
    let mut callee = srv.joined(Ser::Json).await;
    callee.register("com.slow", json!({})).await;
    callee.register("com.other", json!({})).await;
    let r = callee.request_id();
    let (uri, args) = callee.expect_error(json!([64, r, {}, "com.third"])).await;
    assert_eq!(uri, LIMIT);
    assert!(args[0]
        .as_str()
        .is_some_and(|m| m.contains("registrations_per_session")));

    let mut caller = srv.joined(Ser::Cbor).await;
    let mut invocations = Vec::new();
    for _ in 0..2 {
        let r = caller.request_id();
        caller.send(json!([48, r, {}, "com.slow", [r]])).await;
        let inv = callee.recv().await;
        assert_eq!(inv[0], 68, "{inv}");
        invocations.push(inv[1].clone());
    }
    let r = caller.request_id();
    let (uri, _) = caller
        .expect_error(json!([48, r, {}, "com.slow", []]))
        .await;
    assert_eq!(uri, LIMIT);
    callee.expect_silence(Duration::from_millis(100)).await;
    // One answer frees a place.
    callee.send(json!([70, invocations[0], {}, ["done"]])).await;
    let result = caller.recv().await;
    assert_eq!(result[0], 50, "{result}");
    let r = caller.request_id();
    caller.send(json!([48, r, {}, "com.slow", []])).await;
    assert_eq!(callee.recv().await[0], 68);
    // Another session has its own allowance.
    let mut other = srv.joined(Ser::Json).await;
    let r = other.request_id();
    other.send(json!([48, r, {}, "com.other", []])).await;
    assert_eq!(callee.recv().await[0], 68);
    assert_eq!(
        metric(
            &srv,
            "switchboard_limit_refusals_total{limit=\"calls_in_flight_per_session\"}"
        )
        .await,
        1
    );
}

fn connection_caps(total: usize, per_address: usize, exempt_loopback: bool) -> Limits {
    let mut c = ConnectionLimits {
        total,
        per_address,
        ..ConnectionLimits::default()
    };
    if !exempt_loopback {
        c.unlimited.clear();
    }
    Limits {
        connections: c,
        ..Limits::default()
    }
}

async fn capped_server(limits: Limits) -> TestServer {
    TestServer::with(move |o| {
        o.node.router = switchboard::config::RouterConfig::development(limits);
        o.rawsocket_tcp = Some("127.0.0.1:0".parse().expect("addr"));
    })
    .await
}

/// What a refused HTTP client reads: (status line, body).
async fn refused_http(srv: &TestServer) -> (String, String) {
    http_get(srv.addr, "/api/status").await
}

async fn rawsocket_reply(srv: &TestServer) -> [u8; 4] {
    let addr = srv
        .running
        .as_ref()
        .and_then(|r| r.rawsocket_addr)
        .expect("rawsocket on");
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    s.write_all(&[0x7F, 0xF1, 0, 0]).await.expect("handshake");
    let mut reply = [0u8; 4];
    tokio::time::timeout(TIMEOUT, s.read_exact(&mut reply))
        .await
        .expect("in time")
        .expect("reply");
    reply
}

#[tokio::test]
async fn connections_per_address_refused_with_503_and_rawsocket_error() {
    let srv = capped_server(connection_caps(100, 2, false)).await;
    let a = srv.joined(Ser::Json).await;
    let _b = srv.joined(Ser::Json).await;
    let (head, body) = refused_http(&srv).await;
    assert!(head.starts_with("HTTP/1.1 503"), "{head}");
    assert!(head.to_ascii_lowercase().contains("retry-after"), "{head}");
    assert!(
        body.contains("too many connections from your address"),
        "{body}"
    );
    // A WebSocket client gets the 503 as its handshake answer.
    let refused = tokio_tungstenite::connect_async(srv.ws_url()).await;
    match refused {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
            assert_eq!(resp.status().as_u16(), 503)
        }
        other => panic!("expected HTTP 503, got {:?}", other.map(|_| ())),
    }
    // RawSocket: handshake error 4, "maximum connection count reached".
    assert_eq!(rawsocket_reply(&srv).await, [0x7F, 4 << 4, 0, 0]);
    // Closing one gives its place back.
    drop(a);
    let mut joined = false;
    for _ in 0..100 {
        if http_get(srv.addr, "/healthz")
            .await
            .0
            .starts_with("HTTP/1.1 200")
        {
            joined = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(joined, "a place was freed");
    assert!(
        metric_after_free(&srv).await >= 3,
        "refusals counted (HTTP, WebSocket, RawSocket)"
    );
}

/// The per-address refusals, read through a connection the cap allows (one place is free).
async fn metric_after_free(srv: &TestServer) -> u64 {
    metric(
        srv,
        "switchboard_limit_refusals_total{limit=\"connections_per_address\"}",
    )
    .await
}

#[tokio::test]
async fn total_connection_cap_applies_to_loopback_too() {
    // Loopback is exempt from the per-address cap only.
    let srv = capped_server(connection_caps(3, 1, true)).await;
    let _a = srv.joined(Ser::Json).await;
    let _b = srv.joined(Ser::MsgPack).await;
    let _c = srv.joined(Ser::Cbor).await;
    let (head, body) = refused_http(&srv).await;
    assert!(head.starts_with("HTTP/1.1 503"), "{head}");
    assert!(body.contains("connection limit (3)"), "{body}");
    assert_eq!(rawsocket_reply(&srv).await, [0x7F, 4 << 4, 0, 0]);
}
