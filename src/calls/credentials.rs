//! TURN REST credentials: username `expiry:userid` (Unix seconds), password
//! base64(HMAC-SHA1(secret, username)) — what coturn checks with `use-auth-secret` and
//! `static-auth-secret`, so a deployment can point browsers at an external coturn instead.

use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};

/// (username, password) valid until `expiry` (Unix seconds) for `userid`.
pub fn issue(secret: &str, userid: &str, expiry: u64) -> (String, String) {
    issue_for(secret, &format!("{expiry}:{userid}"))
}

/// (username, password) for a username already in the REST form: what the TURN relay
/// computes to check a request.
pub fn issue_for(secret: &str, username: &str) -> (String, String) {
    let username = username.to_owned();
    let password = match <Hmac<sha1::Sha1> as KeyInit>::new_from_slice(secret.as_bytes()) {
        Ok(mut mac) => {
            mac.update(username.as_bytes());
            base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
        }
        // HMAC accepts keys of any length.
        Err(_) => String::new(),
    };
    (username, password)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_rest_form() {
        // Computed with Python: base64(hmac.new(b"turn-secret", b"1800000000:visitor:abc",
        // hashlib.sha1).digest()).
        assert_eq!(
            issue("turn-secret", "visitor:abc", 1_800_000_000),
            (
                "1800000000:visitor:abc".to_owned(),
                "0gPx+yYLIZTwlc6wOR6ZGOlDo7s=".to_owned()
            )
        );
    }
}
