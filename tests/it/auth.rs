//! Static ticket and WAMP-CRA authentication from a Crossbar-style config, through real
//! sessions: CHALLENGE/AUTHENTICATE, both meanings of a salted WAMP-CRA secret, refusals.

use crate::support::*;
use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{json, Value};
use switchboard::config::{crossbar, Limits};

pub const AUTH_CONFIG: &str = r#"{
  "version": 2,
  "workers": [{
    "type": "router",
    "realms": [{"name": "realm1", "roles": [
      {"name": "user", "permissions": [{"uri": "com.app.*", "allow": {"call": true, "subscribe": true, "publish": true, "register": true}}]},
      {"name": "admin", "permissions": [{"uri": "*", "allow": {"call": true, "subscribe": true, "publish": true, "register": true}}]}
    ]}],
    "transports": [{
      "type": "web",
      "endpoint": {"type": "tcp", "port": 0, "interface": "127.0.0.1"},
      "paths": {"ws": {"type": "websocket", "auth": {
        "ticket": {"type": "static", "principals": {"joe": {"ticket": "joe-ticket", "role": "user"}, "ops": {"ticket": "ops-ticket", "role": "admin"}}},
        "wampcra": {"type": "static", "users": {
          "alice": {"secret": "alice-secret", "role": "admin"},
          "bob": {"secret": "secret123", "role": "user", "salt": "salt123", "iterations": 100, "keylen": 32},
          "carol": {"secret": "DpHHRlQ6UNULJlP9J8WkPw+BpAnaZaPUGEgt7sjxXgs=", "role": "user", "salt": "salt123", "iterations": 100, "keylen": 32},
          "dave": {"secret": "secret123", "role": "admin", "salt": "salt123", "iterations": 100, "keylen": 32}
        }},
        "cryptosign": {"type": "static", "principals": {
          "device1": {"role": "user", "authorized_keys": ["ea4a6c63e29c520abef5507b132ec5f9954776aebebe7b92421eea691446d22c"]},
          "kiosk": {"role": "admin", "realm": "other", "authorized_keys": ["fd1724385aa0c75b64fb78cd602fa1d991fdebf76b13c58ed702eac835e9f618"]}
        }}
      }}}
    }]
  }]
}"#;

async fn server() -> TestServer {
    let loaded =
        crossbar::parse(AUTH_CONFIG, false, "auth.json", Limits::default()).expect("config loads");
    TestServer::with(move |o| o.node = loaded.node).await
}

fn hmac_b64(key: &[u8], msg: &str) -> String {
    let mut m = <Hmac<sha2::Sha256> as KeyInit>::new_from_slice(key).expect("key");
    m.update(msg.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(m.finalize().into_bytes())
}

fn derive(secret: &str, salt: &str, iterations: u32, keylen: usize) -> String {
    let mut out = vec![0u8; keylen];
    pbkdf2::pbkdf2_hmac::<sha2::Sha256>(secret.as_bytes(), salt.as_bytes(), iterations, &mut out);
    base64::engine::general_purpose::STANDARD.encode(out)
}

async fn hello(srv: &TestServer, methods: Value, authid: &str) -> (Client, Value) {
    let mut c = srv.client(Ser::Json).await;
    c.send(
        json!([1, "realm1", {"authmethods": methods, "authid": authid, "roles": {"caller": {}}}]),
    )
    .await;
    let m = c.recv().await;
    (c, m)
}

#[tokio::test]
async fn ticket_authentication() {
    let srv = server().await;
    let (mut c, ch) = hello(&srv, json!(["ticket"]), "joe").await;
    assert_eq!(ch, json!([4, "ticket", {}]));
    c.send(json!([5, "joe-ticket", {}])).await;
    let w = c.recv().await;
    assert_eq!(w[0], 2, "{w}");
    assert_eq!(
        (
            w[2]["authid"].as_str(),
            w[2]["authrole"].as_str(),
            w[2]["authmethod"].as_str()
        ),
        (Some("joe"), Some("user"), Some("ticket"))
    );
    // The role's permissions apply.
    let (uri, _) = c
        .expect_error(json!([16, 1, {"acknowledge": true}, "org.other", []]))
        .await;
    assert_eq!(uri, "wamp.error.not_authorized");

    let (mut c, _) = hello(&srv, json!(["ticket"]), "joe").await;
    c.send(json!([5, "wrong", {}])).await;
    c.expect_abort("wamp.error.not_authorized").await;
    let (mut c, m) = hello(&srv, json!(["ticket"]), "nobody").await;
    assert_eq!(m[0], 3);
    assert_eq!(m[2], "wamp.error.no_such_principal");
    c.closed().await;
}

#[tokio::test]
async fn wampcra_unsalted_and_both_salted_meanings() {
    let srv = server().await;
    // (authid, key the client signs with)
    let salted_key = derive("secret123", "salt123", 100, 32);
    for (authid, key, role) in [
        ("alice", "alice-secret".to_owned(), "admin"),
        ("bob", salted_key.clone(), "user"),
        ("carol", salted_key, "user"),
    ] {
        let (mut c, ch) = hello(&srv, json!(["wampcra"]), authid).await;
        assert_eq!(ch[0], 4, "{ch}");
        assert_eq!(ch[1], "wampcra");
        let challenge = ch[2]["challenge"]
            .as_str()
            .expect("challenge string")
            .to_owned();
        let inner: Value = serde_json::from_str(&challenge).expect("challenge is JSON");
        assert_eq!(inner["authid"], authid);
        if authid != "alice" {
            assert_eq!(
                (
                    ch[2]["salt"].as_str(),
                    ch[2]["iterations"].as_u64(),
                    ch[2]["keylen"].as_u64()
                ),
                (Some("salt123"), Some(100), Some(32))
            );
        } else {
            assert!(ch[2].get("salt").is_none());
        }
        c.send(json!([5, hmac_b64(key.as_bytes(), &challenge), {}]))
            .await;
        let w = c.recv().await;
        assert_eq!(w[0], 2, "{authid}: {w}");
        assert_eq!(w[2]["authrole"], role);
        assert_eq!(w[2]["authmethod"], "wampcra");
    }
    // A wrong signature, or one for another challenge, is refused.
    let (mut c, ch) = hello(&srv, json!(["wampcra"]), "alice").await;
    let challenge = ch[2]["challenge"].as_str().unwrap_or("").to_owned();
    c.send(json!([5, hmac_b64(b"guess", &challenge), {}])).await;
    c.expect_abort("wamp.error.not_authorized").await;
}

#[tokio::test]
async fn method_order_and_protocol_errors() {
    let srv = server().await;
    // The client's order of preference decides; unsupported methods are skipped.
    let (_c, ch) = hello(&srv, json!(["cryptosign", "wampcra", "ticket"]), "alice").await;
    assert_eq!(ch[1], "wampcra");
    let (_c, ch) = hello(&srv, json!(["ticket", "wampcra"]), "joe").await;
    assert_eq!(ch[1], "ticket");
    // No anonymous on this transport.
    let mut c = srv.client(Ser::Json).await;
    c.send(json!([1, "realm1", {}])).await;
    c.expect_abort("wamp.error.no_auth_method").await;
    // Anything but AUTHENTICATE while challenged, and AUTHENTICATE unasked, are violations.
    let (mut c, _) = hello(&srv, json!(["ticket"]), "joe").await;
    c.send(json!([32, 1, {}, "com.app.x"])).await;
    c.expect_abort("wamp.error.protocol_violation").await;
    let mut c = srv.client(Ser::Json).await;
    c.send(json!([5, "sig", {}])).await;
    c.expect_abort("wamp.error.protocol_violation").await;
    // Oversized or odd signatures are just wrong.
    let (mut c, _) = hello(&srv, json!(["wampcra"]), "alice").await;
    c.send(json!([5, "x".repeat(100_000), {}])).await;
    c.expect_abort("wamp.error.not_authorized").await;
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[tokio::test]
async fn cryptosign_authentication() {
    use ed25519_dalek::{Signer, SigningKey};
    let srv = server().await;
    let sk = SigningKey::from_bytes(&[7u8; 32]);
    let pk = hex(&sk.verifying_key().to_bytes());
    for authid in [Some("device1"), None] {
        let mut c = srv.client(Ser::Json).await;
        let mut details = json!({"authmethods": ["cryptosign"], "authextra": {"pubkey": pk}});
        if let Some(id) = authid {
            details["authid"] = json!(id);
        }
        c.send(json!([1, "realm1", details])).await;
        let ch = c.recv().await;
        assert_eq!(ch[1], "cryptosign", "{ch}");
        let challenge: Vec<u8> = (0..64)
            .step_by(2)
            .map(|i| {
                u8::from_str_radix(&ch[2]["challenge"].as_str().unwrap_or("")[i..i + 2], 16)
                    .unwrap_or(0)
            })
            .collect();
        assert_eq!(challenge.len(), 32);
        let mut signed = sk.sign(&challenge).to_bytes().to_vec();
        signed.extend_from_slice(&challenge);
        c.send(json!([5, hex(&signed), {}])).await;
        let w = c.recv().await;
        assert_eq!(w[0], 2, "{w}");
        assert_eq!(
            (w[2]["authid"].as_str(), w[2]["authmethod"].as_str()),
            (Some("device1"), Some("cryptosign")),
            "found by authid or by key"
        );
    }
    // Another key for device1, a signature by the wrong key, a principal bound to another realm.
    let other = SigningKey::from_bytes(&[9u8; 32]);
    let mut c = srv.client(Ser::Json).await;
    c.send(json!([1, "realm1", {"authmethods": ["cryptosign"], "authid": "device1", "authextra": {"pubkey": hex(&other.verifying_key().to_bytes())}}])).await;
    c.expect_abort("wamp.error.not_authorized").await;
    let mut c = srv.client(Ser::Json).await;
    c.send(json!([1, "realm1", {"authmethods": ["cryptosign"], "authid": "device1", "authextra": {"pubkey": pk}}])).await;
    let ch = c.recv().await;
    let challenge: Vec<u8> = (0..64)
        .step_by(2)
        .map(|i| {
            u8::from_str_radix(&ch[2]["challenge"].as_str().unwrap_or("")[i..i + 2], 16)
                .unwrap_or(0)
        })
        .collect();
    c.send(json!([5, hex(&other.sign(&challenge).to_bytes()), {}]))
        .await;
    c.expect_abort("wamp.error.not_authorized").await;
    let mut c = srv.client(Ser::Json).await;
    c.send(json!([1, "realm1", {"authmethods": ["cryptosign"], "authid": "kiosk", "authextra": {"pubkey": hex(&other.verifying_key().to_bytes())}}])).await;
    c.expect_abort("wamp.error.not_authorized").await;
    let mut c = srv.client(Ser::Json).await;
    c.send(json!([1, "realm1", {"authmethods": ["cryptosign"], "authid": "device1"}]))
        .await;
    let a = c.expect_abort("wamp.error.no_auth_method").await;
    assert!(
        a[1]["message"]
            .as_str()
            .unwrap_or("")
            .contains("authextra.pubkey"),
        "{a}"
    );
}

#[tokio::test]
async fn repeated_failures_lock_the_authid_out_for_a_while() {
    let srv = server().await;
    for _ in 0..5 {
        let (mut c, ch) = hello(&srv, json!(["ticket"]), "joe").await;
        assert_eq!(ch[0], 4);
        c.send(json!([5, "guess", {}])).await;
        c.expect_abort("wamp.error.not_authorized").await;
    }
    // Now even the right ticket is refused, without a challenge, for this authid only.
    let (mut c, m) = hello(&srv, json!(["ticket"]), "joe").await;
    assert_eq!(m[0], 3, "{m}");
    assert_eq!(m[2], "wamp.error.not_authorized");
    assert!(
        m[1]["message"]
            .as_str()
            .unwrap_or("")
            .contains("too many failed"),
        "{m}"
    );
    c.closed().await;
    let (mut c, ch) = hello(&srv, json!(["ticket"]), "ops").await;
    assert_eq!(ch[0], 4, "other principals are unaffected");
    c.send(json!([5, "ops-ticket", {}])).await;
    assert_eq!(c.recv().await[0], 2);
}

#[tokio::test]
async fn malformed_authenticate_is_a_clear_refusal() {
    let srv = server().await;
    // Truncated or mistyped AUTHENTICATE: a protocol violation, with the reason.
    for bad in [json!([5]), json!([5, 42, {}]), json!([5, "sig", []])] {
        let (mut c, _) = hello(&srv, json!(["ticket"]), "joe").await;
        c.send(bad.clone()).await;
        let a = c.expect_abort("wamp.error.protocol_violation").await;
        assert!(a[1]["message"].as_str().is_some(), "{bad}: {a}");
    }
    // Cryptosign signatures of the wrong length, odd hex, not hex: wrong, not a crash.
    let pk = hex(&ed25519_dalek::SigningKey::from_bytes(&[7u8; 32])
        .verifying_key()
        .to_bytes());
    for sig in [
        "ab".repeat(63),
        "abc".into(),
        "zz".repeat(64),
        String::new(),
    ] {
        let mut c = srv.client(Ser::Json).await;
        c.send(json!([1, "realm1", {"authmethods": ["cryptosign"], "authid": "device1", "authextra": {"pubkey": pk}}]))
            .await;
        assert_eq!(c.recv().await[0], 4);
        c.send(json!([5, sig, {}])).await;
        c.expect_abort("wamp.error.not_authorized").await;
    }
    // An AUTHENTICATE larger than the message limit closes the connection (1009), nothing else.
    let (mut c, _) = hello(&srv, json!(["ticket"]), "joe").await;
    c.send(json!([5, "t".repeat(2 << 20), {}])).await;
    let closed = c.closed().await;
    assert_eq!(close_code_of(&closed), 1009, "{closed:?}");
    // The server is fine afterwards.
    let (mut c, _) = hello(&srv, json!(["ticket"]), "joe").await;
    c.send(json!([5, "joe-ticket", {}])).await;
    assert_eq!(c.recv().await[0], 2);
}
