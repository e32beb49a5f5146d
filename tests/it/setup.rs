//! First run: the one-time setup link creates the first staff account, which can then log in;
//! wrong tokens, weak passwords and a second use are refused.

use crate::support::*;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// POST a JSON body; (status code, body).
async fn post(addr: std::net::SocketAddr, path: &str, body: &str) -> (u16, serde_json::Value) {
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let req = format!(
        "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await.expect("write");
    let mut out = String::new();
    s.read_to_string(&mut out).await.expect("read");
    let status = out
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = out.split("\r\n\r\n").nth(1).unwrap_or("");
    (
        status,
        serde_json::from_str(body.trim()).unwrap_or(json!(null)),
    )
}

#[tokio::test]
async fn first_run_setup_creates_one_staff_account() {
    let srv = TestServer::start().await;
    let token = srv
        .running
        .as_ref()
        .and_then(|r| r.setup.token())
        .expect("a fresh server offers setup");
    let (page, _) = http_get(srv.addr, "/setup").await;
    assert!(page.contains("200"), "{page}");

    let (status, body) = post(
        srv.addr,
        "/api/setup",
        &json!({"token": "wrong", "authid": "boss", "password": "long enough"}).to_string(),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    let (status, body) = post(
        srv.addr,
        "/api/setup",
        &json!({"token": token, "authid": "boss", "password": "short"}).to_string(),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = post(srv.addr, "/api/setup", "{not json").await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = post(
        srv.addr,
        "/api/setup",
        &json!({"token": token, "authid": "boss", "password": "correct horse"}).to_string(),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body, json!({"authid": "boss", "role": "staff"}));
    // Spent.
    let (status, _) = post(
        srv.addr,
        "/api/setup",
        &json!({"token": token, "authid": "eve", "password": "correct horse"}).to_string(),
    )
    .await;
    assert_eq!(status, 410);

    // The new account logs in with WAMP-CRA (salted) and has the staff role.
    use base64::Engine as _;
    use hmac::{Hmac, KeyInit, Mac};
    let mut c = srv.client(Ser::Json).await;
    c.send(json!([1, "realm1", {"authmethods": ["wampcra"], "authid": "boss"}]))
        .await;
    let ch = c.recv().await;
    assert_eq!(ch[1], "wampcra", "{ch}");
    let (salt, iterations, keylen) = (
        ch[2]["salt"].as_str().expect("salted").to_owned(),
        ch[2]["iterations"].as_u64().expect("iterations") as u32,
        ch[2]["keylen"].as_u64().expect("keylen") as usize,
    );
    let mut key = vec![0u8; keylen];
    pbkdf2::pbkdf2_hmac::<sha2::Sha256>(b"correct horse", salt.as_bytes(), iterations, &mut key);
    let key = base64::engine::general_purpose::STANDARD.encode(key);
    let mut mac = <Hmac<sha2::Sha256> as KeyInit>::new_from_slice(key.as_bytes()).expect("key");
    mac.update(ch[2]["challenge"].as_str().expect("challenge").as_bytes());
    let sig = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    c.send(json!([5, sig, {}])).await;
    let w = c.recv().await;
    assert_eq!(w[0], 2, "{w}");
    assert_eq!(w[2]["authrole"], "staff");
}
