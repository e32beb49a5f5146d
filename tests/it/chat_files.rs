//! Chat attachments end to end: an upload slot over WAMP, the bytes over HTTP, the file
//! attached to a message, downloads through signed links — and every refusal.

use crate::chat::{
    chat, chat_error, config_with, event, open_thread, server_with, staff, visitor, TOKEN_A,
    TOKEN_B,
};
use crate::support::*;
use serde_json::{json, Value};
use std::net::SocketAddr;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDRtest-image-bytes";

struct Reply {
    status: u16,
    head: String,
    body: Vec<u8>,
}

impl Reply {
    fn header(&self, name: &str) -> Option<String> {
        self.head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_owned())
        })
    }
}

/// One HTTP/1.1 request with `Connection: close`.
async fn request(addr: SocketAddr, method: &str, path: &str, body: &[u8]) -> Reply {
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: x\r\nOrigin: https://shop.example\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).await.expect("write");
    s.write_all(body).await.expect("write body");
    let mut out = Vec::new();
    tokio::time::timeout(TIMEOUT, s.read_to_end(&mut out))
        .await
        .expect("in time")
        .expect("read");
    let split = out
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a response head");
    let head = String::from_utf8_lossy(&out[..split]).into_owned();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status");
    Reply {
        status,
        head,
        body: out[split + 4..].to_vec(),
    }
}

async fn files_server() -> TestServer {
    server_with(&config_with(
        0,
        r#""messages_per_minute": 100000, "max_file_bytes": 1000"#,
    ))
    .await
}

/// Opens an upload slot and sends `bytes`; returns (file id, upload reply).
async fn upload(
    srv: &TestServer,
    c: &mut Client,
    thread: u64,
    name: &str,
    ctype: &str,
    bytes: &[u8],
) -> (u64, Reply) {
    let slot = chat(
        c,
        "upload",
        json!([thread, name, ctype, bytes.len()]),
        json!({}),
    )
    .await;
    let id = slot["file"].as_u64().expect("file id");
    let url = slot["url"].as_str().expect("url").to_owned();
    assert!(slot["max_bytes"]
        .as_u64()
        .is_some_and(|m| m >= bytes.len() as u64));
    (id, request(srv.addr, "PUT", &url, bytes).await)
}

#[tokio::test]
async fn files_are_uploaded_attached_and_downloaded_by_members_only() {
    let srv = files_server().await;
    let mut v = visitor(&srv, TOKEN_A).await;
    let (v_id, thread) = open_thread(&mut v).await;
    v.subscribe(&format!("switchboard.chat.thread.{thread}"), json!({}))
        .await;

    let (file, up) = upload(&srv, &mut v, thread, "../holiday.png", "image/png", PNG).await;
    assert_eq!(up.status, 201, "{}", String::from_utf8_lossy(&up.body));
    assert_eq!(
        up.header("access-control-allow-origin").as_deref(),
        Some("*")
    );
    let stored: Value = serde_json::from_slice(&up.body).expect("json");
    assert_eq!(stored["name"], "holiday.png", "no path survives");
    assert_eq!(stored["content_type"], "image/png");
    assert_eq!(stored["inline"], true);

    // Attached to a message (no text needed), announced with a link.
    let sent = chat(&mut v, "send", json!([thread, ""]), json!({"file": file})).await;
    assert_eq!(sent["seq"], 1);
    let e = event(&mut v).await;
    assert_eq!(e["file"]["id"], file);
    assert_eq!(e["file"]["size"], PNG.len());

    // Staff see it in the history and can fetch it.
    let mut agent = staff(&srv).await;
    let history = chat(&mut agent, "history", json!([thread]), json!({})).await;
    let link = history[0]["file"]["url"].as_str().expect("link").to_owned();
    let got = request(srv.addr, "GET", &link, b"").await;
    assert_eq!(got.status, 200);
    assert_eq!(got.body, PNG);
    assert_eq!(got.header("content-type").as_deref(), Some("image/png"));
    assert!(got
        .header("content-disposition")
        .is_some_and(|d| d.starts_with("inline;")));
    assert_eq!(
        got.header("x-content-type-options").as_deref(),
        Some("nosniff")
    );
    assert!(got
        .header("content-security-policy")
        .is_some_and(|c| c.contains("sandbox")));

    // A forged or altered link gets nothing.
    let tampered = link.replace("sig=", "sig=A");
    assert_eq!(request(srv.addr, "GET", &tampered, b"").await.status, 403);
    let other_file = link.replacen(&format!("/{file}?"), &format!("/{}?", file + 1), 1);
    assert_eq!(request(srv.addr, "GET", &other_file, b"").await.status, 403);
    let expired = {
        let (base, _) = link.split_once("?expires=").expect("expires");
        let sig = link.split("sig=").nth(1).expect("sig");
        format!("{base}?expires=1&sig={sig}")
    };
    assert_eq!(request(srv.addr, "GET", &expired, b"").await.status, 403);
    let bare = link.split('?').next().expect("path").to_owned();
    assert_eq!(request(srv.addr, "GET", &bare, b"").await.status, 403);

    // Another visitor can neither get a link nor upload into the thread.
    let mut other = visitor(&srv, TOKEN_B).await;
    let err = chat_error(&mut other, "file_url", json!([thread, file]), json!({})).await;
    assert_ne!(err, "", "refused");
    let err = chat_error(
        &mut other,
        "upload",
        json!([thread, "x.txt", "text/plain", 3]),
        json!({}),
    )
    .await;
    assert_ne!(err, "");
    // Nor attach someone else's file to a message of its own thread.
    let (_, own) = open_thread(&mut other).await;
    let err = chat_error(
        &mut other,
        "send",
        json!([own, "look"]),
        json!({"file": file}),
    )
    .await;
    assert_eq!(err, "wamp.error.invalid_argument");

    // A fresh link from file_url works for a member.
    let fresh = chat(&mut v, "file_url", json!([thread, file]), json!({})).await;
    let fresh = fresh.as_str().expect("link");
    assert_eq!(request(srv.addr, "GET", fresh, b"").await.status, 200);

    // Deleting the visitor's data deletes the files.
    chat(&mut agent, "forget", json!([v_id]), json!({})).await;
    assert_eq!(request(srv.addr, "GET", fresh, b"").await.status, 404);
}

#[tokio::test]
async fn risky_types_are_downloads_and_sizes_and_tokens_are_enforced() {
    let srv = files_server().await;
    let mut v = visitor(&srv, TOKEN_A).await;
    let (_, thread) = open_thread(&mut v).await;
    let mut agent = staff(&srv).await;
    // SVG (scriptable) and HTML posing as an image are served as opaque downloads.
    for (name, ctype, body) in [
        ("x.svg", "image/svg+xml", &b"<svg onload=alert(1)>"[..]),
        (
            "y.png",
            "image/png",
            &b"<html><script>alert(1)</script>"[..],
        ),
    ] {
        let (file, up) = upload(&srv, &mut v, thread, name, ctype, body).await;
        assert_eq!(up.status, 201);
        chat(&mut v, "send", json!([thread, name]), json!({"file": file})).await;
        let link = chat(&mut agent, "file_url", json!([thread, file]), json!({})).await;
        let got = request(srv.addr, "GET", link.as_str().expect("link"), b"").await;
        assert_eq!(got.status, 200);
        assert_eq!(
            got.header("content-type").as_deref(),
            Some("application/octet-stream")
        );
        assert!(got
            .header("content-disposition")
            .is_some_and(|d| d.starts_with("attachment;")));
    }
    // A PDF keeps its type but is a download.
    let (file, _) = upload(
        &srv,
        &mut v,
        thread,
        "r.pdf",
        "application/pdf",
        b"%PDF-1.7",
    )
    .await;
    let link = chat(&mut v, "file_url", json!([thread, file]), json!({})).await;
    let got = request(srv.addr, "GET", link.as_str().expect("link"), b"").await;
    assert_eq!(
        got.header("content-type").as_deref(),
        Some("application/pdf")
    );
    assert!(got
        .header("content-disposition")
        .is_some_and(|d| d.starts_with("attachment;")));

    // Too big for the configured limit: refused before any byte is sent.
    let err = chat_error(
        &mut v,
        "upload",
        json!([thread, "big.bin", "application/octet-stream", 1001]),
        json!({}),
    )
    .await;
    assert_eq!(err, "wamp.error.invalid_argument");

    // More bytes than announced, a wrong token, a used slot.
    let slot = chat(
        &mut v,
        "upload",
        json!([thread, "a.txt", "text/plain", 4]),
        json!({}),
    )
    .await;
    let url = slot["url"].as_str().expect("url").to_owned();
    let wrong = format!(
        "{}?token=AAAAAAAAAAAAAAAAAAAAAA",
        url.split('?').next().expect("path")
    );
    assert_eq!(request(srv.addr, "PUT", &wrong, b"abcd").await.status, 403);
    assert_eq!(
        request(srv.addr, "PUT", &url, b"abcdefgh").await.status,
        413
    );
    let slot = chat(
        &mut v,
        "upload",
        json!([thread, "a.txt", "text/plain", 4]),
        json!({}),
    )
    .await;
    let url = slot["url"].as_str().expect("url").to_owned();
    assert_eq!(request(srv.addr, "POST", &url, b"abcd").await.status, 201);
    assert_eq!(request(srv.addr, "PUT", &url, b"abcd").await.status, 404);
    // The browser's CORS preflight is answered.
    let pre = request(srv.addr, "OPTIONS", &url, b"").await;
    assert_eq!(pre.status, 204);
    assert!(pre
        .header("access-control-allow-methods")
        .is_some_and(|m| m.contains("PUT")));
}

#[tokio::test]
async fn the_storage_quota_and_upload_rate_hold() {
    let srv = server_with(&config_with(
        0,
        r#""messages_per_minute": 100000, "max_file_bytes": 600, "max_total_file_bytes": 1000, "uploads_per_hour": 3"#,
    ))
    .await;
    let mut v = visitor(&srv, TOKEN_A).await;
    let (_, thread) = open_thread(&mut v).await;
    let (_, up) = upload(&srv, &mut v, thread, "a.bin", "", &[1u8; 600]).await;
    assert_eq!(up.status, 201);
    // 600 stored + 600 more would pass the 1000-byte quota.
    let err = chat_error(
        &mut v,
        "upload",
        json!([thread, "b.bin", "", 600]),
        json!({}),
    )
    .await;
    assert_eq!(err, "switchboard.chat.error.overloaded");
    chat(
        &mut v,
        "upload",
        json!([thread, "c.bin", "", 10]),
        json!({}),
    )
    .await;
    // The fourth upload within the hour is rate limited.
    let err = chat_error(
        &mut v,
        "upload",
        json!([thread, "d.bin", "", 10]),
        json!({}),
    )
    .await;
    assert_eq!(err, "switchboard.chat.error.rate_limited");
}
