//! WAMP-Cryptosign: Ed25519 challenge-response. The router sends 32 random bytes (hex); the
//! client signs them with its private key and answers with the signature — Autobahn sends the
//! 64-byte signature followed by the 32 signed bytes, both accepted. No channel binding.

use ed25519_dalek::{Signature, VerifyingKey};
use rand::Rng;

/// Decodes hex (either case); `None` if malformed.
pub fn from_hex(s: &str) -> Option<Vec<u8>> {
    let s = s.trim();
    if s.len() % 2 != 0 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| s.get(i..i + 2).and_then(|h| u8::from_str_radix(h, 16).ok()))
        .collect()
}

pub fn to_hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// A 32-byte Ed25519 public key from 64 hex digits.
pub fn parse_key(hex: &str) -> Option<[u8; 32]> {
    from_hex(hex)?.try_into().ok()
}

/// A fresh challenge.
pub fn challenge() -> [u8; 32] {
    rand::rng().random()
}

/// Whether `signature_hex` is `pubkey`'s signature of `challenge`.
pub fn verify(pubkey: &[u8; 32], challenge: &[u8; 32], signature_hex: &str) -> bool {
    let Some(bytes) = from_hex(signature_hex) else {
        return false;
    };
    let sig: [u8; 64] = match bytes.len() {
        64 => match bytes.try_into() {
            Ok(s) => s,
            Err(_) => return false,
        },
        96 if bytes[64..] == challenge[..] => match bytes[..64].try_into() {
            Ok(s) => s,
            Err(_) => return false,
        },
        _ => return false,
    };
    let Ok(key) = VerifyingKey::from_bytes(pubkey) else {
        return false;
    };
    key.verify_strict(challenge, &Signature::from_bytes(&sig))
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::{Signer, SigningKey};

    #[test]
    fn signatures_verify_in_both_forms_and_nothing_else_does() {
        let sk = SigningKey::from_bytes(&[7u8; 32]);
        let pk = sk.verifying_key().to_bytes();
        let ch = challenge();
        let sig = sk.sign(&ch).to_bytes();
        assert!(verify(&pk, &ch, &to_hex(&sig)));
        let mut with_msg = sig.to_vec();
        with_msg.extend_from_slice(&ch);
        assert!(verify(&pk, &ch, &to_hex(&with_msg).to_uppercase()));
        let other = challenge();
        assert!(!verify(&pk, &other, &to_hex(&sig)), "another challenge");
        let mut bad = sig;
        bad[0] ^= 1;
        assert!(!verify(&pk, &ch, &to_hex(&bad)));
        assert!(!verify(&pk, &ch, "zz"));
        assert!(!verify(&pk, &ch, &"ab".repeat(63)), "wrong length");
        assert!(!verify(&[0u8; 32], &ch, &to_hex(&sig)), "wrong key");
        assert_eq!(parse_key(&to_hex(&pk)), Some(pk));
        assert_eq!(parse_key("abc"), None);
    }
}
