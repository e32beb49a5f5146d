use crate::support::*;
use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message as WsMessage;

#[tokio::test]
async fn status_reports_live_figures() {
    let srv = TestServer::start().await;
    let st = srv.status().await;
    assert_eq!(st["name"], "switchboard");
    assert_eq!(st["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(st["dev_mode"], true);
    assert_eq!(
        st["realms"],
        json!([{"name": "realm1", "sessions": 0, "subscriptions": 0, "registrations": 0}])
    );
    assert!(st["started_at"].as_str().is_some_and(|s| s.ends_with('Z')));
    let mut c = srv.joined(Ser::Json).await;
    c.subscribe("com.s", json!({})).await;
    c.register("com.r", json!({})).await;
    let st = srv.status().await;
    assert_eq!(
        st["realms"][0],
        json!({"name": "realm1", "sessions": 1, "subscriptions": 1, "registrations": 1})
    );
    assert_eq!(st["connections"], 1);
    assert!(st["messages_in"].as_u64().unwrap_or(0) >= 3);
    assert!(st["messages_out"].as_u64().unwrap_or(0) >= 3);
}

#[tokio::test]
async fn web_ui_is_served_with_headers() {
    let srv = TestServer::start().await;
    let (head, body) = http_get(srv.addr, "/").await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        head.to_lowercase().contains("content-type: text/html"),
        "{head}"
    );
    assert!(
        head.to_lowercase()
            .contains("content-security-policy: default-src 'self'"),
        "{head}"
    );
    assert!(
        head.to_lowercase()
            .contains("x-content-type-options: nosniff"),
        "{head}"
    );
    assert!(body.contains("Switchboard"));
    let (head, _) = http_get(srv.addr, "/app.js").await;
    assert!(head.to_lowercase().contains("javascript"), "{head}");
    let (head, body) = http_get(srv.addr, "/no/such/file").await;
    assert!(head.starts_with("HTTP/1.1 404"), "{head}");
    assert!(body.contains("not found"));
    let (head, _) = http_get(srv.addr, "/ws").await;
    assert!(head.starts_with("HTTP/1.1 426"), "{head}");
}

#[tokio::test]
async fn admin_view_is_served_at_slash_admin() {
    let srv = TestServer::start().await;
    let (head, body) = http_get(srv.addr, "/admin").await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        head.to_lowercase().contains("content-type: text/html"),
        "{head}"
    );
    assert!(body.contains("/admin.js"), "{body}");
    for module in ["/admin.js", "/wamp.js"] {
        let (head, _) = http_get(srv.addr, module).await;
        assert!(head.starts_with("HTTP/1.1 200"), "{module}: {head}");
        assert!(
            head.to_lowercase().contains("javascript"),
            "{module}: {head}"
        );
    }
}

#[tokio::test]
async fn staff_inbox_is_served_at_slash_inbox() {
    let srv = TestServer::start().await;
    let (head, body) = http_get(srv.addr, "/inbox").await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        head.to_lowercase().contains("content-type: text/html"),
        "{head}"
    );
    assert!(body.contains("/inbox.js"), "{body}");
    for (asset, kind) in [("/inbox.js", "javascript"), ("/inbox.css", "css")] {
        let (head, _) = http_get(srv.addr, asset).await;
        assert!(head.starts_with("HTTP/1.1 200"), "{asset}: {head}");
        assert!(head.to_lowercase().contains(kind), "{asset}: {head}");
    }
}

async fn handshake(url: &str, protocols: Option<&str>) -> Result<Option<String>, String> {
    let mut req = url.into_client_request().map_err(|e| e.to_string())?;
    if let Some(p) = protocols {
        req.headers_mut().insert(
            "Sec-WebSocket-Protocol",
            HeaderValue::from_str(p).map_err(|e| e.to_string())?,
        );
    }
    match tokio_tungstenite::connect_async(req).await {
        Ok((_, resp)) => Ok(resp
            .headers()
            .get("sec-websocket-protocol")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)),
        Err(e) => Err(e.to_string()),
    }
}

#[tokio::test]
async fn subprotocol_negotiation() {
    let srv = TestServer::start().await;
    let url = srv.ws_url();
    assert_eq!(
        handshake(&url, Some("wamp.2.cbor, wamp.2.json")).await,
        Ok(Some("wamp.2.cbor".into()))
    );
    assert_eq!(
        handshake(&url, Some("wamp.2.ubjson, wamp.2.msgpack")).await,
        Ok(Some("wamp.2.msgpack".into()))
    );
    let err = handshake(&url, Some("mqtt")).await.expect_err("refused");
    assert!(err.contains("400"), "{err}");
    let err = handshake(&url, None).await.expect_err("refused");
    assert!(err.contains("400"), "{err}");
}

#[tokio::test]
async fn echo_endpoint_exists_only_when_enabled() {
    let srv = TestServer::start().await;
    assert!(handshake(&format!("ws://{}/echo", srv.addr), None)
        .await
        .is_err());
    let srv = TestServer::with(|o| o.echo_path = Some("/echo".into())).await;
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{}/echo", srv.addr))
        .await
        .expect("echo handshake");
    for m in [
        WsMessage::Text("héllo".into()),
        WsMessage::Binary(vec![0u8, 255, 7].into()),
        WsMessage::Binary(vec![9u8; 200_000].into()),
    ] {
        ws.send(m.clone()).await.expect("send");
        let back = ws.next().await.expect("frame").expect("ok");
        assert_eq!(back, m);
    }
}

/// A 101 starts a WebSocket, not a page: it carries the handshake headers and none of the
/// page policies (which cost every connection their formatting and mean nothing there).
#[tokio::test]
async fn the_websocket_handshake_answer_carries_no_page_headers() {
    let srv = TestServer::start().await;
    let mut req = srv.ws_url().into_client_request().unwrap();
    req.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        HeaderValue::from_static("wamp.2.json"),
    );
    let (_ws, resp) = tokio_tungstenite::connect_async(req)
        .await
        .expect("handshake");
    assert_eq!(resp.status().as_u16(), 101);
    let h = resp.headers();
    assert_eq!(h.get("sec-websocket-protocol").unwrap(), "wamp.2.json");
    for page_only in [
        "content-security-policy",
        "x-frame-options",
        "referrer-policy",
        "x-content-type-options",
    ] {
        assert!(h.get(page_only).is_none(), "{page_only} on a 101");
    }
}

/// The closing handshake as RFC 6455 §7.1.1 wants it: the router echoes the client's close
/// frame and then ends TCP itself (the reply and the FIN share a write), so the client sees its
/// close answered and then the end of the stream, without waiting for a timeout.
#[tokio::test]
async fn client_close_is_answered_then_the_router_ends_tcp() {
    use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
    use tokio_tungstenite::tungstenite::protocol::CloseFrame;
    let srv = TestServer::with(|o| o.echo_path = Some("/echo".into())).await;
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{}/echo", srv.addr))
        .await
        .expect("echo handshake");
    ws.send(WsMessage::Text("before the close".into()))
        .await
        .expect("send");
    ws.close(Some(CloseFrame {
        code: CloseCode::Away,
        reason: "bye".into(),
    }))
    .await
    .expect("close");
    let ended = tokio::time::timeout(std::time::Duration::from_secs(2), async {
        let mut seen = vec![];
        while let Some(m) = ws.next().await {
            seen.push(m.expect("frame"));
        }
        seen
    })
    .await
    .expect("the router ends the connection by itself");
    assert_eq!(ended.len(), 2, "{ended:?}");
    assert_eq!(ended[0], WsMessage::Text("before the close".into()));
    match &ended[1] {
        WsMessage::Close(Some(c)) => assert_eq!(c.code, CloseCode::Away),
        other => panic!("expected the close echoed, got {other:?}"),
    }
}

#[tokio::test]
async fn invalid_utf8_text_frame_closes_with_1007() {
    let srv = TestServer::with(|o| o.echo_path = Some("/echo".into())).await;
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{}/echo", srv.addr))
        .await
        .expect("echo handshake");
    use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
    use tokio_tungstenite::tungstenite::protocol::frame::Frame;
    ws.send(WsMessage::Frame(Frame::message(
        vec![0xff, 0xfe],
        OpCode::Data(Data::Text),
        true,
    )))
    .await
    .expect("send");
    match ws.next().await {
        Some(Ok(WsMessage::Close(Some(c)))) => assert_eq!(u16::from(c.code), 1007),
        other => panic!("expected close 1007, got {other:?}"),
    }
}
