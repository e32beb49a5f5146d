//! The HTTP bridge and webhooks, driven by an HTTP client (hyper-util's) against the real
//! server, with WebSocket subscribers and callees on the other side, and a small HTTP server
//! in the test receiving webhooks.

use crate::support::*;
use base64::Engine as _;
use bytes::Bytes;
use hmac::{KeyInit, Mac};
use http_body_util::{BodyExt, Full};
use serde_json::{json, Value};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
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

/// A webhook receiver: records JSON bodies; answers with the queued statuses first, then 200.
struct Receiver {
    addr: SocketAddr,
    bodies: Arc<parking_lot::Mutex<Vec<Value>>>,
    statuses: Arc<parking_lot::Mutex<VecDeque<u16>>>,
}

async fn receiver() -> Receiver {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let bodies = Arc::new(parking_lot::Mutex::new(Vec::new()));
    let statuses = Arc::new(parking_lot::Mutex::new(VecDeque::new()));
    let (b, s) = (bodies.clone(), statuses.clone());
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let (b, s) = (b.clone(), s.clone());
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(
                    move |req: hyper::Request<hyper::body::Incoming>| {
                        let (b, s) = (b.clone(), s.clone());
                        async move {
                            let status = s.lock().pop_front().unwrap_or(200);
                            let bytes = req.into_body().collect().await.unwrap().to_bytes();
                            if status == 200 {
                                b.lock().push(serde_json::from_slice(&bytes).unwrap());
                            }
                            let mut resp =
                                hyper::Response::new(Full::new(Bytes::from_static(b"ok")));
                            *resp.status_mut() = hyper::StatusCode::from_u16(status).unwrap();
                            Ok::<_, std::convert::Infallible>(resp)
                        }
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    Receiver {
        addr,
        bodies,
        statuses,
    }
}

fn webhook(url: &str, extra: &str) -> String {
    format!(
        r#", "webhooks": [{{"realm": "realm1", "role": "hooks", "topics": ["com.app.*"], "url": "{url}"{extra}}}]"#
    )
}

/// Waits until `f` holds (polling), or fails the test.
async fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + TIMEOUT;
    while !f() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn webhook_stats(srv: &TestServer) -> Value {
    srv.status().await["webhooks"][0].clone()
}

#[tokio::test]
async fn webhook_delivers_events_as_json() {
    let rx = receiver().await;
    let srv = server(&webhook(&format!("http://{}/hook?token=abc", rx.addr), "")).await;
    let mut publisher = srv.joined(Ser::Cbor).await;
    for (topic, args) in [
        ("com.app.order.new", json!([1, "\u{0}AQI="])),
        ("com.elsewhere.x", json!([2])),
        ("com.app.order.paid", json!([3])),
    ] {
        let r = publisher.request_id();
        publisher
            .send(json!([16, r, {"acknowledge": true}, topic, args, {"k": "v"}]))
            .await;
        assert_eq!(publisher.recv().await[0], 17);
    }
    // And one through the HTTP bridge.
    let r = post(
        srv.addr,
        "/publish",
        r#"{"topic": "com.app.order.shipped", "args": [4]}"#,
    )
    .await;
    assert_eq!(r.status, 200);
    eventually("three deliveries", || rx.bodies.lock().len() >= 3).await;
    let bodies = rx.bodies.lock().clone();
    assert_eq!(bodies.len(), 3, "{bodies:?}");
    assert_eq!(bodies[0]["topic"], "com.app.order.new");
    assert!(bodies[0]["publication"].as_u64().is_some());
    assert_eq!(bodies[0]["args"], json!([1, "\u{0}AQI="]));
    assert_eq!(bodies[0]["kwargs"], json!({"k": "v"}));
    assert_eq!(bodies[0]["details"]["topic"], "com.app.order.new");
    assert_eq!(
        bodies[1]["args"],
        json!([3]),
        "in order, other topics left out"
    );
    assert_eq!(bodies[2]["args"], json!([4]));
    assert_eq!(bodies[2]["kwargs"], json!({}));
    assert_eq!(bodies[2]["publication"], r.body["id"]);
    let s = webhook_stats(&srv).await;
    assert_eq!(
        (&s["delivered"], &s["failed"], &s["dropped"], &s["retries"]),
        (&json!(3), &json!(0), &json!(0), &json!(0)),
        "{s}"
    );
    assert_eq!(s["topics"], json!(["com.app.*"]));
    assert_eq!(
        s["target"],
        format!("http://{}/hook", rx.addr),
        "no query (it may hold a token)"
    );
}

#[tokio::test]
async fn webhook_retries_after_a_failure_and_gives_up_on_a_refusal() {
    let rx = receiver().await;
    rx.statuses.lock().extend([503, 200, 400]);
    let srv = server(&webhook(
        &format!("http://{}/hook", rx.addr),
        r#", "retry_delay_ms": 50"#,
    ))
    .await;
    // 503 then 200: delivered on the retry.
    let r = post(
        srv.addr,
        "/publish",
        r#"{"topic": "com.app.a", "args": [1]}"#,
    )
    .await;
    assert_eq!(r.status, 200);
    eventually("the retried delivery", || rx.bodies.lock().len() == 1).await;
    // 400: the receiver refuses this event; no retry.
    post(
        srv.addr,
        "/publish",
        r#"{"topic": "com.app.b", "args": [2]}"#,
    )
    .await;
    post(
        srv.addr,
        "/publish",
        r#"{"topic": "com.app.c", "args": [3]}"#,
    )
    .await;
    eventually("the third event", || rx.bodies.lock().len() == 2).await;
    assert_eq!(rx.bodies.lock()[1]["args"], json!([3]));
    let s = webhook_stats(&srv).await;
    assert_eq!(
        (&s["delivered"], &s["failed"], &s["retries"]),
        (&json!(2), &json!(1), &json!(1)),
        "{s}"
    );
}

#[tokio::test]
async fn a_dead_receiver_fills_the_queue_and_drops_are_counted() {
    // A port nobody listens on.
    let dead = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    let srv = server(&webhook(
        &format!("http://{dead}/hook"),
        r#", "max_queue": 2, "retries": 1, "retry_delay_ms": 300"#,
    ))
    .await;
    let mut publisher = srv.joined(Ser::Json).await;
    let started = std::time::Instant::now();
    for i in 0..10 {
        let r = publisher.request_id();
        publisher
            .send(json!([16, r, {"acknowledge": true}, "com.app.tick", [i]]))
            .await;
        assert_eq!(publisher.recv().await[0], 17);
    }
    assert!(
        started.elapsed() < Duration::from_millis(250),
        "publishing never waits for the webhook"
    );
    let deadline = std::time::Instant::now() + TIMEOUT;
    let last = loop {
        let last = webhook_stats(&srv).await;
        let (f, d) = (
            last["failed"].as_u64().unwrap(),
            last["dropped"].as_u64().unwrap(),
        );
        if f + d == 10 {
            break last;
        }
        assert!(std::time::Instant::now() < deadline, "{last}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    // One in flight and two queued fail after their retry; the other seven were dropped.
    assert_eq!(last["delivered"], 0, "{last}");
    assert_eq!(last["failed"], 3, "{last}");
    assert_eq!(last["dropped"], 7, "{last}");
    assert_eq!(last["retries"], 3, "{last}");
}

#[tokio::test]
async fn a_webhook_whose_role_may_not_subscribe_stops_start_up() {
    let text = config(
        r#", "webhooks": [{"realm": "realm1", "role": "php", "topics": ["com.app.*"], "url": "http://127.0.0.1:1/"}]"#,
    );
    let loaded = crossbar::parse(&text, false, "bridge.json", Limits::default()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut opts =
        switchboard::app::Options::development("127.0.0.1:0".parse().unwrap(), dir.path().into());
    opts.node = loaded.node;
    let err = switchboard::app::start(opts).await.err().expect("refused");
    let msg = err.to_string();
    assert!(msg.starts_with("workers[0].webhooks[0]: "), "{msg}");
    assert!(msg.contains("not_authorized"), "{msg}");
}
