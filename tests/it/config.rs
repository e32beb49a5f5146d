//! A Crossbar-style config drives the router: roles and permissions enforced, a universal
//! transport serving WebSocket and RawSocket on one port, `check-config`, start-up errors.

use crate::support::*;
use serde_json::json;
use std::process::Command;
use switchboard::config::{crossbar, Limits};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const CONFIG: &str = r#"{
  "version": 2,
  "workers": [{
    "type": "router",
    "realms": [{
      "name": "shop",
      "roles": [
        {"name": "guest", "permissions": [
          {"uri": "com.shop.public.*", "allow": {"call": true, "subscribe": true}, "disclose": {"caller": true}},
          {"uri": "com.shop.public.orders", "match": "exact", "allow": {"subscribe": false}}
        ]},
        {"name": "backend", "permissions": [
          {"uri": "com.shop.*", "allow": {"call": true, "register": true, "publish": true, "subscribe": true},
           "disclose": {"caller": true, "publisher": true}}
        ]}
      ]
    }],
    "transports": [
      {"type": "universal",
       "endpoint": {"type": "tcp", "port": 0, "interface": "127.0.0.1"},
       "rawsocket": {"serializers": ["msgpack", "json"], "auth": {"anonymous": {"type": "static", "role": "backend"}}},
       "websocket": {"ws": {"type": "websocket", "serializers": ["json", "cbor"], "auth": {"anonymous": {"type": "static", "role": "guest"}},
                            "options": {"allowed_origins": ["https://*.shop.example"]}}},
       "web": {"paths": {"/": {"type": "static", "directory": "web"}}}}
    ]
  }]
}"#;

async fn server() -> TestServer {
    let loaded =
        crossbar::parse(CONFIG, false, "shop.json", Limits::default()).expect("config loads");
    TestServer::with(move |o| o.node = loaded.node).await
}

#[tokio::test]
async fn role_permissions_from_the_config_are_enforced() {
    let srv = server().await;
    let mut guest = srv.client(Ser::Json).await;
    let w = guest.join("shop").await;
    assert_eq!(w[2]["authrole"], "guest");
    for (msg, want) in [
        (
            json!([16, 1, {"acknowledge": true}, "com.shop.public.news", []]),
            "wamp.error.not_authorized",
        ),
        (
            json!([32, 2, {}, "com.shop.private"]),
            "wamp.error.not_authorized",
        ),
        (
            json!([32, 3, {}, "com.shop.public.orders"]),
            "wamp.error.not_authorized",
        ),
        (
            json!([64, 4, {}, "com.shop.public.add"]),
            "wamp.error.not_authorized",
        ),
        (
            json!([48, 5, {}, "com.shop.admin.wipe"]),
            "wamp.error.not_authorized",
        ),
    ] {
        let (uri, args) = guest.expect_error(msg.clone()).await;
        assert_eq!(uri, want, "{msg}");
        assert!(
            args[0].as_str().is_some_and(|m| m.contains("guest")),
            "{args}"
        );
    }
    // What guests may do works.
    guest.subscribe("com.shop.public.news", json!({})).await;
    // The realm of the dev default does not exist here.
    let mut c = srv.client(Ser::Json).await;
    c.send(json!([1, "realm1", {}])).await;
    c.expect_abort("wamp.error.no_such_realm").await;
    // WebSocket on this listener speaks only the configured serializers.
    let url = srv.ws_url();
    let mut req = tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(
        url.as_str(),
    )
    .expect("req");
    req.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        "wamp.2.msgpack".parse().expect("header"),
    );
    let err = tokio_tungstenite::connect_async(req)
        .await
        .expect_err("msgpack not configured on ws");
    assert!(err.to_string().contains("400"), "{err}");
}

#[tokio::test]
async fn universal_port_serves_websocket_and_rawsocket() {
    let srv = server().await;
    assert_eq!(
        srv.running.as_ref().and_then(|r| r.rawsocket_addr),
        Some(srv.addr),
        "same port"
    );
    // A RawSocket backend (role backend) registers; a WebSocket guest calls it.
    let mut raw = tokio::net::TcpStream::connect(srv.addr)
        .await
        .expect("connect");
    raw.write_all(&[0x7F, 0xF1, 0, 0]).await.expect("handshake");
    let mut reply = [0u8; 4];
    raw.read_exact(&mut reply).await.expect("reply");
    assert_eq!(reply[1] & 0x0F, 1, "json accepted");
    async fn send(s: &mut tokio::net::TcpStream, v: serde_json::Value) {
        let b = v.to_string().into_bytes();
        let l = (b.len() as u32).to_be_bytes();
        s.write_all(&[0, l[1], l[2], l[3]]).await.expect("write");
        s.write_all(&b).await.expect("write");
    }
    async fn recv(s: &mut tokio::net::TcpStream) -> serde_json::Value {
        let mut h = [0u8; 4];
        s.read_exact(&mut h).await.expect("header");
        let mut p = vec![0u8; u32::from_be_bytes([0, h[1], h[2], h[3]]) as usize];
        s.read_exact(&mut p).await.expect("payload");
        serde_json::from_slice(&p).expect("json")
    }
    send(&mut raw, json!([1, "shop", {}])).await;
    let w = recv(&mut raw).await;
    assert_eq!(w[2]["authrole"], "backend");
    send(&mut raw, json!([64, 1, {}, "com.shop.public.price"])).await;
    assert_eq!(recv(&mut raw).await[0], 65);
    let mut guest = srv.joined_realm(Ser::Cbor, "shop").await;
    guest
        .send(json!([48, 9, {}, "com.shop.public.price", ["tea"]]))
        .await;
    let inv = recv(&mut raw).await;
    assert_eq!(inv[0], 68);
    assert_eq!(
        inv[3]["caller_authrole"], "guest",
        "the guest's rule discloses its calls (Crossbar: the caller's role decides)"
    );
    send(&mut raw, json!([70, inv[1], {}, [3.5]])).await;
    assert_eq!(guest.recv().await, json!([50, 9, {}, [3.5]]));
    // The same port still serves the web UI.
    let (head, _) = http_get(srv.addr, "/").await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
}

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_switchboard")
}

#[test]
fn check_config_reports_ok_warnings_and_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let good = dir.path().join("good.json");
    std::fs::write(&good, CONFIG).expect("write");
    let out = Command::new(bin())
        .arg("check-config")
        .arg(&good)
        .output()
        .expect("runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("OK — realms [shop]"), "{stdout}");
    assert!(
        stdout.contains("warning: ") && stdout.contains("paths./"),
        "{stdout}"
    );

    let bad = dir.path().join("bad.json");
    std::fs::write(
        &bad,
        CONFIG.replace(r#""match": "exact""#, r#""match": "glob""#),
    )
    .expect("write");
    let out = Command::new(bin())
        .arg("check-config")
        .arg(&bad)
        .output()
        .expect("runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr.contains("bad.json: workers[0].realms[0].roles[0].permissions[1].match"),
        "{stderr}"
    );
}

#[test]
fn a_port_in_use_stops_start_up_naming_the_config_path() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("addr").port();
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("node.json");
    std::fs::write(
        &file,
        CONFIG.replace(r#""port": 0"#, &format!(r#""port": {port}"#)),
    )
    .expect("write");
    let out = Command::new(bin())
        .arg("--config")
        .arg(&file)
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .output()
        .expect("runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("workers[0].transports[0]") && stderr.contains(&port.to_string()),
        "{stderr}"
    );
}

#[tokio::test]
async fn browser_origins_are_checked_when_configured() {
    let srv = server().await;
    let attempt = |origin: &'static str| {
        let url = srv.ws_url();
        async move {
            let mut req =
                tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(
                    url.as_str(),
                )
                .expect("req");
            req.headers_mut().insert(
                "Sec-WebSocket-Protocol",
                "wamp.2.json".parse().expect("header"),
            );
            req.headers_mut()
                .insert("Origin", origin.parse().expect("header"));
            tokio_tungstenite::connect_async(req)
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
        }
    };
    assert!(attempt("https://www.shop.example").await.is_ok());
    let err = attempt("https://evil.example")
        .await
        .expect_err("foreign origin refused");
    assert!(err.contains("403"), "{err}");
    // Clients that send no Origin (back-end workers) are not affected: the other tests connect so.
}

/// Every role × action × URI through real sessions: exact, prefix, wildcard and overlapping
/// rules, most specific rule deciding, everything not granted denied.
#[tokio::test]
async fn permission_matrix() {
    const MATRIX: &str = r#"{"version": 2, "workers": [{"type": "router",
      "realms": [{"name": "m", "roles": [
        {"name": "reader", "permissions": [
          {"uri": "app.", "match": "prefix", "allow": {"subscribe": true, "call": true}},
          {"uri": "app.secret", "match": "prefix", "allow": {}},
          {"uri": "svc..status", "match": "wildcard", "allow": {"subscribe": true, "call": true, "publish": true}}
        ]},
        {"name": "writer", "permissions": [
          {"uri": "app.*", "allow": {"publish": true, "register": true}},
          {"uri": "app.secret.key", "match": "exact", "allow": {"register": true, "call": true, "publish": true, "subscribe": true}}
        ]},
        {"name": "nobody", "permissions": []}
      ]}],
      "transports": [
        {"type": "websocket", "endpoint": {"type": "tcp", "port": 0, "interface": "127.0.0.1"},
         "auth": {"ticket": {"type": "static", "principals": {
           "r": {"ticket": "r", "role": "reader"}, "w": {"ticket": "w", "role": "writer"}, "n": {"ticket": "n", "role": "nobody"}}}}}
      ]}]}"#;
    let loaded =
        crossbar::parse(MATRIX, false, "matrix.json", Limits::default()).expect("config loads");
    let srv = TestServer::with(move |o| o.node = loaded.node).await;
    // exact beats prefix (writer on app.secret.key), the longest prefix wins (reader on
    // app.secret.*), a wildcard decides where no prefix matches (svc.db.status).
    let uris = [
        "app.news",
        "app.secret.plans",
        "app.secret.key",
        "svc.db.status",
        "app.secret.status",
        "other.x",
    ];
    // (role, action) → which of `uris` are allowed
    let expect: [(&str, &str, [bool; 6]); 12] = [
        ("r", "subscribe", [true, false, false, true, false, false]),
        ("r", "call", [true, false, false, true, false, false]),
        ("r", "publish", [false, false, false, true, false, false]),
        ("r", "register", [false; 6]),
        ("w", "subscribe", [false, false, true, false, false, false]),
        ("w", "call", [false, false, true, false, false, false]),
        ("w", "publish", [true, true, true, false, true, false]),
        ("w", "register", [true, true, true, false, true, false]),
        ("n", "subscribe", [false; 6]),
        ("n", "call", [false; 6]),
        ("n", "publish", [false; 6]),
        ("n", "register", [false; 6]),
    ];
    for (who, action, allowed) in expect {
        let mut c = srv.client(Ser::Json).await;
        c.send(json!([1, "m", {"authmethods": ["ticket"], "authid": who}]))
            .await;
        assert_eq!(c.recv().await[0], 4);
        c.send(json!([5, who, {}])).await;
        assert_eq!(c.recv().await[0], 2);
        for (i, uri) in uris.iter().enumerate() {
            let req = (i + 1) as u64;
            let msg = match action {
                "subscribe" => json!([32, req, {}, uri]),
                "register" => json!([64, req, {}, uri]),
                "publish" => json!([16, req, {"acknowledge": true}, uri, []]),
                _ => json!([48, req, {}, uri]),
            };
            c.send(msg).await;
            let reply = c.recv().await;
            let denied = reply[0] == 8 && reply[4] == "wamp.error.not_authorized";
            // An allowed call to a procedure nobody registered is no_such_procedure, not denied.
            assert_eq!(!denied, allowed[i], "{who} {action} {uri}: {reply}");
        }
    }
}
