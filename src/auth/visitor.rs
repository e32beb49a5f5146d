//! Website visitors (the chat widget) authenticate with WAMP-Ticket, carrying one of:
//! - a **visitor token**: random text the widget made once and keeps in the browser (22–128
//!   characters of `A–Z a–z 0–9 - _`). The authid is derived from it (`visitor:` + 16 hex digits
//!   of its SHA-256), so a reload keeps the conversation and nobody can take over another
//!   visitor's threads without their token;
//! - a **JWT** the business's own web app signed for a logged-in user (HS256 with a shared
//!   secret, or EdDSA/Ed25519), verified here without a round trip: `sub` becomes the authid
//!   (`user:` + sub), `name` and `email` go into `authextra`; `exp` is required.

use super::cryptosign;
use crate::wamp::value::{Dict, Value};
use base64::Engine as _;
use sha2::Digest;

/// How visitors' tickets are checked on a transport.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VisitorAuth {
    pub role: String,
    /// HS256 shared secret for app-signed tokens.
    pub hs256: Option<crate::config::Secret>,
    /// Ed25519 public key for app-signed tokens.
    pub ed25519: Option<[u8; 32]>,
}

/// Who a ticket says the visitor is: (authid, authextra).
pub fn identify(cfg: &VisitorAuth, ticket: &str, now_s: u64) -> Result<(String, Dict), String> {
    if ticket.matches('.').count() == 2 {
        return jwt(cfg, ticket, now_s);
    }
    let ok_len = (22..=128).contains(&ticket.len());
    let ok_chars = ticket
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !ok_len || !ok_chars {
        return Err("a visitor token is 22 to 128 characters of A-Z, a-z, 0-9, '-' and '_'".into());
    }
    let digest = sha2::Sha256::digest(ticket.as_bytes());
    Ok((
        format!("visitor:{}", cryptosign::to_hex(&digest[..8])),
        Dict::new(),
    ))
}

fn b64(part: &str) -> Result<Vec<u8>, String> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part.trim_end_matches('='))
        .map_err(|_| "the token is not base64url".to_owned())
}

fn jwt(cfg: &VisitorAuth, token: &str, now_s: u64) -> Result<(String, Dict), String> {
    let mut parts = token.splitn(3, '.');
    let (Some(h), Some(c), Some(s)) = (parts.next(), parts.next(), parts.next()) else {
        return Err("malformed token".into());
    };
    let header: serde_json::Value =
        serde_json::from_slice(&b64(h)?).map_err(|_| "the token header is not JSON".to_owned())?;
    let signed = &token[..h.len() + 1 + c.len()];
    let sig = b64(s)?;
    match header.get("alg").and_then(|a| a.as_str()) {
        Some("HS256") => {
            use hmac::{Hmac, KeyInit, Mac};
            let secret = cfg
                .hs256
                .as_ref()
                .ok_or("HS256 tokens are not accepted on this transport")?;
            let mut mac = <Hmac<sha2::Sha256> as KeyInit>::new_from_slice(secret.0.as_bytes())
                .map_err(|_| "bad HS256 secret".to_owned())?;
            mac.update(signed.as_bytes());
            mac.verify_slice(&sig)
                .map_err(|_| "the token's signature is wrong".to_owned())?;
        }
        Some("EdDSA") => {
            let key = cfg
                .ed25519
                .ok_or("EdDSA tokens are not accepted on this transport")?;
            let vk = ed25519_dalek::VerifyingKey::from_bytes(&key)
                .map_err(|_| "bad Ed25519 key".to_owned())?;
            let sig = ed25519_dalek::Signature::from_slice(&sig)
                .map_err(|_| "the token's signature is malformed".to_owned())?;
            vk.verify_strict(signed.as_bytes(), &sig)
                .map_err(|_| "the token's signature is wrong".to_owned())?;
        }
        _ => return Err("only HS256 and EdDSA tokens are accepted".into()),
    }
    let claims: serde_json::Value =
        serde_json::from_slice(&b64(c)?).map_err(|_| "the token claims are not JSON".to_owned())?;
    let exp = claims
        .get("exp")
        .and_then(|e| e.as_u64())
        .ok_or("the token has no 'exp'")?;
    if exp <= now_s {
        return Err("the token has expired".into());
    }
    if let Some(nbf) = claims.get("nbf").and_then(|n| n.as_u64()) {
        if nbf > now_s + 60 {
            return Err("the token is not valid yet".into());
        }
    }
    let sub = claims
        .get("sub")
        .and_then(|s| s.as_str())
        .filter(|s| !s.is_empty() && s.len() <= 200)
        .ok_or("the token has no 'sub'")?;
    let mut extra = Dict::new();
    for key in ["name", "email"] {
        if let Some(v) = claims.get(key).and_then(|v| v.as_str()) {
            extra.push((key.into(), Value::Str(v.chars().take(200).collect())));
        }
    }
    Ok((format!("user:{sub}"), extra))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;

    fn cfg() -> VisitorAuth {
        VisitorAuth {
            role: "visitor".into(),
            hs256: Some(Secret("app-secret".into())),
            ed25519: None,
        }
    }

    /// A token made the way PyJWT makes one (checked against `jwt.encode` by hand).
    fn hs256(claims: &str, secret: &str) -> String {
        use hmac::{Hmac, KeyInit, Mac};
        let e = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
        let signed = format!(
            "{}.{}",
            e(br#"{"alg":"HS256","typ":"JWT"}"#),
            e(claims.as_bytes())
        );
        let mut mac = <Hmac<sha2::Sha256> as KeyInit>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(signed.as_bytes());
        format!("{signed}.{}", e(&mac.finalize().into_bytes()))
    }

    #[test]
    fn visitor_tokens_map_to_stable_ids() {
        let (a, _) = identify(&cfg(), "abcdefghijklmnopqrstuvwxyz012345", 0).unwrap();
        let (b, _) = identify(&cfg(), "abcdefghijklmnopqrstuvwxyz012345", 0).unwrap();
        let (c, _) = identify(&cfg(), "abcdefghijklmnopqrstuvwxyz012346", 0).unwrap();
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert!(a.starts_with("visitor:") && a.len() == 24);
        assert!(identify(&cfg(), "short", 0).is_err());
        assert!(identify(&cfg(), "<script>alert(1)</script>xxxxxxxx", 0).is_err());
    }

    #[test]
    fn hs256_tokens() {
        let t = hs256(r#"{"sub":"42","name":"Ann","exp":2000}"#, "app-secret");
        let (id, extra) = identify(&cfg(), &t, 1000).unwrap();
        assert_eq!(id, "user:42");
        assert_eq!(extra, vec![("name".to_owned(), Value::Str("Ann".into()))]);
        assert!(identify(&cfg(), &t, 3000).unwrap_err().contains("expired"));
        let forged = hs256(r#"{"sub":"42","exp":2000}"#, "guess");
        assert!(identify(&cfg(), &forged, 1000)
            .unwrap_err()
            .contains("signature"));
        let no_exp = hs256(r#"{"sub":"42"}"#, "app-secret");
        assert!(identify(&cfg(), &no_exp, 1000).is_err());
        let no_key = VisitorAuth {
            hs256: None,
            ..cfg()
        };
        assert!(identify(&no_key, &t, 1000).is_err());
        assert!(identify(&cfg(), "a.b.c", 1000).is_err());
    }

    #[test]
    fn eddsa_tokens() {
        use ed25519_dalek::Signer;
        let sk = ed25519_dalek::SigningKey::from_bytes(&[5; 32]);
        let e = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
        let signed = format!(
            "{}.{}",
            e(br#"{"alg":"EdDSA"}"#),
            e(br#"{"sub":"u1","exp":99}"#)
        );
        let t = format!("{signed}.{}", e(&sk.sign(signed.as_bytes()).to_bytes()));
        let c = VisitorAuth {
            hs256: None,
            ed25519: Some(sk.verifying_key().to_bytes()),
            ..cfg()
        };
        assert_eq!(identify(&c, &t, 1).unwrap().0, "user:u1");
        assert!(identify(&cfg(), &t, 1).is_err(), "no key configured");
    }
}
