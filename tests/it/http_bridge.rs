//! The HTTP bridge, driven by an HTTP client (hyper-util's) against the real server, with
//! WebSocket subscribers and callees on the other side.

use crate::support::*;
use base64::Engine as _;
use bytes::Bytes;
use hmac::{KeyInit, Mac};
use http_body_util::{BodyExt, Full};
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::time::{Duration, SystemTime};
use switchboard::config::{crossbar, Limits};

/// realm1: `anonymous` (WebSocket clients) may do anything; the bridge's `php` role may publish
/// and call only under `com.app.`; `hooks` may subscribe only under `com.app.`.
fn config(webhooks: &str) -> String {
    format!(
        r#"{{"version": 2, "workers": [{{"type": "router",
        "realms": [{{"name": "realm1", "roles": [
            {{"name": "anonymous", "permissions": [{{"uri": "", "match": "prefix",
              "allow": {{"call": true, "register": true, "publish": true, "subscribe": true}}}}]}},
            {{"name": "php", "permissions": [{{"uri": "com.app.*", "allow": {{"call": true, "publish": true}}}}]}},
            {{"name": "hooks", "permissions": [{{"uri": "com.app.*", "allow": {{"subscribe": true}}}}]}}]}}],
        "transports": [{{"type": "web", "endpoint": {{"type": "tcp", "port": 0, "interface": "127.0.0.1"}},
          "paths": {{
            "ws": {{"type": "websocket"}},
            "publish": {{"type": "publisher", "realm": "realm1", "role": "php"}},
            "call": {{"type": "caller", "realm": "realm1", "role": "php", "options": {{"call_timeout": 1}}}},
            "signed": {{"type": "publisher", "realm": "realm1", "role": "php",
                        "options": {{"key": "phpapp", "secret": "s3cret", "timestamp_delta_limit": 10}}}},
            "signed-call": {{"type": "caller", "realm": "realm1", "role": "php",
                             "options": {{"key": "phpapp", "secret": "s3cret"}}}},
            "small": {{"type": "publisher", "realm": "realm1", "role": "php", "options": {{"post_body_limit": 64}}}},
            "lan": {{"type": "publisher", "realm": "realm1", "role": "php", "options": {{"require_ip": ["10.0.0.0/8"]}}}}
          }}}}]
        {webhooks}}}]}}"#
    )
}

async fn server(webhooks: &str) -> TestServer {
    let loaded = crossbar::parse(&config(webhooks), false, "bridge.json", Limits::default())
        .expect("config loads");
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    TestServer::with(move |o| o.node = loaded.node).await
}

/// An HTTP response: status and body (JSON when it is JSON).
#[derive(Debug)]
struct Resp {
    status: u16,
    body: Value,
    headers: hyper::HeaderMap,
}

type HttpClient = hyper_util::client::legacy::Client<
    hyper_util::client::legacy::connect::HttpConnector,
    Full<Bytes>,
>;

fn client() -> HttpClient {
    hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build_http()
}

async fn request(
    method: &str,
    addr: SocketAddr,
    target: &str,
    content_type: Option<&str>,
    body: impl Into<Bytes>,
) -> Resp {
    let mut req = hyper::Request::builder()
        .method(method)
        .uri(format!("http://{addr}{target}"));
    if let Some(ct) = content_type {
        req = req.header("content-type", ct);
    }
    let req = req.body(Full::new(body.into())).expect("request");
    let resp = tokio::time::timeout(TIMEOUT, client().request(req))
        .await
        .expect("answer in time")
        .expect("HTTP exchange");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let bytes = resp.into_body().collect().await.expect("body").to_bytes();
    let body = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()));
    Resp {
        status,
        body,
        headers,
    }
}

/// POSTs JSON as a PHP app would.
async fn post(addr: SocketAddr, target: &str, body: impl Into<Bytes>) -> Resp {
    request("POST", addr, target, Some("application/json"), body).await
}

/// The error message of a bridge refusal (`{"error", "args": [message], "kwargs"}`).
fn reason(r: &Resp) -> &str {
    r.body["args"][0].as_str().unwrap_or("")
}

#[tokio::test]
async fn publish_reaches_websocket_subscribers() {
    let srv = server("").await;
    let mut sub = srv.joined(Ser::MsgPack).await;
    let subscription = sub.subscribe("com.app.news", json!({})).await;
    let r = post(
        srv.addr,
        "/publish",
        r#"{"topic": "com.app.news", "args": ["hello", "\u0000AQI="], "kwargs": {"n": 1},
            "options": {"exclude": [1]}}"#,
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    let id = r.body["id"].as_u64().expect("publication id");
    let ev = sub.recv().await;
    assert_eq!(ev[0], 36);
    assert_eq!(ev[1], subscription);
    assert_eq!(
        ev[2], id,
        "the id the HTTP client got is the event's publication"
    );
    assert_eq!(
        ev[4],
        json!(["hello", "\u{0}AQI="]),
        "binary as bytes over msgpack"
    );
    assert_eq!(ev[5], json!({"n": 1}));
    assert_eq!(
        r.headers.get("content-type").and_then(|v| v.to_str().ok()),
        Some("application/json; charset=utf-8")
    );
    // No args, no kwargs: an empty event. Null fields count as absent (as in Crossbar).
    let r = post(
        srv.addr,
        "/publish",
        r#"{"topic": "com.app.news", "args": null}"#,
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    let ev = sub.recv().await;
    assert_eq!(ev[0], 36);
    assert_eq!(ev.get(4).cloned().unwrap_or(json!([])), json!([]));
    // Without a Content-Type (curl --data-binary with -H "Content-Type:" removed) is fine too.
    let r = request(
        "PUT",
        srv.addr,
        "/publish",
        None,
        r#"{"topic": "com.app.news"}"#,
    )
    .await;
    assert_eq!(r.status, 200, "PUT is accepted like POST: {r:?}");
    assert_eq!(sub.recv().await[0], 36);
}

#[tokio::test]
async fn call_reaches_a_websocket_callee() {
    let srv = server("").await;
    let mut callee = srv.joined(Ser::Json).await;
    let reg = callee
        .register("com.app.", json!({"match": "prefix"}))
        .await;
    let answer = async {
        // add2: one result
        let inv = callee.recv().await;
        assert_eq!(inv[0], 68);
        assert_eq!(inv[2], reg);
        assert_eq!(inv[3]["procedure"], "com.app.add2");
        assert_eq!(inv[4], json!([2, 3]));
        callee.send(json!([70, inv[1], {}, [5]])).await;
        // split: several results and keyword results
        let inv = callee.recv().await;
        assert_eq!(inv[5], json!({"name": "Ada Lovelace"}));
        callee
            .send(json!([70, inv[1], {}, ["Ada", "Lovelace"], {"parts": 2}]))
            .await;
        // nothing: no result at all
        let inv = callee.recv().await;
        callee.send(json!([70, inv[1], {}])).await;
        // stock: an application error
        let inv = callee.recv().await;
        callee
            .send(json!([8, 68, inv[1], {}, "com.app.error.out_of_stock", ["sold out"], {"sku": "x1"}]))
            .await;
    };
    let calls = async {
        let r = post(
            srv.addr,
            "/call",
            r#"{"procedure": "com.app.add2", "args": [2, 3]}"#,
        )
        .await;
        assert_eq!((r.status, &r.body), (200, &json!({"args": [5]})));
        let r = post(
            srv.addr,
            "/call",
            r#"{"procedure": "com.app.split", "kwargs": {"name": "Ada Lovelace"}}"#,
        )
        .await;
        assert_eq!(
            (r.status, &r.body),
            (
                200,
                &json!({"args": ["Ada", "Lovelace"], "kwargs": {"parts": 2}})
            )
        );
        let r = post(srv.addr, "/call", r#"{"procedure": "com.app.nothing"}"#).await;
        assert_eq!((r.status, &r.body), (200, &json!({"args": [null]})));
        let r = post(srv.addr, "/call", r#"{"procedure": "com.app.stock"}"#).await;
        assert_eq!(
            (r.status, &r.body),
            (
                200,
                &json!({"error": "com.app.error.out_of_stock", "args": ["sold out"], "kwargs": {"sku": "x1"}})
            ),
            "a callee's error is Crossbar's 200 with the error in the body"
        );
    };
    tokio::join!(answer, calls);
}

#[tokio::test]
async fn refusals_have_clear_statuses() {
    let srv = server("").await;
    let a = srv.addr;
    let cases: Vec<(Resp, u16, &str, &str)> = vec![
        (
            post(a, "/publish", "{not json").await,
            400,
            "wamp.error.invalid_argument",
            "invalid JSON",
        ),
        (
            post(a, "/publish", "[1, 2]").await,
            400,
            "wamp.error.invalid_argument",
            "JSON object",
        ),
        (
            post(a, "/publish", r#"{"args": []}"#).await,
            400,
            "wamp.error.invalid_argument",
            "'topic' is missing",
        ),
        (
            post(a, "/publish", r#"{"topic": "com.app.x", "args": {"a": 1}}"#).await,
            400,
            "wamp.error.invalid_argument",
            "'args' must be a list",
        ),
        (
            post(
                a,
                "/publish",
                r#"{"topic": "com.app.x", "options": {"exclude": "me"}}"#,
            )
            .await,
            400,
            "wamp.error.invalid_argument",
            "exclude",
        ),
        (
            post(a, "/publish", r#"{"topic": "com app"}"#).await,
            400,
            "wamp.error.invalid_uri",
            "topic",
        ),
        (
            post(a, "/publish", r#"{"topic": "com.other.news"}"#).await,
            403,
            "wamp.error.not_authorized",
            "php",
        ),
        (
            post(a, "/call", r#"{"procedure": "com.other.add"}"#).await,
            403,
            "wamp.error.not_authorized",
            "php",
        ),
        (
            post(a, "/call", r#"{"procedure": "com.app.nobody"}"#).await,
            404,
            "wamp.error.no_such_procedure",
            "com.app.nobody",
        ),
        (
            post(a, "/call", r#"{"topic": "com.app.x"}"#).await,
            400,
            "wamp.error.invalid_argument",
            "'procedure' is missing",
        ),
        (
            request("GET", a, "/publish", None, "").await,
            405,
            "wamp.error.invalid_argument",
            "POST",
        ),
        (
            request(
                "POST",
                a,
                "/publish",
                Some("application/x-www-form-urlencoded"),
                "topic=x",
            )
            .await,
            415,
            "wamp.error.invalid_argument",
            "application/json",
        ),
        (
            request(
                "POST",
                a,
                "/publish",
                Some("application/json; charset=latin1"),
                "{}",
            )
            .await,
            415,
            "wamp.error.invalid_argument",
            "utf-8",
        ),
        (
            post(
                a,
                "/small",
                format!(
                    r#"{{"topic": "com.app.x", "args": ["{}"]}}"#,
                    "x".repeat(100)
                ),
            )
            .await,
            413,
            "wamp.error.payload_size_exceeded",
            "64 bytes",
        ),
        (
            post(a, "/lan", r#"{"topic": "com.app.x"}"#).await,
            403,
            "wamp.error.not_authorized",
            "127.0.0.1",
        ),
    ];
    for (i, (r, status, uri, says)) in cases.iter().enumerate() {
        assert_eq!(r.status, *status, "case {i}: {r:?}");
        assert_eq!(r.body["error"], *uri, "case {i}: {r:?}");
        assert!(reason(r).contains(says), "case {i}: {r:?}");
        assert_eq!(
            r.body["kwargs"],
            json!({}),
            "case {i}: Crossbar's error shape"
        );
    }
    let r = request("OPTIONS", a, "/publish", None, "").await;
    assert_eq!(r.status, 204);
    assert_eq!(
        r.headers.get("allow").and_then(|v| v.to_str().ok()),
        Some("POST, PUT, OPTIONS")
    );
    // A body over the limit without a Content-Length (chunked) is cut off while reading.
    let chunks = futures_util::stream::iter((0..10).map(|_| {
        Ok::<_, std::convert::Infallible>(hyper::body::Frame::data(Bytes::from(vec![b' '; 20])))
    }));
    let req = hyper::Request::post(format!("http://{a}/small"))
        .header("content-type", "application/json")
        .body(http_body_util::StreamBody::new(chunks))
        .expect("request");
    let resp = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http()
        .request(req)
        .await
        .expect("exchange");
    assert_eq!(resp.status().as_u16(), 413);
}

#[tokio::test]
async fn a_call_without_an_answer_times_out_with_504() {
    let srv = server("").await;
    let mut callee = srv.joined(Ser::Json).await;
    callee.register("com.app.slow", json!({})).await;
    let started = std::time::Instant::now();
    let r = post(srv.addr, "/call", r#"{"procedure": "com.app.slow"}"#).await;
    assert_eq!(r.status, 504, "{r:?}");
    assert_eq!(r.body["error"], "wamp.error.timeout");
    assert!(started.elapsed() >= Duration::from_millis(900));
    assert!(started.elapsed() < Duration::from_secs(5));
    // The callee got the invocation, then an INTERRUPT when the dealer gave up.
    assert_eq!(callee.recv().await[0], 68);
    assert_eq!(callee.recv().await[0], 69);
}

/// Crossbar's signing, computed here independently of the server's code.
fn signed_target(
    path: &str,
    key: &str,
    secret: &str,
    ts: &str,
    seq: u64,
    nonce: u64,
    body: &str,
) -> String {
    let mut mac = <hmac::Hmac<sha2::Sha256> as KeyInit>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{key}{ts}{seq}{nonce}{body}").as_bytes());
    let sig = base64::engine::general_purpose::URL_SAFE.encode(mac.finalize().into_bytes());
    let enc = |s: &str| s.replace(':', "%3A").replace('=', "%3D");
    format!(
        "{path}?key={key}&timestamp={}&seq={seq}&nonce={nonce}&signature={}",
        enc(ts),
        enc(&sig)
    )
}

/// `2026-01-02T03:04:05.678Z`, `offset` seconds from now.
fn timestamp(offset: i64) -> String {
    let now = SystemTime::now();
    let t = if offset >= 0 {
        now + Duration::from_secs(offset as u64)
    } else {
        now - Duration::from_secs(offset.unsigned_abs())
    };
    switchboard::clock::rfc3339(t).replace('Z', ".678Z")
}

#[tokio::test]
async fn signed_requests() {
    let srv = server("").await;
    let mut sub = srv.joined(Ser::Json).await;
    sub.subscribe("com.app.signed", json!({})).await;
    let body = r#"{"topic": "com.app.signed", "args": [1]}"#;
    let ts = timestamp(0);
    let good = signed_target("/signed", "phpapp", "s3cret", &ts, 1, 4711, body);
    let r = post(srv.addr, &good, body).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(sub.recv().await[4], json!([1]));
    // The same request again is a replay.
    let r = post(srv.addr, &good, body).await;
    assert_eq!(r.status, 401, "{r:?}");
    assert!(reason(&r).contains("replayed"), "{r:?}");
    // A new nonce makes it a new request.
    let next = signed_target("/signed", "phpapp", "s3cret", &ts, 2, 4712, body);
    assert_eq!(post(srv.addr, &next, body).await.status, 200);
    assert_eq!(sub.recv().await[4], json!([1]));
    for (target, sent, status, says) in [
        // Unsigned.
        ("/signed".to_owned(), body, 401, "'key' is missing"),
        // Wrong secret.
        (
            signed_target("/signed", "phpapp", "guess", &ts, 3, 1, body),
            body,
            401,
            "invalid signature",
        ),
        // Body changed after signing.
        (
            signed_target("/signed", "phpapp", "s3cret", &ts, 4, 1, body),
            r#"{"topic": "com.app.signed", "args": [2]}"#,
            401,
            "invalid signature",
        ),
        // Unknown key.
        (
            signed_target("/signed", "other", "s3cret", &ts, 5, 1, body),
            body,
            401,
            "unknown key",
        ),
        // Timestamps a minute off (the window is 10 s), either way.
        (
            signed_target("/signed", "phpapp", "s3cret", &timestamp(-60), 6, 1, body),
            body,
            401,
            "at most 10 s",
        ),
        (
            signed_target("/signed", "phpapp", "s3cret", &timestamp(60), 7, 1, body),
            body,
            401,
            "at most 10 s",
        ),
        // Malformed parameters.
        (
            signed_target("/signed", "phpapp", "s3cret", "yesterday", 8, 1, body),
            body,
            400,
            "invalid timestamp",
        ),
    ] {
        let r = post(srv.addr, &target, sent).await;
        assert_eq!(r.status, status, "{target}: {r:?}");
        assert!(reason(&r).contains(says), "{target}: {r:?}");
        assert!(
            !r.body.to_string().contains("s3cret"),
            "the secret is never echoed"
        );
    }
    sub.expect_silence(Duration::from_millis(200)).await;
    // Signed calls work the same way.
    let mut callee = srv.joined(Ser::Json).await;
    callee.register("com.app.echo", json!({})).await;
    let body = r#"{"procedure": "com.app.echo", "args": ["hi"]}"#;
    let target = signed_target(
        "/signed-call",
        "phpapp",
        "s3cret",
        &timestamp(0),
        1,
        99,
        body,
    );
    let answer = async {
        let inv = callee.recv().await;
        callee.send(json!([70, inv[1], {}, inv[4]])).await;
    };
    let (r, ()) = tokio::join!(post(srv.addr, &target, body), answer);
    assert_eq!((r.status, &r.body), (200, &json!({"args": ["hi"]})));
}
