//! WAMP-CRA (challenge-response): the challenge string, key derivation (PBKDF2-HMAC-SHA256,
//! as Autobahn's `derive_key`: base64 of the derived bytes is the HMAC key) and signature
//! checks in constant time.
//!
//! A salted `secret` in a config means one of two things depending on the router it was written
//! for: Crossbar ≥ 25.12 treats it as the password and derives the key; older Crossbar, Nexus
//! and Thruway treat it as the already derived key. Both are accepted.

use super::Principal;
use crate::config::CraUser;
use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use rand::Rng;
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// base64(PBKDF2-HMAC-SHA256(secret, salt, iterations, keylen)).
pub fn derive_key(secret: &str, salt: &str, iterations: u32, keylen: u32) -> String {
    let mut out = vec![0u8; keylen as usize];
    pbkdf2::pbkdf2_hmac::<Sha256>(secret.as_bytes(), salt.as_bytes(), iterations, &mut out);
    base64::engine::general_purpose::STANDARD.encode(out)
}

/// base64(HMAC-SHA256(key, challenge)).
pub fn sign(key: &[u8], challenge: &str) -> String {
    let mut mac = match <Hmac<Sha256> as KeyInit>::new_from_slice(key) {
        Ok(m) => m,
        // HMAC takes keys of any length; this branch cannot be reached.
        Err(_) => return String::new(),
    };
    mac.update(challenge.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// The HMAC keys a correct client may have used for `user`.
pub fn candidate_keys(user: &CraUser) -> Vec<Vec<u8>> {
    let secret = user.secret.0.as_bytes().to_vec();
    match &user.salt {
        None => vec![secret],
        Some(s) => vec![
            derive_key(&user.secret.0, &s.salt, s.iterations, s.keylen).into_bytes(),
            secret,
        ],
    }
}

/// The challenge string: a JSON object naming the principal, with a fresh nonce and time.
pub fn challenge(p: &Principal) -> String {
    let nonce: [u8; 16] = rand::rng().random();
    serde_json::json!({
        "authid": p.authid,
        "authrole": p.authrole,
        "authmethod": "wampcra",
        "authprovider": p.authprovider,
        "nonce": base64::engine::general_purpose::STANDARD.encode(nonce),
        "timestamp": crate::clock::rfc3339(std::time::SystemTime::now()),
    })
    .to_string()
}

/// Whether `signature` is the challenge signed with one of `keys` (constant time per key).
pub fn verify(keys: &[Vec<u8>], challenge: &str, signature: &str) -> bool {
    let mut ok = 0u8;
    for k in keys {
        let expected = sign(k, challenge);
        ok |= expected
            .as_bytes()
            .ct_eq(signature.trim().as_bytes())
            .unwrap_u8();
    }
    ok == 1
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{CraSalt, Secret};

    // Vectors computed independently with Python's hashlib/hmac.
    const CHALLENGE: &str = r#"{"authid":"joe","nonce":"abc"}"#;

    #[test]
    fn matches_independent_vectors() {
        assert_eq!(
            derive_key("secret123", "salt123", 100, 32),
            "DpHHRlQ6UNULJlP9J8WkPw+BpAnaZaPUGEgt7sjxXgs="
        );
        assert_eq!(
            sign(b"secret123", CHALLENGE),
            "rpLUMcctc5i/zqGRvKvpQdyJN5MSrPGNro3vDuz2yFo="
        );
        assert_eq!(
            sign(b"DpHHRlQ6UNULJlP9J8WkPw+BpAnaZaPUGEgt7sjxXgs=", CHALLENGE),
            "79X5ssh/vmJNmnYhfodJ7qHlH8H6wikM8cBZnGFFYwQ="
        );
    }

    #[test]
    fn both_meanings_of_a_salted_secret_verify() {
        let salt = Some(CraSalt {
            salt: "salt123".into(),
            iterations: 100,
            keylen: 32,
        });
        // Secret as the password (Crossbar ≥ 25.12): the client derived the key from it.
        let as_password = CraUser {
            secret: Secret("secret123".into()),
            role: "r".into(),
            salt: salt.clone(),
        };
        assert!(verify(
            &candidate_keys(&as_password),
            CHALLENGE,
            "79X5ssh/vmJNmnYhfodJ7qHlH8H6wikM8cBZnGFFYwQ="
        ));
        // Secret as the derived key (older Crossbar, Nexus, Thruway).
        let as_key = CraUser {
            secret: Secret("DpHHRlQ6UNULJlP9J8WkPw+BpAnaZaPUGEgt7sjxXgs=".into()),
            role: "r".into(),
            salt,
        };
        assert!(verify(
            &candidate_keys(&as_key),
            CHALLENGE,
            "79X5ssh/vmJNmnYhfodJ7qHlH8H6wikM8cBZnGFFYwQ="
        ));
        let plain = CraUser {
            secret: Secret("secret123".into()),
            role: "r".into(),
            salt: None,
        };
        assert!(verify(
            &candidate_keys(&plain),
            CHALLENGE,
            "rpLUMcctc5i/zqGRvKvpQdyJN5MSrPGNro3vDuz2yFo="
        ));
        assert!(!verify(
            &candidate_keys(&plain),
            CHALLENGE,
            "79X5ssh/vmJNmnYhfodJ7qHlH8H6wikM8cBZnGFFYwQ="
        ));
        assert!(!verify(&candidate_keys(&plain), CHALLENGE, ""));
        assert!(!verify(
            &candidate_keys(&plain),
            CHALLENGE,
            &"A".repeat(10_000)
        ));
    }

    #[test]
    fn challenges_are_fresh_json() {
        let p = Principal {
            authid: "joe".into(),
            authrole: "r".into(),
            authmethod: "wampcra".into(),
            authprovider: "static".into(),
            authextra: Vec::new(),
        };
        let a = challenge(&p);
        let v: serde_json::Value = serde_json::from_str(&a).unwrap();
        assert_eq!(v["authid"], "joe");
        assert_eq!(v["authmethod"], "wampcra");
        assert_ne!(a, challenge(&p), "nonce differs");
    }
}
