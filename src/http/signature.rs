//! Signed HTTP bridge requests, as Crossbar's HTTP bridge defines them.
//!
//! The query carries `key`, `timestamp` (UTC `2011-10-14T16:59:51.123Z`), `seq` and `nonce`
//! (integers) and `signature` = URL-safe Base64 (with padding) of
//! `HMAC-SHA256(secret, key ‖ timestamp ‖ seq ‖ nonce ‖ body)` — the query values exactly as
//! sent (after URL decoding), concatenated without separators, then the raw body bytes.
//!
//! On top of Crossbar (which leaves seq and nonce unchecked), a valid signature is remembered
//! for as long as its timestamp is acceptable, so the same request replayed is refused.

use super::query;
use crate::config::BridgeKey;
use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use parking_lot::Mutex;
use sha2::Sha256;
use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime};
use subtle::ConstantTimeEq;

/// How long signatures are remembered when timestamps are not bounded (`timestamp_delta_limit`
/// 0): replays are refused for this long only.
const UNBOUNDED_MEMORY: Duration = Duration::from_secs(300);
/// Signatures remembered at most; when that many are live, signed requests are refused (503)
/// rather than forgetting one early.
const MAX_REMEMBERED: usize = 200_000;

/// Why a request's signature is not accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// A required query parameter is absent.
    Missing(&'static str),
    /// A parameter is present but malformed (400).
    Malformed(String),
    UnknownKey,
    /// The timestamp is further from the server's clock than allowed.
    Stale {
        delta_secs: u64,
        allowed_secs: u64,
    },
    BadSignature,
    Replayed,
    /// Too many signatures to remember.
    Busy,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::Missing(p) => write!(
                f,
                "signed request required: query parameter '{p}' is missing \
                 (key, timestamp, seq, nonce and signature are all needed)"
            ),
            Refusal::Malformed(why) => f.write_str(why),
            Refusal::UnknownKey => f.write_str("unknown key in signed request"),
            Refusal::Stale {
                delta_secs,
                allowed_secs,
            } => write!(
                f,
                "timestamp is {delta_secs} s away from the server's clock; at most \
                 {allowed_secs} s is allowed (check the client's clock and that the \
                 timestamp is UTC)"
            ),
            Refusal::BadSignature => f.write_str(
                "invalid signature: expected URL-safe Base64 of HMAC-SHA256(secret, \
                 key | timestamp | seq | nonce | body)",
            ),
            Refusal::Replayed => f.write_str(
                "replayed request: this signature was already used; \
                 sign each request anew (new nonce)",
            ),
            Refusal::Busy => {
                f.write_str("too many signed requests in the replay window; retry shortly")
            }
        }
    }
}

/// Checks signed requests for one bridge path and remembers the signatures it accepted.
pub struct Verifier {
    key: BridgeKey,
    window: Option<Duration>,
    seen: Mutex<Seen>,
}

#[derive(Default)]
struct Seen {
    until: HashMap<[u8; 32], Instant>,
    /// Forget expired entries once the map reaches this size (amortised pruning).
    prune_at: usize,
}

impl Verifier {
    pub fn new(key: BridgeKey, window: Option<Duration>) -> Verifier {
        Verifier {
            key,
            window,
            seen: Mutex::new(Seen::default()),
        }
    }

    /// Verifies the request's query parameters against `body` at wall-clock time `now`.
    pub fn check(&self, query: Option<&str>, body: &[u8], now: SystemTime) -> Result<(), Refusal> {
        let param = |name: &'static str| query::first(query, name).ok_or(Refusal::Missing(name));
        let key = param("key")?;
        let timestamp = param("timestamp")?;
        let seq = param("seq")?;
        let nonce = param("nonce")?;
        let signature = param("signature")?;
        for (name, v) in [("seq", &seq), ("nonce", &nonce)] {
            if !is_integer(v) {
                return Err(Refusal::Malformed(format!(
                    "invalid {name} '{}' (must be an integer)",
                    clip(v)
                )));
            }
        }
        let Some(at) = crate::clock::parse_utc(&timestamp) else {
            return Err(Refusal::Malformed(format!(
                "invalid timestamp '{}' (must be UTC ISO-8601, e.g. '2011-10-14T16:59:51.123Z')",
                clip(&timestamp)
            )));
        };
        if !bool::from(key.as_bytes().ct_eq(self.key.key.as_bytes())) {
            return Err(Refusal::UnknownKey);
        }
        let ahead = at.duration_since(now).ok();
        let delta = ahead.unwrap_or_else(|| now.duration_since(at).unwrap_or_default());
        if let Some(w) = self.window {
            if delta > w {
                return Err(Refusal::Stale {
                    delta_secs: delta.as_secs(),
                    allowed_secs: w.as_secs(),
                });
            }
        }
        let mac = compute(&self.key, &timestamp, &seq, &nonce, body);
        let given = decode_signature(&signature).ok_or(Refusal::BadSignature)?;
        if !bool::from(mac.as_slice().ct_eq(given.as_slice())) {
            return Err(Refusal::BadSignature);
        }
        // Remember it for as long as its timestamp would be accepted.
        let keep = match self.window {
            Some(w) => match ahead {
                Some(a) => w + a,
                None => w.saturating_sub(delta),
            },
            None => UNBOUNDED_MEMORY,
        };
        self.remember(mac, Instant::now() + keep)
    }

    fn remember(&self, mac: [u8; 32], until: Instant) -> Result<(), Refusal> {
        let now = Instant::now();
        let mut seen = self.seen.lock();
        if let Some(t) = seen.until.get(&mac) {
            if *t > now {
                return Err(Refusal::Replayed);
            }
        }
        if seen.until.len() >= seen.prune_at {
            seen.until.retain(|_, t| *t > now);
            seen.prune_at = (seen.until.len() * 2).clamp(1024, MAX_REMEMBERED);
            if seen.until.len() >= MAX_REMEMBERED {
                return Err(Refusal::Busy);
            }
        }
        seen.until.insert(mac, until);
        Ok(())
    }
}

/// HMAC-SHA256 over key ‖ timestamp ‖ seq ‖ nonce ‖ body with the secret.
pub fn compute(key: &BridgeKey, timestamp: &str, seq: &str, nonce: &str, body: &[u8]) -> [u8; 32] {
    let mut mac = match <Hmac<Sha256> as KeyInit>::new_from_slice(key.secret.0.as_bytes()) {
        Ok(m) => m,
        // HMAC takes keys of any length; this arm is unreachable in practice.
        Err(_) => return [0; 32],
    };
    for part in [
        key.key.as_bytes(),
        timestamp.as_bytes(),
        seq.as_bytes(),
        nonce.as_bytes(),
        body,
    ] {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

/// The signature as Crossbar writes it: URL-safe Base64 with padding.
pub fn encode_signature(mac: &[u8; 32]) -> String {
    base64::engine::general_purpose::URL_SAFE.encode(mac)
}

/// Accepts the URL-safe alphabet (Crossbar's) and the standard one, padded or not; a `+` that
/// arrived as a space (unescaped in a query string) counts as `+`.
fn decode_signature(s: &str) -> Option<Vec<u8>> {
    use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};
    let s = s.trim_end_matches('=');
    if s.contains(['+', '/', ' ']) {
        STANDARD_NO_PAD.decode(s.replace(' ', "+")).ok()
    } else {
        URL_SAFE_NO_PAD.decode(s).ok()
    }
}

/// An optionally signed decimal integer, as Python's `int()` reads it.
fn is_integer(s: &str) -> bool {
    let digits = s.strip_prefix(['-', '+']).unwrap_or(s);
    !digits.is_empty() && digits.len() <= 40 && digits.bytes().all(|c| c.is_ascii_digit())
}

/// At most 64 characters of a client-supplied value, for error messages.
fn clip(s: &str) -> &str {
    match s.char_indices().nth(64) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;

    fn key() -> BridgeKey {
        BridgeKey {
            key: "foobar".into(),
            secret: Secret("secret".into()),
        }
    }

    /// A vector computed independently with Python:
    /// `base64.urlsafe_b64encode(hmac.new(b"secret", b"foobar" + ts + b"1" + b"42" + body,
    /// hashlib.sha256).digest())`.
    const TS: &str = "2011-10-14T16:59:51.123Z";
    const BODY: &[u8] = br#"{"topic": "com.myapp.topic1", "args": ["Hello, world"]}"#;
    const PYTHON_SIGNATURE: &str = "ZkqV16te-xAVURooWTYDqMeLpwUt2Zip_kut-tVlhmM=";

    fn query(sig: &str, ts: &str) -> String {
        format!("key=foobar&timestamp={ts}&seq=1&nonce=42&signature={sig}")
    }

    fn at(ts: &str) -> SystemTime {
        crate::clock::parse_utc(ts).unwrap()
    }

    #[test]
    fn matches_crossbars_algorithm() {
        let mac = compute(&key(), TS, "1", "42", BODY);
        assert_eq!(encode_signature(&mac), PYTHON_SIGNATURE);
        let v = Verifier::new(key(), Some(Duration::from_secs(10)));
        let q = query(PYTHON_SIGNATURE, TS);
        assert_eq!(v.check(Some(&q), BODY, at(TS)), Ok(()));
        assert_eq!(
            v.check(Some(&q), BODY, at(TS)),
            Err(Refusal::Replayed),
            "the same request again"
        );
        // Another nonce is another request.
        let mac = compute(&key(), TS, "1", "43", BODY);
        let q = query(&encode_signature(&mac), TS).replace("nonce=42", "nonce=43");
        assert_eq!(v.check(Some(&q), BODY, at(TS)), Ok(()));
    }

    #[test]
    fn signature_encodings() {
        let mac = compute(&key(), TS, "1", "42", BODY);
        let url = encode_signature(&mac);
        let standard = base64::engine::general_purpose::STANDARD.encode(mac);
        for (i, form) in [
            url.clone(),
            url.trim_end_matches('=').to_owned(),
            url.replace('=', "%3D"),
            standard.replace('+', "%2B").replace('/', "%2F"),
        ]
        .iter()
        .enumerate()
        {
            let v = Verifier::new(key(), None);
            assert_eq!(
                v.check(Some(&query(form, TS)), BODY, at(TS)),
                Ok(()),
                "{i}: {form}"
            );
        }
    }

    #[test]
    fn refusals() {
        let v = Verifier::new(key(), Some(Duration::from_secs(10)));
        let now = at(TS);
        let good = encode_signature(&compute(&key(), TS, "1", "42", BODY));
        for missing in ["key", "timestamp", "seq", "nonce", "signature"] {
            let full = query(&good, TS);
            let q: Vec<&str> = full
                .split('&')
                .filter(|p| !p.starts_with(&format!("{missing}=")))
                .collect();
            assert_eq!(
                v.check(Some(&q.join("&")), BODY, now),
                Err(Refusal::Missing(missing))
            );
        }
        assert_eq!(v.check(None, BODY, now), Err(Refusal::Missing("key")));
        let q = query(&good, TS).replace("key=foobar", "key=other");
        assert_eq!(v.check(Some(&q), BODY, now), Err(Refusal::UnknownKey));
        let q = query(&good, TS).replace("seq=1", "seq=one");
        assert!(matches!(
            v.check(Some(&q), BODY, now),
            Err(Refusal::Malformed(_))
        ));
        let q = query(&good, "yesterday");
        assert!(matches!(
            v.check(Some(&q), BODY, now),
            Err(Refusal::Malformed(_))
        ));
        // Tampered body, wrong secret, garbage.
        assert_eq!(
            v.check(Some(&query(&good, TS)), b"{}", now),
            Err(Refusal::BadSignature)
        );
        let other = BridgeKey {
            key: "foobar".into(),
            secret: Secret("guess".into()),
        };
        let forged = encode_signature(&compute(&other, TS, "1", "42", BODY));
        assert_eq!(
            v.check(Some(&query(&forged, TS)), BODY, now),
            Err(Refusal::BadSignature)
        );
        assert_eq!(
            v.check(Some(&query("!!!", TS)), BODY, now),
            Err(Refusal::BadSignature)
        );
        // 11 s off either way with a 10 s window.
        for off in [Duration::from_secs(11)] {
            for t in [now + off, now - off] {
                assert_eq!(
                    v.check(Some(&query(&good, TS)), BODY, t),
                    Err(Refusal::Stale {
                        delta_secs: 11,
                        allowed_secs: 10
                    })
                );
            }
        }
        // Within the window it passes (once).
        assert_eq!(
            v.check(Some(&query(&good, TS)), BODY, now + Duration::from_secs(9)),
            Ok(())
        );
    }
}
