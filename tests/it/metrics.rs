//! `/metrics`, `/healthz` and `/readyz` through real sessions: the exposition text is parsed
//! here (a small parser of the Prometheus text format) and the series are checked to move by
//! exactly what the sessions did.

use crate::support::*;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use serde_json::json;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use switchboard::config::{crossbar, Limits};

/// Series → value. A series is written `name{k="v",…}` with its labels sorted by name.
type Series = HashMap<String, f64>;

fn key(name: &str, labels: &[(&str, &str)]) -> String {
    let mut l: Vec<(String, String)> = labels
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    l.sort();
    if l.is_empty() {
        return name.to_owned();
    }
    let inner: Vec<String> = l.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
    format!("{name}{{{}}}", inner.join(","))
}

/// Parses one sample line: `name{a="x",b="y\"z"} 12` (labels optional).
fn parse_line(line: &str) -> (String, f64) {
    let (name, rest) = match line.find(['{', ' ']) {
        Some(i) => line.split_at(i),
        None => panic!("no value in {line:?}"),
    };
    let mut labels = Vec::new();
    let rest = if let Some(mut body) = rest.strip_prefix('{') {
        loop {
            if let Some(after) = body.strip_prefix('}') {
                break after;
            }
            body = body.trim_start_matches(',');
            let eq = body
                .find('=')
                .unwrap_or_else(|| panic!("label in {line:?}"));
            let k = &body[..eq];
            let mut chars = body[eq + 1..].strip_prefix('"').expect("quoted").chars();
            let mut v = String::new();
            loop {
                match chars
                    .next()
                    .unwrap_or_else(|| panic!("unterminated {line:?}"))
                {
                    '"' => break,
                    '\\' => match chars.next() {
                        Some('n') => v.push('\n'),
                        Some(c) => v.push(c),
                        None => panic!("escape at end of {line:?}"),
                    },
                    c => v.push(c),
                }
            }
            labels.push((k.to_owned(), v));
            body = chars.as_str();
        }
    } else {
        rest
    };
    let value = rest.split_whitespace().next().expect("value");
    let value: f64 = value
        .parse()
        .unwrap_or_else(|_| panic!("bad value in {line:?}"));
    let refs: Vec<(&str, &str)> = labels
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    (key(name, &refs), value)
}

fn parse(text: &str) -> Series {
    text.lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(parse_line)
        .collect()
}

async fn scrape_at(addr: SocketAddr) -> Series {
    let (head, body) = http_get(addr, "/metrics").await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: text/plain; version=0.0.4; charset=utf-8"),
        "{head}"
    );
    parse(&body)
}

async fn scrape(srv: &TestServer) -> Series {
    scrape_at(srv.addr).await
}

fn get(s: &Series, name: &str, labels: &[(&str, &str)]) -> f64 {
    let k = key(name, labels);
    *s.get(&k).unwrap_or_else(|| {
        let mut known: Vec<&String> = s.keys().filter(|x| x.starts_with(name)).collect();
        known.sort();
        panic!("no series {k}; have {known:#?}")
    })
}

fn received(s: &Series, typ: &str) -> f64 {
    get(s, "switchboard_messages_received_total", &[("type", typ)])
}

fn sent(s: &Series, typ: &str) -> f64 {
    get(s, "switchboard_messages_sent_total", &[("type", typ)])
}

/// Scrapes until `done` holds (the connection loop reports some figures when it ends).
async fn scrape_until(srv: &TestServer, what: &str, done: impl Fn(&Series) -> bool) -> Series {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let s = scrape(srv).await;
        if done(&s) {
            return s;
        }
        assert!(Instant::now() < deadline, "never saw {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[test]
fn the_parser_reads_labels_escapes_and_values() {
    let s = parse("# HELP x y\nx_total{b=\"2\",a=\"q\\\"uo\\\\te\"} 3\nup 1\n");
    assert_eq!(get(&s, "x_total", &[("a", "q\"uo\\te"), ("b", "2")]), 3.0);
    assert_eq!(get(&s, "up", &[]), 1.0);
}

#[tokio::test]
async fn a_publish_moves_the_message_counters_and_sessions_are_gauged() {
    let srv = TestServer::start().await;
    let mut subs = Vec::new();
    for ser in ALL {
        let mut c = srv.joined(ser).await;
        c.subscribe("com.metrics.news", json!({})).await;
        subs.push(c);
    }
    let mut p = srv.joined(Ser::Json).await;
    let before = scrape(&srv).await;
    // Exactly what the four clients did so far (router-internal sessions are not counted).
    assert_eq!(received(&before, "HELLO"), 4.0);
    assert_eq!(sent(&before, "WELCOME"), 4.0);
    assert_eq!(received(&before, "SUBSCRIBE"), 3.0);
    assert_eq!(sent(&before, "SUBSCRIBED"), 3.0);
    assert_eq!(received(&before, "PUBLISH"), 0.0);
    let sessions = |s: &Series, transport: &str, ser: &str| {
        get(
            s,
            "switchboard_sessions",
            &[
                ("realm", "realm1"),
                ("serializer", ser),
                ("transport", transport),
            ],
        )
    };
    assert_eq!(sessions(&before, "websocket", "json"), 2.0);
    assert_eq!(sessions(&before, "websocket", "msgpack"), 1.0);
    assert_eq!(sessions(&before, "websocket", "cbor"), 1.0);
    assert_eq!(sessions(&before, "rawsocket", "json"), 0.0);
    assert_eq!(
        get(&before, "switchboard_subscriptions", &[("realm", "realm1")]),
        1.0
    );
    assert!(get(&before, "switchboard_connections", &[]) >= 4.0);

    let mut bytes_published = 0;
    for i in 0..5u64 {
        let m = json!([16, i + 1, {"acknowledge": true}, "com.metrics.news", [i]]);
        bytes_published += m.to_string().len();
        p.send(m).await;
        assert_eq!(p.recv().await[0], 17);
    }
    for s in &mut subs {
        for _ in 0..5 {
            assert_eq!(s.recv().await[0], 36);
        }
    }
    let after = scrape(&srv).await;
    let delta = |f: &dyn Fn(&Series) -> f64| f(&after) - f(&before);
    assert_eq!(delta(&|s| received(s, "PUBLISH")), 5.0);
    assert_eq!(
        delta(&|s| sent(s, "EVENT")),
        15.0,
        "5 events × 3 subscribers"
    );
    assert_eq!(delta(&|s| sent(s, "PUBLISHED")), 5.0);
    assert_eq!(delta(&|s| sent(s, "RESULT")), 0.0);
    let bytes_in = |s: &Series| get(s, "switchboard_received_bytes_total", &[]);
    assert!(
        delta(&bytes_in) >= bytes_published as f64,
        "{} bytes read for {bytes_published} bytes of PUBLISH",
        delta(&bytes_in)
    );
    assert!(delta(&|s| get(s, "switchboard_sent_bytes_total", &[])) > 0.0);

    // A session leaving is gone from the gauge at once.
    drop(subs.pop());
    let gone = scrape_until(&srv, "the cbor session leaving", |s| {
        sessions(s, "websocket", "cbor") == 0.0
    })
    .await;
    assert_eq!(sessions(&gone, "websocket", "json"), 2.0);
}

#[tokio::test]
async fn a_slow_consumer_cut_off_and_its_dropped_frames_are_counted() {
    let srv = TestServer::with_limits(Limits {
        max_message_size: 4096,
        max_queue_bytes: 256 * 1024,
        ..Limits::default()
    })
    .await;
    let mut stalled = srv.joined(Ser::Json).await;
    stalled.subscribe("com.flood", json!({})).await;
    let mut p = srv.joined(Ser::Json).await;
    let before = scrape(&srv).await;
    assert_eq!(
        get(&before, "switchboard_slow_consumer_disconnects_total", &[]),
        0.0
    );
    let payload = "y".repeat(3000);
    for i in 0..8000u64 {
        p.send(json!([16, i + 1, {}, "com.flood", [payload]])).await;
    }
    p.send(json!([16, 999_999, {"acknowledge": true}, "com.flood", []]))
        .await;
    assert_eq!(p.recv().await[0], 17);
    // Counted when the cut-off connection has ended.
    let after = scrape_until(&srv, "the cut-off", |s| {
        get(s, "switchboard_slow_consumer_disconnects_total", &[]) > 0.0
    })
    .await;
    assert_eq!(
        get(&after, "switchboard_slow_consumer_disconnects_total", &[]),
        1.0
    );
    assert!(get(&after, "switchboard_outbound_frames_dropped_total", &[]) >= 1.0);
    // Every EVENT was queued (and counted) until the overflow; none after it.
    assert!(sent(&after, "EVENT") < 8000.0, "{}", sent(&after, "EVENT"));
    drop(stalled);
}

#[tokio::test]
async fn auth_failures_are_counted_by_method_and_reason() {
    let loaded = crossbar::parse(
        crate::auth::AUTH_CONFIG,
        false,
        "auth.json",
        Limits::default(),
    )
    .expect("config loads");
    let srv = TestServer::with(move |o| o.node = loaded.node).await;
    let hello = |methods: serde_json::Value, authid: &str| json!([1, "realm1", {"authmethods": methods, "authid": authid}]);
    // A wrong ticket.
    let mut c = srv.client(Ser::Json).await;
    c.send(hello(json!(["ticket"]), "joe")).await;
    assert_eq!(c.recv().await[0], 4);
    c.send(json!([5, "not-joes-ticket", {}])).await;
    c.expect_abort("wamp.error.not_authorized").await;
    // An unknown authid, twice.
    for _ in 0..2 {
        let mut c = srv.client(Ser::Json).await;
        c.send(hello(json!(["ticket"]), "nobody")).await;
        c.expect_abort("wamp.error.no_such_principal").await;
    }
    // No offered method is enabled.
    let mut c = srv.client(Ser::Json).await;
    c.send(hello(json!(["scram"]), "joe")).await;
    c.expect_abort("wamp.error.no_auth_method").await;
    // A success is not a failure.
    let mut c = srv.client(Ser::Json).await;
    c.send(hello(json!(["ticket"]), "joe")).await;
    assert_eq!(c.recv().await[0], 4);
    c.send(json!([5, "joe-ticket", {}])).await;
    assert_eq!(c.recv().await[0], 2);

    let s = scrape(&srv).await;
    let failures = |method: &str, reason: &str| {
        get(
            &s,
            "switchboard_auth_failures_total",
            &[("method", method), ("reason", reason)],
        )
    };
    assert_eq!(failures("ticket", "not_authorized"), 1.0);
    assert_eq!(failures("ticket", "no_such_principal"), 2.0);
    assert_eq!(failures("none", "no_auth_method"), 1.0);
    let all: f64 = s
        .iter()
        .filter(|(k, _)| k.starts_with("switchboard_auth_failures_total"))
        .map(|(_, v)| v)
        .sum();
    assert_eq!(all, 4.0, "nothing else counted");
    assert_eq!(received(&s, "AUTHENTICATE"), 2.0);
    assert_eq!(sent(&s, "CHALLENGE"), 2.0);
    assert_eq!(sent(&s, "ABORT"), 4.0);
}

const AUTHORIZER_CONFIG: &str = r#"{
  "version": 2,
  "workers": [{
    "type": "router",
    "realms": [{"name": "realm1", "roles": [
      {"name": "backend", "permissions": [{"uri": "", "match": "prefix", "allow": {"call": true, "register": true, "publish": true, "subscribe": true}}]},
      {"name": "reviewer", "authorizer": "com.example.authorize"}
    ]}],
    "transports": [{
      "type": "web",
      "endpoint": {"type": "tcp", "port": 0, "interface": "127.0.0.1"},
      "paths": {
        "backend": {"type": "websocket", "auth": {"anonymous": {"type": "static", "role": "backend"}}},
        "review": {"type": "websocket", "auth": {"anonymous": {"type": "static", "role": "reviewer"}}}
      }
    }]
  }]
}"#;

#[tokio::test]
async fn authorizer_calls_and_cache_hits_are_counted() {
    let loaded = crossbar::parse(AUTHORIZER_CONFIG, false, "authz.json", Limits::default())
        .expect("config loads");
    let srv = TestServer::with(move |o| o.node = loaded.node).await;
    let at = |path: &str| format!("ws://{}/{path}", srv.addr);
    let mut w = Client::connect(&at("backend"), Ser::Json).await;
    w.join("realm1").await;
    w.register("com.example.authorize", json!({})).await;
    let mut r = Client::connect(&at("review"), Ser::Json).await;
    r.join("realm1").await;

    // Asked, allowed, cached.
    let req = r.request_id();
    r.send(json!([32, req, {}, "com.review.feed"])).await;
    let inv = w.recv().await;
    assert_eq!(inv[0], 68, "{inv}");
    w.send(json!([70, inv[1], {}, [{"allow": true, "cache": true}]]))
        .await;
    assert_eq!(r.recv().await[0], 33);
    // From the cache: no INVOCATION this time.
    r.subscribe("com.review.feed", json!({})).await;
    // Asked, denied.
    let req = r.request_id();
    r.send(json!([48, req, {}, "com.review.secret", []])).await;
    let inv = w.recv().await;
    assert_eq!(inv[0], 68, "{inv}");
    w.send(json!([70, inv[1], {}, [false]])).await;
    assert_eq!(r.recv().await[0], 8);

    let s = scrape(&srv).await;
    let calls = |outcome: &str| {
        get(
            &s,
            "switchboard_authorizer_calls_total",
            &[("outcome", outcome), ("realm", "realm1")],
        )
    };
    assert_eq!(calls("allowed"), 1.0);
    assert_eq!(calls("denied"), 1.0);
    assert_eq!(calls("failed"), 0.0);
    assert_eq!(
        get(
            &s,
            "switchboard_authorizer_cache_hits_total",
            &[("realm", "realm1")]
        ),
        1.0
    );
    assert_eq!(sent(&s, "INVOCATION"), 2.0);
    assert_eq!(received(&s, "YIELD"), 2.0);
    assert_eq!(
        get(&s, "switchboard_registrations", &[("realm", "realm1")]),
        1.0
    );
}

const CHAT_CONFIG: &str = r#"{
  "version": 2,
  "workers": [{
    "type": "router",
    "realms": [{"name": "realm1", "roles": [{"name": "visitor"}, {"name": "staff"}]}],
    "chat": {"realm": "realm1", "staff_roles": ["staff"]},
    "transports": [{"type": "web", "endpoint": {"type": "tcp", "port": 0, "interface": "127.0.0.1"},
      "paths": {"ws": {"type": "websocket", "auth": {"ticket": {"type": "visitor"}}}}}]
  }]
}"#;

#[tokio::test]
async fn chat_messages_and_store_flushes_are_counted() {
    let loaded =
        crossbar::parse(CHAT_CONFIG, false, "chat.json", Limits::default()).expect("config");
    let srv = TestServer::with(move |o| o.node = loaded.node).await;
    let mut v = srv.client(Ser::Json).await;
    v.send(json!([1, "realm1", {"authmethods": ["ticket"], "roles": {"caller": {}}}]))
        .await;
    assert_eq!(v.recv().await[0], 4);
    v.send(json!([5, "metrics-visitor-token-0123456789", {}]))
        .await;
    assert_eq!(v.recv().await[0], 2);
    let r = v.request_id();
    v.send(json!([48, r, {}, "switchboard.chat.open", []]))
        .await;
    let m = v.recv().await;
    assert_eq!((m[0].as_u64(), m[1].as_u64()), (Some(50), Some(r)), "{m}");
    let thread = m[3][0]["thread"].as_u64().expect("thread id");
    let before = scrape(&srv).await;
    let flushes = |s: &Series| {
        get(
            s,
            "switchboard_store_flush_duration_seconds_count",
            &[("store", "chat")],
        )
    };
    let chat = |s: &Series, name: &str| get(s, name, &[("from", "visitor")]);
    assert_eq!(chat(&before, "switchboard_chat_messages_sent_total"), 0.0);
    for text in ["hello", "anyone there?"] {
        let r = v.request_id();
        v.send(json!([48, r, {}, "switchboard.chat.send", [thread, text]]))
            .await;
        let m = v.recv().await;
        assert_eq!((m[0].as_u64(), m[1].as_u64()), (Some(50), Some(r)), "{m}");
    }
    let after = scrape(&srv).await;
    assert_eq!(chat(&after, "switchboard_chat_messages_sent_total"), 2.0);
    assert_eq!(
        chat(&after, "switchboard_chat_messages_acknowledged_total"),
        2.0
    );
    assert_eq!(
        get(
            &after,
            "switchboard_chat_messages_sent_total",
            &[("from", "staff")]
        ),
        0.0
    );
    assert!(
        flushes(&after) >= flushes(&before) + 1.0,
        "an acknowledged message was flushed"
    );
}

/// One HTTP/1.1 connection kept open across requests.
struct KeepAlive(hyper::client::conn::http1::SendRequest<Empty<Bytes>>);

impl KeepAlive {
    async fn open(addr: SocketAddr) -> KeepAlive {
        let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let (send, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tcp))
            .await
            .expect("handshake");
        tokio::spawn(conn);
        KeepAlive(send)
    }

    async fn get(&mut self, path: &str, accept: Option<&str>) -> (u16, String, String) {
        let mut req = hyper::Request::get(path).header("host", "switchboard");
        if let Some(a) = accept {
            req = req.header("accept", a);
        }
        let resp = tokio::time::timeout(
            TIMEOUT,
            self.0
                .send_request(req.body(Empty::new()).expect("request")),
        )
        .await
        .expect("in time")
        .expect("response");
        let status = resp.status().as_u16();
        let ctype = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let body = resp.into_body().collect().await.expect("body").to_bytes();
        (status, ctype, String::from_utf8_lossy(&body).into_owned())
    }
}

#[tokio::test]
async fn health_and_readiness_and_openmetrics_on_request() {
    let mut srv = TestServer::start().await;
    let mut http = KeepAlive::open(srv.addr).await;
    assert_eq!(http.get("/healthz", None).await.0, 200);
    let (status, _, body) = http.get("/readyz", None).await;
    assert_eq!((status, body.trim()), (200, "ready"));
    let (status, ctype, body) = http
        .get(
            "/metrics",
            Some("application/openmetrics-text;version=1.0.0"),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        ctype,
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    );
    assert!(body.ends_with("# EOF\n"), "{body}");
    assert!(body.contains("switchboard_build_info{version=\""));

    // Shutting down: not ready any more, still alive.
    let running = srv.running.take().expect("running");
    running.shutdown().await.expect("clean shutdown");
    let (status, _, body) = http.get("/readyz", None).await;
    assert_eq!((status, body.trim()), (503, "shutting down"));
    assert_eq!(http.get("/healthz", None).await.0, 200);
}

/// Only listeners that serve the web UI answer (every HTTP listener a config makes does; a
/// listener without the UI is made here by hand).
#[tokio::test]
async fn listeners_without_the_web_ui_do_not_serve_metrics() {
    let srv = TestServer::with(|o| {
        for l in &mut o.node.listeners {
            l.web = false;
        }
    })
    .await;
    for path in ["/metrics", "/healthz", "/readyz"] {
        let (head, _) = http_get(srv.addr, path).await;
        assert!(head.starts_with("HTTP/1.1 404"), "{path}: {head}");
    }
}
