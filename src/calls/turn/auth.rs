//! TURN long-term credentials in the REST form, and stateless nonces.
//!
//! A username is `expiry:userid` (coturn also takes `userid:expiry`); its password is
//! `base64(HMAC-SHA1(secret, username))` ([`crate::calls::credentials`]). The key that signs
//! messages is MD5(`username:realm:password`) (RFC 8489 §9.2.2), built by `stun-types`.
//!
//! A nonce is `expiry` (16 hex digits) followed by the first 16 hex digits of
//! HMAC-SHA1(server key, expiry): the server keeps no nonce table, a nonce cannot be forged,
//! and one past its expiry answers 438 Stale Nonce.

use hmac::{Hmac, KeyInit, Mac};
use stun_types::message::{IntegrityAlgorithm, IntegrityKey, LongTermKeyCredentials};

pub struct Auth {
    secret: String,
    realm: String,
    nonce_key: [u8; 32],
    nonce_ttl: u64,
}

/// Why a username is refused before its integrity is checked.
#[derive(Debug, PartialEq, Eq)]
pub enum BadUser {
    /// Not `expiry:userid`.
    Form,
    /// The expiry is in the past.
    Expired,
}

impl Auth {
    pub fn new(secret: &str, realm: &str, nonce_ttl: u64) -> Auth {
        Auth {
            secret: secret.to_owned(),
            realm: realm.to_owned(),
            nonce_key: rand::random(),
            nonce_ttl,
        }
    }

    pub fn realm(&self) -> &str {
        &self.realm
    }

    fn mac(&self, expiry: u64) -> u64 {
        match <Hmac<sha1::Sha1> as KeyInit>::new_from_slice(&self.nonce_key) {
            Ok(mut m) => {
                m.update(&expiry.to_be_bytes());
                let out = m.finalize().into_bytes();
                let mut b = [0u8; 8];
                b.copy_from_slice(out.get(..8).unwrap_or(&[0u8; 8]));
                u64::from_be_bytes(b)
            }
            Err(_) => 0,
        }
    }

    /// A fresh nonce, valid for the configured time from `now` (Unix seconds).
    pub fn nonce(&self, now: u64) -> String {
        let expiry = now + self.nonce_ttl;
        format!("{expiry:016x}{:016x}", self.mac(expiry))
    }

    /// True if `nonce` is one of ours and has not expired.
    pub fn nonce_fresh(&self, nonce: &str, now: u64) -> bool {
        let (Some(e), Some(m)) = (nonce.get(..16), nonce.get(16..)) else {
            return false;
        };
        if nonce.len() != 32 {
            return false;
        }
        let (Ok(expiry), Ok(mac)) = (u64::from_str_radix(e, 16), u64::from_str_radix(m, 16)) else {
            return false;
        };
        let ok: bool = subtle::ConstantTimeEq::ct_eq(
            &mac.to_be_bytes()[..],
            &self.mac(expiry).to_be_bytes()[..],
        )
        .into();
        ok && expiry > now
    }

    /// The user id part of a REST username and the check of its expiry.
    pub fn check_username<'a>(&self, username: &'a str, now: u64) -> Result<&'a str, BadUser> {
        let (a, b) = username.split_once(':').ok_or(BadUser::Form)?;
        let digits =
            |s: &str| !s.is_empty() && s.len() <= 20 && s.bytes().all(|c| c.is_ascii_digit());
        let (expiry, user) = if digits(a) {
            (a, b)
        } else if digits(b) {
            (b, a)
        } else {
            return Err(BadUser::Form);
        };
        let expiry: u64 = expiry.parse().map_err(|_| BadUser::Form)?;
        if expiry < now {
            return Err(BadUser::Expired);
        }
        Ok(user)
    }

    /// The message-integrity key of `username` (whose password comes from the secret).
    pub fn key(&self, username: &str) -> IntegrityKey {
        let (_, password) = crate::calls::credentials::issue_for(&self.secret, username);
        LongTermKeyCredentials::new(username.to_owned(), password, self.realm.clone())
            .make_key(IntegrityAlgorithm::Sha1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nonces_are_ours_and_expire() {
        let a = Auth::new("s", "r", 600);
        let n = a.nonce(1000);
        assert_eq!(n.len(), 32);
        assert!(a.nonce_fresh(&n, 1000));
        assert!(a.nonce_fresh(&n, 1599));
        assert!(!a.nonce_fresh(&n, 1600), "expired");
        assert!(
            !Auth::new("s", "r", 600).nonce_fresh(&n, 1000),
            "another server key"
        );
        let mut forged = n.clone();
        forged.replace_range(0..16, &format!("{:016x}", 99_999u64));
        assert!(
            !a.nonce_fresh(&forged, 1000),
            "expiry changed: mac no longer matches"
        );
        for bad in [
            "",
            "x",
            "zz",
            &n[..31],
            &format!("{n}0"),
            "ééééééééééééééééé",
        ] {
            assert!(!a.nonce_fresh(bad, 1000), "{bad}");
        }
    }

    #[test]
    fn rest_usernames() {
        let a = Auth::new("s", "r", 600);
        assert_eq!(a.check_username("2000:alice", 1000), Ok("alice"));
        assert_eq!(a.check_username("alice:2000", 1000), Ok("alice"));
        assert_eq!(
            a.check_username("2000:visitor:abc", 1000),
            Ok("visitor:abc")
        );
        assert_eq!(a.check_username("999:alice", 1000), Err(BadUser::Expired));
        assert_eq!(a.check_username("alice", 1000), Err(BadUser::Form));
        assert_eq!(a.check_username("alice:bob", 1000), Err(BadUser::Form));
        assert_eq!(
            a.check_username("999999999999999999999999:x", 1000),
            Err(BadUser::Form)
        );
    }
}
