//! Dynamic authenticators and authorizers, Crossbar style, driven through real sessions: a
//! "worker" client registers the procedures and answers the router's INVOCATIONs by hand, so
//! each test sees exactly what the router asks and controls what it answers.

use crate::support::*;
use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{json, Value};
use std::time::Duration;
use switchboard::config::{crossbar, Limits};

const CONFIG: &str = r#"{
  "version": 2,
  "workers": [{
    "type": "router",
    "realms": [{"name": "realm1", "roles": [
      {"name": "backend", "permissions": [{"uri": "", "match": "prefix", "allow": {"call": true, "register": true, "publish": true, "subscribe": true}}]},
      {"name": "user", "permissions": [{"uri": "com.app.", "match": "prefix", "allow": {"call": true, "subscribe": true}}]},
      {"name": "reviewer", "authorizer": "com.example.authorize",
       "permissions": [{"uri": "com.open.", "match": "prefix", "allow": {"publish": true}}]}
    ]}],
    "transports": [{
      "type": "web",
      "endpoint": {"type": "tcp", "port": 0, "interface": "127.0.0.1"},
      "paths": {
        "ws": {"type": "websocket", "auth": {
          "ticket": {"type": "dynamic", "authenticator": "com.example.authenticate"},
          "wampcra": {"type": "dynamic", "authenticator": "com.example.authenticate", "authenticator-realm": "realm1"},
          "cryptosign": {"type": "dynamic", "authenticator": "com.example.authenticate"},
          "scram": {"type": "dynamic", "authenticator": "com.example.authenticate"}
        }},
        "backend": {"type": "websocket", "auth": {"anonymous": {"type": "static", "role": "backend"}}},
        "review": {"type": "websocket", "auth": {"anonymous": {"type": "static", "role": "reviewer"}}}
      }
    }]
  }]
}"#;

async fn server_with(limits: Limits) -> TestServer {
    let loaded = crossbar::parse(CONFIG, false, "dynamic.json", limits).expect("config loads");
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    TestServer::with(move |o| o.node = loaded.node).await
}

async fn server() -> TestServer {
    server_with(Limits {
        auth_timeout: Duration::from_millis(1500),
        ..Limits::default()
    })
    .await
}

async fn at(srv: &TestServer, path: &str) -> Client {
    let mut c = Client::connect(&format!("ws://{}/{path}", srv.addr), Ser::Json).await;
    c.join("realm1").await;
    c
}

/// The back end: joined on /backend with `procedure` registered.
async fn worker(srv: &TestServer, procedure: &str) -> (Client, u64) {
    let mut w = at(srv, "backend").await;
    let reg = w.register(procedure, json!({})).await;
    (w, reg)
}

/// The next INVOCATION the worker gets: (request id, args).
async fn invocation(w: &mut Client) -> (u64, Value) {
    let m = w.recv().await;
    assert_eq!(m[0], 68, "INVOCATION expected, got {m}");
    (m[1].as_u64().expect("request"), m[4].clone())
}

async fn hello(srv: &TestServer, methods: Value, authid: &str, extra: Value) -> Client {
    let mut c = srv.client(Ser::Json).await;
    c.send(json!([1, "realm1", {"authmethods": methods, "authid": authid, "authextra": extra, "roles": {"caller": {}}}]))
        .await;
    c
}

fn hmac_b64(key: &[u8], msg: &str) -> String {
    let mut m = <Hmac<sha2::Sha256> as KeyInit>::new_from_slice(key).expect("key");
    m.update(msg.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(m.finalize().into_bytes())
}

#[tokio::test]
async fn ticket_is_judged_by_the_authenticator() {
    let srv = server().await;
    let (mut w, _) = worker(&srv, "com.example.authenticate").await;
    let mut c = hello(&srv, json!(["ticket"]), "joe", json!({"app": "shop"})).await;
    assert_eq!(c.recv().await, json!([4, "ticket", {}]));
    c.send(json!([5, "joe-secret", {}])).await;
    let (req, args) = invocation(&mut w).await;
    assert_eq!(args[0], "realm1");
    assert_eq!(args[1], "joe");
    let details = &args[2];
    assert_eq!(details["ticket"], "joe-secret");
    assert_eq!(details["authmethod"], "ticket");
    assert_eq!(details["authextra"], json!({"app": "shop"}));
    assert_eq!(details["transport"]["type"], "websocket");
    assert!(details["transport"]["peer"]
        .as_str()
        .is_some_and(|p| p.starts_with("tcp4:127.0.0.1")));
    w.send(json!([70, req, {}, [{"role": "user", "extra": {"tier": "gold"}}]]))
        .await;
    let welcome = c.recv().await;
    assert_eq!(welcome[0], 2, "{welcome}");
    assert_eq!(
        welcome[1], details["session"],
        "the session id the authenticator saw"
    );
    assert_eq!(welcome[2]["authid"], "joe");
    assert_eq!(welcome[2]["authrole"], "user");
    assert_eq!(welcome[2]["authmethod"], "ticket");
    assert_eq!(welcome[2]["authprovider"], "dynamic");
    assert_eq!(welcome[2]["authextra"], json!({"tier": "gold"}));
    // The role's static permissions apply.
    let r = c.request_id();
    let (uri, _) = c
        .expect_error(json!([48, r, {}, "com.other.thing", []]))
        .await;
    assert_eq!(uri, "wamp.error.not_authorized");
}

#[tokio::test]
async fn authenticator_errors_become_the_abort_reason() {
    let srv = server().await;
    let (mut w, _) = worker(&srv, "com.example.authenticate").await;
    let mut c = hello(&srv, json!(["ticket"]), "joe", json!({})).await;
    c.recv().await;
    c.send(json!([5, "wrong", {}])).await;
    let (req, _) = invocation(&mut w).await;
    w.send(json!([
        8,
        68,
        req,
        {},
        "com.example.invalid_ticket",
        ["that ticket is not valid"]
    ]))
    .await;
    let abort = c.expect_abort("com.example.invalid_ticket").await;
    assert_eq!(abort[1]["message"], "that ticket is not valid");
}

#[tokio::test]
async fn garbage_from_the_authenticator_is_authentication_failed() {
    let srv = server().await;
    let (mut w, _) = worker(&srv, "com.example.authenticate").await;
    for garbage in [json!([5]), json!([]), json!([{"nothing": true}])] {
        let mut c = hello(&srv, json!(["ticket"]), "joe", json!({})).await;
        c.recv().await;
        c.send(json!([5, "t", {}])).await;
        let (req, _) = invocation(&mut w).await;
        w.send(json!([70, req, {}, garbage])).await;
        c.expect_abort("wamp.error.authentication_failed").await;
    }
    // A role the realm does not have (or one that is not a name), as Crossbar says it.
    for role in [json!(["ghost"]), json!([{"role": 5}])] {
        let mut c = hello(&srv, json!(["ticket"]), "joe", json!({})).await;
        c.recv().await;
        c.send(json!([5, "t", {}])).await;
        let (req, _) = invocation(&mut w).await;
        w.send(json!([70, req, {}, role])).await;
        c.expect_abort("wamp.error.no_such_role").await;
    }
}

#[tokio::test]
async fn wampcra_secret_comes_from_the_authenticator() {
    let srv = server().await;
    let (mut w, _) = worker(&srv, "com.example.authenticate").await;
    let mut c = hello(&srv, json!(["wampcra"]), "alice", json!({})).await;
    let (req, args) = invocation(&mut w).await;
    assert_eq!(args[1], "alice");
    assert_eq!(args[2]["authmethod"], "wampcra");
    w.send(json!([70, req, {}, [{"secret": "pw", "role": "user", "salt": "s4lt", "iterations": 50, "keylen": 32}]]))
        .await;
    let ch = c.recv().await;
    assert_eq!(ch[0], 4, "{ch}");
    assert_eq!(ch[2]["salt"], "s4lt");
    assert_eq!(ch[2]["iterations"], 50);
    let challenge = ch[2]["challenge"].as_str().expect("challenge");
    let mut key = vec![0u8; 32];
    pbkdf2::pbkdf2_hmac::<sha2::Sha256>(b"pw", b"s4lt", 50, &mut key);
    let key = base64::engine::general_purpose::STANDARD.encode(key);
    c.send(json!([5, hmac_b64(key.as_bytes(), challenge), {}]))
        .await;
    let welcome = c.recv().await;
    assert_eq!(welcome[0], 2, "{welcome}");
    assert_eq!(welcome[2]["authrole"], "user");
    assert_eq!(welcome[2]["authmethod"], "wampcra");

    // A wrong signature is refused by the router, not the authenticator.
    let mut c = hello(&srv, json!(["wampcra"]), "alice", json!({})).await;
    let (req, _) = invocation(&mut w).await;
    w.send(json!([70, req, {}, [{"secret": "pw", "role": "user"}]]))
        .await;
    c.recv().await;
    c.send(json!([5, "AAAA", {}])).await;
    c.expect_abort("wamp.error.not_authorized").await;
}

#[tokio::test]
async fn cryptosign_key_is_checked_against_the_authenticator() {
    use ed25519_dalek::{Signer, SigningKey};
    let srv = server().await;
    let (mut w, _) = worker(&srv, "com.example.authenticate").await;
    let key = SigningKey::from_bytes(&[9u8; 32]);
    let pubkey: String = key
        .verifying_key()
        .to_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let mut c = hello(
        &srv,
        json!(["cryptosign"]),
        "dev1",
        json!({"pubkey": pubkey}),
    )
    .await;
    let (req, args) = invocation(&mut w).await;
    assert_eq!(args[2]["authextra"]["pubkey"], pubkey.as_str());
    w.send(json!([70, req, {}, [{"pubkey": pubkey, "role": "user"}]]))
        .await;
    let ch = c.recv().await;
    assert_eq!(ch[1], "cryptosign", "{ch}");
    let challenge = hex_bytes(ch[2]["challenge"].as_str().expect("challenge"));
    let sig: String = key
        .sign(&challenge)
        .to_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    c.send(json!([5, sig, {}])).await;
    let welcome = c.recv().await;
    assert_eq!(welcome[0], 2, "{welcome}");
    assert_eq!(welcome[2]["authmethod"], "cryptosign");

    // The authenticator names another key: refused.
    let mut c = hello(
        &srv,
        json!(["cryptosign"]),
        "dev1",
        json!({"pubkey": pubkey}),
    )
    .await;
    let (req, _) = invocation(&mut w).await;
    w.send(json!([70, req, {}, [{"pubkey": "00".repeat(32), "role": "user"}]]))
        .await;
    c.expect_abort("wamp.error.not_authorized").await;
}

fn hmac_raw(key: &[u8], msg: &[u8]) -> Vec<u8> {
    let mut m = <Hmac<sha2::Sha256> as KeyInit>::new_from_slice(key).expect("key");
    m.update(msg);
    m.finalize().into_bytes().to_vec()
}

#[tokio::test]
async fn scram_credential_comes_from_the_authenticator() {
    use sha2::Digest;
    let b64 = base64::engine::general_purpose::STANDARD;
    let (password, salt, iterations) = ("s3cret", b"pepper-and-salt!".to_vec(), 4096u32);
    // The credential a back end stores (computed here from the spec's definitions).
    let mut salted = [0u8; 32];
    pbkdf2::pbkdf2_hmac::<sha2::Sha256>(password.as_bytes(), &salt, iterations, &mut salted);
    let client_key = hmac_raw(&salted, b"Client Key");
    let stored_key = sha2::Sha256::digest(&client_key).to_vec();
    let server_key = hmac_raw(&salted, b"Server Key");
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();

    let srv = server().await;
    let (mut w, _) = worker(&srv, "com.example.authenticate").await;
    let client_nonce = "rOprNGfwEbeRWgbNEkqO";
    let mut c = hello(
        &srv,
        json!(["scram"]),
        "erin",
        json!({"nonce": client_nonce}),
    )
    .await;
    let (req, args) = invocation(&mut w).await;
    assert_eq!(args[2]["authmethod"], "scram");
    assert_eq!(args[2]["authextra"]["nonce"], client_nonce);
    w.send(
        json!([70, req, {}, [{"role": "user", "kdf": "pbkdf2", "iterations": iterations,
        "salt": hex(&salt), "stored-key": hex(&stored_key), "server-key": hex(&server_key)}]]),
    )
    .await;
    let ch = c.recv().await;
    assert_eq!(ch[1], "scram", "{ch}");
    let nonce = ch[2]["nonce"].as_str().expect("nonce").to_owned();
    assert!(nonce.starts_with(client_nonce));
    assert_eq!(ch[2]["kdf"], "pbkdf2");
    assert_eq!(ch[2]["salt"], b64.encode(&salt));
    // RFC 5802 AuthMessage, no channel binding ("biws" = base64 of "n,,").
    let auth_message = format!(
        "n=erin,r={client_nonce},r={nonce},s={},i={iterations},c=biws,r={nonce}",
        b64.encode(&salt)
    );
    let signature = hmac_raw(&stored_key, auth_message.as_bytes());
    let proof: Vec<u8> = client_key
        .iter()
        .zip(&signature)
        .map(|(a, b)| a ^ b)
        .collect();
    c.send(json!([5, b64.encode(&proof), {"nonce": nonce}]))
        .await;
    let welcome = c.recv().await;
    assert_eq!(welcome[0], 2, "{welcome}");
    assert_eq!(welcome[2]["authmethod"], "scram");
    assert_eq!(welcome[2]["authprovider"], "dynamic");
    let expected = b64.encode(hmac_raw(&server_key, auth_message.as_bytes()));
    assert_eq!(
        welcome[2]["authextra"]["scram_server_signature"], expected,
        "mutual authentication"
    );

    // A wrong proof is refused by the router.
    let mut c = hello(
        &srv,
        json!(["scram"]),
        "erin",
        json!({"nonce": client_nonce}),
    )
    .await;
    let (req, _) = invocation(&mut w).await;
    w.send(
        json!([70, req, {}, [{"role": "user", "kdf": "pbkdf2", "iterations": iterations,
        "salt": hex(&salt), "stored-key": hex(&stored_key), "server-key": hex(&server_key)}]]),
    )
    .await;
    c.recv().await;
    c.send(json!([5, b64.encode([0u8; 32]), {}])).await;
    c.expect_abort("wamp.error.not_authorized").await;
}

fn hex_bytes(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

#[tokio::test]
async fn hello_is_held_until_the_authenticator_registers() {
    let srv = server().await;
    let mut c = hello(&srv, json!(["wampcra"]), "alice", json!({})).await;
    // No ABORT while nobody serves the authenticator.
    c.expect_silence(Duration::from_millis(800)).await;
    let (mut w, _) = worker(&srv, "com.example.authenticate").await;
    let (req, _) = invocation(&mut w).await;
    w.send(json!([8, 68, req, {}, "com.example.no_such_user", []]))
        .await;
    c.expect_abort("com.example.no_such_user").await;
}

#[tokio::test]
async fn without_an_authenticator_the_transport_closes_without_abort() {
    let srv = server_with(Limits {
        hello_timeout: Duration::from_secs(2),
        ..Limits::default()
    })
    .await;
    let mut c = hello(&srv, json!(["wampcra"]), "alice", json!({})).await;
    match c.next_within(Duration::from_secs(5)).await {
        Err(Ended::Closed(Some((code, reason)))) => {
            assert_eq!(code, 1013, "try again later");
            assert!(reason.contains("com.example.authenticate"), "{reason}");
        }
        other => panic!("expected the transport to close without ABORT, got {other:?}"),
    }
}

/// A reviewer on /review and the worker serving the authorizer.
async fn reviewer_setup(srv: &TestServer) -> (Client, Client) {
    let (w, _) = worker(srv, "com.example.authorize").await;
    let r = at(srv, "review").await;
    (w, r)
}

#[tokio::test]
async fn authorizer_decides_and_its_cache_is_honoured() {
    let srv = server().await;
    let (mut w, mut r) = reviewer_setup(&srv).await;
    let req = r.request_id();
    r.send(json!([32, req, {}, "com.review.feed"])).await;
    let (inv, args) = invocation(&mut w).await;
    assert_eq!(args[0]["session"], r.session);
    assert_eq!(args[0]["authrole"], "reviewer");
    assert_eq!(args[1], "com.review.feed");
    assert_eq!(args[2], "subscribe");
    assert_eq!(args[3], json!({}));
    w.send(json!([70, inv, {}, [{"allow": true, "cache": true}]]))
        .await;
    let m = r.recv().await;
    assert_eq!((m[0].as_u64(), m[1].as_u64()), (Some(33), Some(req)), "{m}");

    // Cached: the same action on the same URI does not ask again.
    r.subscribe("com.review.feed", json!({})).await;
    w.expect_silence(Duration::from_millis(300)).await;

    // Not cached: a denial without cache is asked every time.
    for _ in 0..2 {
        let req = r.request_id();
        r.send(json!([48, req, {}, "com.review.secret", []])).await;
        let (inv, args) = invocation(&mut w).await;
        assert_eq!(args[2], "call");
        w.send(json!([70, inv, {}, [false]])).await;
        let m = r.recv().await;
        assert_eq!(m[0], 8, "{m}");
        assert_eq!(m[4], "wamp.error.not_authorized");
    }

    // Static rules still grant without asking.
    let req = r.request_id();
    r.send(json!([16, req, {"acknowledge": true}, "com.open.news", []]))
        .await;
    assert_eq!(r.recv().await[0], 17);

    // The authorizer's registration goes away: its cached decisions go with it.
    w.send(json!([2, {}, "wamp.close.normal"])).await;
    w.recv().await;
    let (mut w2, _) = worker(&srv, "com.example.authorize").await;
    let req = r.request_id();
    r.send(json!([32, req, {}, "com.review.feed"])).await;
    let (inv, _) = invocation(&mut w2).await;
    w2.send(json!([70, inv, {}, [true]])).await;
    assert_eq!(r.recv().await[0], 33);
}

#[tokio::test]
async fn messages_stay_in_order_while_the_authorizer_thinks() {
    let srv = server().await;
    let (mut w, mut r) = reviewer_setup(&srv).await;
    let sub = r.request_id();
    r.send(json!([32, sub, {}, "com.review.a"])).await;
    let publ = r.request_id();
    r.send(json!([16, publ, {"acknowledge": true}, "com.open.x", []]))
        .await;
    let (inv, _) = invocation(&mut w).await;
    // The PUBLISH behind the pending SUBSCRIBE waits for it.
    r.expect_silence(Duration::from_millis(300)).await;
    w.send(json!([70, inv, {}, [true]])).await;
    let first = r.recv().await;
    let second = r.recv().await;
    assert_eq!(
        (first[0].as_u64(), first[1].as_u64()),
        (Some(33), Some(sub))
    );
    assert_eq!(
        (second[0].as_u64(), second[1].as_u64()),
        (Some(17), Some(publ))
    );
}

#[tokio::test]
async fn failing_or_slow_authorizers_deny() {
    let srv = server().await;
    let (mut w, mut r) = reviewer_setup(&srv).await;
    // Garbage.
    let req = r.request_id();
    r.send(json!([64, req, {}, "com.review.proc"])).await;
    let (inv, args) = invocation(&mut w).await;
    assert_eq!(args[2], "register");
    w.send(json!([70, inv, {}, ["yes please"]])).await;
    let m = r.recv().await;
    assert_eq!(
        (m[0].as_u64(), m[4].as_str()),
        (Some(8), Some("wamp.error.authorization_failed")),
        "{m}"
    );
    // An error.
    let req = r.request_id();
    r.send(json!([32, req, {}, "com.review.b"])).await;
    let (inv, _) = invocation(&mut w).await;
    w.send(json!([8, 68, inv, {}, "com.example.oops", []]))
        .await;
    assert_eq!(r.recv().await[4], "wamp.error.authorization_failed");
    // Silence: denied after the auth timeout, and the session goes on.
    let req = r.request_id();
    let started = std::time::Instant::now();
    r.send(json!([32, req, {}, "com.review.c"])).await;
    let _ = invocation(&mut w).await;
    let m = r.recv().await;
    assert_eq!(
        (m[0].as_u64(), m[4].as_str()),
        (Some(8), Some("wamp.error.authorization_failed")),
        "{m}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "bounded by the auth timeout"
    );
    let req = r.request_id();
    r.send(json!([16, req, {"acknowledge": true}, "com.open.y", []]))
        .await;
    assert_eq!(r.recv().await[0], 17, "the session still works");
}

#[tokio::test]
async fn authorizer_disclosure_reaches_the_callee() {
    let srv = server().await;
    let (mut w, mut r) = reviewer_setup(&srv).await;
    let mut callee = at(&srv, "backend").await;
    callee.register("com.review.echo", json!({})).await;
    let req = r.request_id();
    r.send(json!([48, req, {}, "com.review.echo", ["hi"]]))
        .await;
    let (inv, _) = invocation(&mut w).await;
    w.send(json!([70, inv, {}, [{"allow": true, "disclose": true}]]))
        .await;
    let m = callee.recv().await;
    assert_eq!(m[0], 68, "{m}");
    assert_eq!(m[3]["caller"], r.session, "disclosed: {m}");
    assert_eq!(m[3]["caller_authrole"], "reviewer", "{m}");
}
