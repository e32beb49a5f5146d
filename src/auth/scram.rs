//! WAMP-SCRAM (authmethod `"scram"`): the router's side of the Salted Challenge Response
//! Authentication Mechanism of the WAMP Advanced Profile, SHA-256 based (RFC 5802 / RFC 7677),
//! with Argon2id 1.3 or PBKDF2-HMAC-SHA256 as the key derivation function.
//!
//! The router never sees the password: it keeps a [`Credential`] (salt, KDF parameters,
//! `StoredKey`, `ServerKey`) and checks the client's proof against it.
//!
//! ```text
//! HELLO        Details.authmethods ["scram"], authid, authextra {nonce, channel_binding?}
//! CHALLENGE    "scram", {nonce: client nonce + server nonce, salt (base64), kdf, iterations,
//!              memory (argon2 only)}
//! AUTHENTICATE base64(ClientProof), Extra {nonce?, channel_binding?, cbind_data?}
//! WELCOME      Details.authextra {scram_server_signature: base64(ServerSignature)}
//! ```
//!
//! Where the WAMP spec and the implementations people run disagree, this module follows
//! Autobahn|Python's `AuthScram` (the one client that speaks SCRAM to Crossbar) and accepts what
//! the spec says as well:
//!
//! * authmethod `"scram"` (Crossbar and Autobahn; the spec text says `"wamp-scram"`).
//! * The KDF is announced as `"argon2id-13"`, the only spelling Autobahn accepts; configs may
//!   say `"argon2id-13"` (Crossbar) or `"argon2id13"` (spec).
//! * For Argon2, `SaltedPassword` is the *unpadded base64 text* of the 32-byte Argon2id output
//!   (Autobahn takes it from the `$argon2id$…$salt$hash` string), so credentials made by
//!   Autobahn's `derive_scram_credential` and Crossbar configs work unchanged. For PBKDF2 it is
//!   the 32 raw bytes, salt base64-decoded, as the spec says (Autobahn|Python 26.10's PBKDF2
//!   branch fails before computing anything; Connectanum computes it this way).
//! * The proof is accepted over either form of `AuthMessage`: Autobahn/Crossbar's
//!   (`n=<authid>,…,c=,r=…`: unescaped authid, empty channel-binding field) or the spec's
//!   (`n=<Escape(authid)>,…,c=biws,r=…`, exactly RFC 5802, so RFC 7677's vector verifies).
//!   The server signature is computed over the form the proof matched.
//! * `channel_binding` is left out of the CHALLENGE when null: Autobahn would otherwise put
//!   the text `None` into its `AuthMessage`. `memory` is left out for PBKDF2 (Autobahn fails
//!   on a null memory).
//! * The server nonce is appended to the client nonce as text, as the spec's example shows
//!   (so clients that check the prefix, like Connectanum, accept it).
//!
//! The password is used as its UTF-8 bytes, not SASLprep-normalized: Autobahn and Crossbar's
//! tooling don't normalize it, and the stored keys must match what they derive. The authid is
//! SASLprep-normalized (RFC 4013) as both sides do.
//!
//! No channel binding is offered: a HELLO asking for one is refused with a clear message.

use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use rand::Rng;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::wamp::value::{dict_get, Dict, Value};

/// The authmethod string in HELLO, CHALLENGE and WELCOME.
pub const AUTHMETHOD: &str = "scram";

/// Argon2id time cost for new credentials. OWASP's password-storage recommendation
/// (m = 19 MiB, t = 2, p = 1): memory-hard and about 50 ms on a client. Crossbar's tooling
/// (`autobahn.wamp.auth.derive_scram_credential`) uses t = 4096, m = 512 KiB, which costs about
/// a second on every login (Autobahn recomputes the KDF each time) while being barely
/// memory-hard; credentials with those parameters are of course accepted.
pub const DEFAULT_ARGON2_ITERATIONS: u32 = 2;
/// Argon2id memory cost for new credentials, KiB (19 MiB).
pub const DEFAULT_ARGON2_MEMORY_KIB: u32 = 19 * 1024;
/// PBKDF2-HMAC-SHA256 iterations for new credentials. RFC 7677 asks for at least 4096; OWASP's
/// 600 000 assumes native code on a server, but here every login pays it on the client, often
/// in a pure-language implementation.
pub const DEFAULT_PBKDF2_ITERATIONS: u32 = 100_000;

/// Bounds on parameters from a config or a dynamic authenticator. The router itself never runs
/// the KDF while authenticating; these keep a typo from making every client (or
/// [`Credential::derive_with`]) burn gigabytes or hours.
pub const MAX_ARGON2_MEMORY_KIB: u32 = 1024 * 1024;
/// Argon2's own minimum (8 blocks of 1 KiB at parallelism 1).
pub const MIN_ARGON2_MEMORY_KIB: u32 = 8;
pub const MAX_ARGON2_ITERATIONS: u32 = 100_000;
pub const MAX_PBKDF2_ITERATIONS: u32 = 10_000_000;
/// Salt length bounds in bytes (Argon2 requires at least 8).
pub const MIN_SALT_LEN: usize = 8;
pub const MAX_SALT_LEN: usize = 1024;
/// Salt length of new credentials.
const NEW_SALT_LEN: usize = 16;
/// Longest client nonce accepted, in characters (a 16-byte nonce is 24).
const MAX_NONCE_LEN: usize = 256;
/// Longest authid that goes into an `AuthMessage`, in bytes.
const MAX_AUTHID_LEN: usize = 1024;

/// The key derivation function that turns a password into `SaltedPassword`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Kdf {
    /// Argon2id, version 1.3 (0x13), parallelism 1, 32-byte output.
    Argon2id13,
    /// PBKDF2 with HMAC-SHA256, 32-byte output.
    Pbkdf2,
}

impl Kdf {
    /// The name sent in `CHALLENGE.Details.kdf` (Autobahn's spelling).
    pub fn wire_name(self) -> &'static str {
        match self {
            Kdf::Argon2id13 => "argon2id-13",
            Kdf::Pbkdf2 => "pbkdf2",
        }
    }

    /// Parses a config's `kdf`: `argon2id-13` (Crossbar, Autobahn), `argon2id13` (WAMP spec)
    /// or `pbkdf2`.
    pub fn parse(name: &str) -> Option<Kdf> {
        match name {
            "argon2id-13" | "argon2id13" => Some(Kdf::Argon2id13),
            "pbkdf2" => Some(Kdf::Pbkdf2),
            _ => None,
        }
    }
}

/// What the router stores for a SCRAM principal. Equality is not constant-time; don't use it
/// to check anything a peer sent.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Credential {
    pub kdf: Kdf,
    pub iterations: u32,
    /// Argon2 memory cost in KiB; 0 for PBKDF2.
    pub memory: u32,
    pub salt: Vec<u8>,
    pub stored_key: [u8; 32],
    pub server_key: [u8; 32],
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credential")
            .field("kdf", &self.kdf)
            .field("iterations", &self.iterations)
            .field("memory", &self.memory)
            .field("salt", &format_args!("<{} bytes>", self.salt.len()))
            .field("stored_key", &format_args!("<redacted>"))
            .field("server_key", &format_args!("<redacted>"))
            .finish()
    }
}

type HmacSha256 = Hmac<Sha256>;

fn hmac_sha256(key: &[u8], data: &[u8]) -> [u8; 32] {
    let mut mac = match <HmacSha256 as KeyInit>::new_from_slice(key) {
        Ok(m) => m,
        // HMAC takes keys of any length; this branch cannot be reached.
        Err(_) => return [0; 32],
    };
    mac.update(data);
    mac.finalize().into_bytes().into()
}

fn sha256(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

/// Checks KDF parameters against the bounds above; returns the memory to store.
fn check_params(kdf: Kdf, iterations: u64, memory: Option<u64>) -> Result<(u32, u32), String> {
    match kdf {
        Kdf::Argon2id13 => {
            if iterations == 0 || iterations > u64::from(MAX_ARGON2_ITERATIONS) {
                return Err(format!(
                    "scram: argon2 iterations must be 1..={MAX_ARGON2_ITERATIONS}, got {iterations}"
                ));
            }
            let memory = memory.ok_or_else(|| {
                "scram: an argon2id-13 credential needs 'memory' (KiB)".to_owned()
            })?;
            if memory < u64::from(MIN_ARGON2_MEMORY_KIB)
                || memory > u64::from(MAX_ARGON2_MEMORY_KIB)
            {
                return Err(format!(
                    "scram: argon2 memory must be {MIN_ARGON2_MEMORY_KIB}..={MAX_ARGON2_MEMORY_KIB} KiB, got {memory}"
                ));
            }
            Ok((iterations as u32, memory as u32))
        }
        Kdf::Pbkdf2 => {
            if iterations == 0 || iterations > u64::from(MAX_PBKDF2_ITERATIONS) {
                return Err(format!(
                    "scram: pbkdf2 iterations must be 1..={MAX_PBKDF2_ITERATIONS}, got {iterations}"
                ));
            }
            Ok((iterations as u32, 0))
        }
    }
}

fn check_salt(salt: &[u8]) -> Result<(), String> {
    if salt.len() < MIN_SALT_LEN || salt.len() > MAX_SALT_LEN {
        return Err(format!(
            "scram: salt must be {MIN_SALT_LEN}..={MAX_SALT_LEN} bytes, got {}",
            salt.len()
        ));
    }
    Ok(())
}

/// `SaltedPassword` as the client computes it (see the module docs for the Argon2 form).
fn salted_password(
    password: &[u8],
    kdf: Kdf,
    salt: &[u8],
    iterations: u32,
    memory: u32,
) -> Result<Vec<u8>, String> {
    let mut raw = [0u8; 32];
    match kdf {
        Kdf::Argon2id13 => {
            let params = argon2::Params::new(memory, iterations, 1, Some(32))
                .map_err(|e| format!("scram: argon2 parameters: {e}"))?;
            argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params)
                .hash_password_into(password, salt, &mut raw)
                .map_err(|e| format!("scram: argon2: {e}"))?;
            Ok(STANDARD_NO_PAD.encode(raw).into_bytes())
        }
        Kdf::Pbkdf2 => {
            pbkdf2::pbkdf2_hmac::<Sha256>(password, salt, iterations, &mut raw);
            Ok(raw.to_vec())
        }
    }
}

fn decode_hex32(field: &str, text: &str) -> Result<[u8; 32], String> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(text.trim(), &mut out)
        .map_err(|_| format!("scram: '{field}' must be 64 hex digits (32 bytes)"))?;
    Ok(out)
}

impl Credential {
    /// Derives a credential from a password with a fresh random 16-byte salt and this module's
    /// default parameters for `kdf` (see [`DEFAULT_ARGON2_ITERATIONS`] and friends).
    ///
    /// Cannot fail for any password shorter than 4 GiB; for one longer than Argon2 accepts it
    /// fails closed, returning a credential that no password matches.
    pub fn derive(password: &str, kdf: Kdf) -> Credential {
        let salt: [u8; NEW_SALT_LEN] = rand::rng().random();
        let (iterations, memory) = match kdf {
            Kdf::Argon2id13 => (DEFAULT_ARGON2_ITERATIONS, DEFAULT_ARGON2_MEMORY_KIB),
            Kdf::Pbkdf2 => (DEFAULT_PBKDF2_ITERATIONS, 0),
        };
        match Credential::derive_with(password, kdf, &salt, iterations, memory) {
            Ok(c) => c,
            Err(_) => Credential {
                kdf,
                iterations,
                memory,
                salt: salt.to_vec(),
                stored_key: rand::rng().random(),
                server_key: rand::rng().random(),
            },
        }
    }

    /// Derives a credential with explicit salt and parameters (bounded as for a config;
    /// `memory` is ignored for PBKDF2).
    pub fn derive_with(
        password: &str,
        kdf: Kdf,
        salt: &[u8],
        iterations: u32,
        memory: u32,
    ) -> Result<Credential, String> {
        let (iterations, memory) =
            check_params(kdf, u64::from(iterations), Some(u64::from(memory)))?;
        check_salt(salt)?;
        let salted = salted_password(password.as_bytes(), kdf, salt, iterations, memory)?;
        let client_key = hmac_sha256(&salted, b"Client Key");
        Ok(Credential {
            kdf,
            iterations,
            memory,
            salt: salt.to_vec(),
            stored_key: sha256(&client_key),
            server_key: hmac_sha256(&salted, b"Server Key"),
        })
    }

    /// From the fields of a Crossbar scram principal (static config or the dict a dynamic
    /// authenticator returns): `kdf`, `iterations`, `memory`, and `salt`, `stored-key`,
    /// `server-key` as hex strings (Crossbar decodes them with `binascii.a2b_hex`).
    pub fn from_fields(
        kdf: &str,
        iterations: u64,
        memory: Option<u64>,
        salt: &str,
        stored_key: &str,
        server_key: &str,
    ) -> Result<Credential, String> {
        let kdf = Kdf::parse(kdf).ok_or_else(|| {
            format!("scram: unknown kdf '{kdf}' (expected 'argon2id-13' or 'pbkdf2')")
        })?;
        let (iterations, memory) = check_params(kdf, iterations, memory)?;
        let salt = hex::decode(salt.trim())
            .map_err(|_| "scram: 'salt' must be a hex string".to_owned())?;
        check_salt(&salt)?;
        Ok(Credential {
            kdf,
            iterations,
            memory,
            salt,
            stored_key: decode_hex32("stored-key", stored_key)?,
            server_key: decode_hex32("server-key", server_key)?,
        })
    }

    /// A stand-in for an authid that does not exist, so that a CHALLENGE does not reveal it
    /// (the spec's optional mock challenge): the salt is the same for the same authid and
    /// `secret` (keep `secret` per node and private), the keys are random so no proof matches.
    pub fn mock(authid: &str, secret: &[u8]) -> Credential {
        let mut input = b"switchboard scram mock salt\0".to_vec();
        input.extend_from_slice(authid.as_bytes());
        let salt = hmac_sha256(secret, &input)[..NEW_SALT_LEN].to_vec();
        Credential {
            kdf: Kdf::Argon2id13,
            iterations: DEFAULT_ARGON2_ITERATIONS,
            memory: DEFAULT_ARGON2_MEMORY_KIB,
            salt,
            stored_key: rand::rng().random(),
            server_key: rand::rng().random(),
        }
    }
}

/// A CHALLENGE sent, waiting for the AUTHENTICATE: everything `verify` needs.
#[derive(Clone)]
pub struct Exchange {
    /// The SASLprep-normalized authid, as it goes into `AuthMessage`.
    authid: String,
    client_nonce: String,
    /// Client nonce followed by the server's.
    nonce: String,
    /// The salt exactly as sent (base64).
    salt: String,
    iterations: u32,
    stored_key: [u8; 32],
    server_key: [u8; 32],
}

impl std::fmt::Debug for Exchange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Exchange")
            .field("authid", &self.authid)
            .field("nonce", &self.nonce)
            .field("keys", &format_args!("<redacted>"))
            .finish()
    }
}

impl Exchange {
    /// The combined nonce sent in the CHALLENGE.
    pub fn nonce(&self) -> &str {
        &self.nonce
    }

    /// The two forms of `AuthMessage` a client may have signed: Autobahn/Crossbar's, then the
    /// spec's (RFC 5802 with an empty GS2 header: `c=biws`).
    fn auth_messages(&self) -> [String; 2] {
        let server_first = format!("r={},s={},i={}", self.nonce, self.salt, self.iterations);
        let autobahn = format!(
            "n={},r={},{server_first},c=,r={}",
            self.authid, self.client_nonce, self.nonce
        );
        let escaped = self.authid.replace('=', "=3D").replace(',', "=2C");
        let spec = format!(
            "n={escaped},r={},{server_first},c=biws,r={}",
            self.client_nonce, self.nonce
        );
        [autobahn, spec]
    }
}

/// RFC 5802 `printable`: visible ASCII except ','.
fn is_printable_nonce(s: &str) -> bool {
    s.bytes().all(|b| (0x21..=0x7e).contains(&b) && b != b',')
}

/// Called on HELLO: `authid` and the HELLO's authextra (client nonce etc.). Returns the
/// CHALLENGE extra and the state for [`verify`]. Errors are readable reasons for an ABORT.
pub fn challenge(
    cred: &Credential,
    authid: &str,
    hello_authextra: &Dict,
) -> Result<(Dict, Exchange), String> {
    let server_nonce: [u8; 16] = rand::rng().random();
    challenge_with_server_nonce(
        cred,
        authid,
        hello_authextra,
        &STANDARD.encode(server_nonce),
    )
}

fn challenge_with_server_nonce(
    cred: &Credential,
    authid: &str,
    hello_authextra: &Dict,
    server_nonce: &str,
) -> Result<(Dict, Exchange), String> {
    match dict_get(hello_authextra, "channel_binding") {
        None | Some(Value::Null) => {}
        Some(Value::Str(kind)) => {
            return Err(format!(
                "scram: channel binding '{kind}' is not available on this router; \
                 send channel_binding null"
            ))
        }
        Some(other) => {
            return Err(format!(
                "scram: HELLO.Details.authextra.channel_binding must be a string or null, got {}",
                other.kind()
            ))
        }
    }
    let client_nonce = match dict_get(hello_authextra, "nonce") {
        Some(Value::Str(n)) => n,
        None | Some(Value::Null) => {
            return Err("scram: HELLO.Details.authextra.nonce is required".into())
        }
        Some(other) => {
            return Err(format!(
                "scram: HELLO.Details.authextra.nonce must be a string, got {}",
                other.kind()
            ))
        }
    };
    if client_nonce.is_empty()
        || client_nonce.len() > MAX_NONCE_LEN
        || !is_printable_nonce(client_nonce)
    {
        return Err(format!(
            "scram: HELLO.Details.authextra.nonce must be 1..={MAX_NONCE_LEN} characters of \
             base64 (printable ASCII, no ',')"
        ));
    }
    if authid.len() > MAX_AUTHID_LEN {
        return Err(format!("scram: authid longer than {MAX_AUTHID_LEN} bytes"));
    }
    let authid = stringprep::saslprep(authid)
        .map_err(|e| format!("scram: authid is not a valid SASLprep string: {e}"))?;
    if authid.is_empty() {
        return Err("scram: authid is empty".into());
    }
    let nonce = format!("{client_nonce}{server_nonce}");
    let salt = STANDARD.encode(&cred.salt);
    let mut extra: Dict = vec![
        ("nonce".into(), Value::Str(nonce.clone())),
        ("salt".into(), Value::Str(salt.clone())),
        ("kdf".into(), Value::from(cred.kdf.wire_name())),
        ("iterations".into(), Value::UInt(u64::from(cred.iterations))),
    ];
    if cred.kdf == Kdf::Argon2id13 {
        extra.push(("memory".into(), Value::UInt(u64::from(cred.memory))));
    }
    let exchange = Exchange {
        authid: authid.into_owned(),
        client_nonce: client_nonce.clone(),
        nonce,
        salt,
        iterations: cred.iterations,
        stored_key: cred.stored_key,
        server_key: cred.server_key,
    };
    Ok((extra, exchange))
}

/// Whether an optional AUTHENTICATE extra field is absent or null.
fn absent(extra: &Dict, key: &str) -> bool {
    matches!(dict_get(extra, key), None | Some(Value::Null))
}

/// Called on AUTHENTICATE: `Ok` with the WELCOME authextra (`scram_server_signature`), or
/// `Err(())` on any mismatch. The proof comparison is constant-time.
// No reason is given on purpose: every failure reads "authentication failed" to the peer.
#[allow(clippy::result_unit_err)]
pub fn verify(ex: &Exchange, signature: &str, authenticate_extra: &Dict) -> Result<Dict, ()> {
    match dict_get(authenticate_extra, "nonce") {
        None | Some(Value::Null) => {}
        Some(Value::Str(n)) if n == &ex.nonce => {}
        Some(_) => return Err(()),
    }
    if !absent(authenticate_extra, "channel_binding") || !absent(authenticate_extra, "cbind_data") {
        return Err(());
    }
    // base64 of 32 bytes is 44 characters; don't decode anything much longer.
    if signature.len() > 64 {
        return Err(());
    }
    let proof = STANDARD.decode(signature).map_err(|_| ())?;
    let proof: [u8; 32] = proof.try_into().map_err(|_| ())?;
    let messages = ex.auth_messages();
    let mut matched = [0u8; 2];
    for (i, message) in messages.iter().enumerate() {
        let client_signature = hmac_sha256(&ex.stored_key, message.as_bytes());
        let mut client_key = [0u8; 32];
        for (k, (p, s)) in client_key
            .iter_mut()
            .zip(proof.iter().zip(client_signature.iter()))
        {
            *k = p ^ s;
        }
        matched[i] = sha256(&client_key).ct_eq(&ex.stored_key).unwrap_u8();
    }
    let message = match matched {
        [1, _] => &messages[0],
        [0, 1] => &messages[1],
        _ => return Err(()),
    };
    let server_signature = hmac_sha256(&ex.server_key, message.as_bytes());
    Ok(vec![(
        "scram_server_signature".into(),
        Value::Str(STANDARD.encode(server_signature)),
    )])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hello(nonce: &str) -> Dict {
        vec![("nonce".into(), Value::from(nonce))]
    }

    fn get_str<'a>(d: &'a Dict, k: &str) -> &'a str {
        dict_get(d, k).and_then(Value::as_str).unwrap()
    }

    /// The client's side, written from the spec's pseudocode (independently of the router
    /// code above): the proof for `auth_message` and the server signature it expects.
    fn client(password: &str, challenge: &Dict, auth_message: &str) -> (String, String) {
        let salt_b64 = get_str(challenge, "salt");
        let salt = STANDARD.decode(salt_b64).unwrap();
        let iterations = dict_get(challenge, "iterations")
            .and_then(Value::as_u64)
            .unwrap() as u32;
        let salted: Vec<u8> = match get_str(challenge, "kdf") {
            "argon2id-13" => {
                let memory = dict_get(challenge, "memory")
                    .and_then(Value::as_u64)
                    .unwrap() as u32;
                let params = argon2::Params::new(memory, iterations, 1, Some(32)).unwrap();
                let mut out = [0u8; 32];
                argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params)
                    .hash_password_into(password.as_bytes(), &salt, &mut out)
                    .unwrap();
                STANDARD_NO_PAD.encode(out).into_bytes()
            }
            "pbkdf2" => {
                let mut out = [0u8; 32];
                pbkdf2::pbkdf2_hmac::<Sha256>(password.as_bytes(), &salt, iterations, &mut out);
                out.to_vec()
            }
            other => panic!("kdf {other}"),
        };
        let mac = |key: &[u8], data: &[u8]| {
            let mut m = <HmacSha256 as KeyInit>::new_from_slice(key).unwrap();
            m.update(data);
            m.finalize().into_bytes().to_vec()
        };
        let client_key = mac(&salted, b"Client Key");
        let stored_key = Sha256::digest(&client_key).to_vec();
        let client_signature = mac(&stored_key, auth_message.as_bytes());
        let proof: Vec<u8> = client_key
            .iter()
            .zip(&client_signature)
            .map(|(a, b)| a ^ b)
            .collect();
        let server_key = mac(&salted, b"Server Key");
        let server_signature = mac(&server_key, auth_message.as_bytes());
        (STANDARD.encode(proof), STANDARD.encode(server_signature))
    }

    fn autobahn_message(authid: &str, client_nonce: &str, ch: &Dict) -> String {
        let n = get_str(ch, "nonce");
        format!(
            "n={authid},r={client_nonce},r={n},s={},i={},c=,r={n}",
            get_str(ch, "salt"),
            dict_get(ch, "iterations").and_then(Value::as_u64).unwrap()
        )
    }

    fn spec_message(escaped_authid: &str, client_nonce: &str, ch: &Dict) -> String {
        let n = get_str(ch, "nonce");
        format!(
            "n={escaped_authid},r={client_nonce},r={n},s={},i={},c=biws,r={n}",
            get_str(ch, "salt"),
            dict_get(ch, "iterations").and_then(Value::as_u64).unwrap()
        )
    }

    fn small(kdf: Kdf, password: &str) -> Credential {
        let (i, m) = match kdf {
            Kdf::Argon2id13 => (2, 64),
            Kdf::Pbkdf2 => (1000, 0),
        };
        Credential::derive_with(password, kdf, b"0123456789abcdef", i, m).unwrap()
    }

    // (a) Full exchanges against the client math above, both KDFs, both AuthMessage forms.
    #[test]
    fn full_exchange_both_kdfs_both_message_forms() {
        for kdf in [Kdf::Argon2id13, Kdf::Pbkdf2] {
            let cred = small(kdf, "s3cret pässword");
            let cn = "rOprNGfwEbeRWgbNEkqOAA==";
            let (ch, ex) = challenge(&cred, "joe", &hello(cn)).unwrap();
            assert!(get_str(&ch, "nonce").starts_with(cn));
            assert!(get_str(&ch, "nonce").len() > cn.len());
            assert_eq!(get_str(&ch, "kdf"), kdf.wire_name());
            assert_eq!(
                dict_get(&ch, "memory").is_some(),
                kdf == Kdf::Argon2id13,
                "memory only for argon2"
            );
            assert!(dict_get(&ch, "channel_binding").is_none());
            for msg in [
                autobahn_message("joe", cn, &ch),
                spec_message("joe", cn, &ch),
            ] {
                let (proof, server_sig) = client("s3cret pässword", &ch, &msg);
                let welcome = verify(&ex, &proof, &Dict::new()).unwrap();
                assert_eq!(get_str(&welcome, "scram_server_signature"), server_sig);
                // With the spec's AUTHENTICATE extra as well.
                let extra: Dict = vec![
                    ("nonce".into(), Value::from(ex.nonce())),
                    ("channel_binding".into(), Value::Null),
                    ("cbind_data".into(), Value::Null),
                ];
                assert!(verify(&ex, &proof, &extra).is_ok());
                // The wrong password fails.
                let (bad, _) = client("s3cret passwörd", &ch, &msg);
                assert_eq!(verify(&ex, &bad, &Dict::new()), Err(()));
            }
        }
    }

    #[test]
    fn escaped_authid_only_in_the_spec_form() {
        let cred = small(Kdf::Pbkdf2, "pw");
        let cn = "bm9uY2U=";
        let (ch, ex) = challenge(&cred, "a=b,c", &hello(cn)).unwrap();
        let (proof, sig) = client("pw", &ch, &spec_message("a=3Db=2Cc", cn, &ch));
        assert_eq!(
            get_str(
                &verify(&ex, &proof, &Dict::new()).unwrap(),
                "scram_server_signature"
            ),
            sig
        );
        let (proof, sig) = client("pw", &ch, &autobahn_message("a=b,c", cn, &ch));
        assert_eq!(
            get_str(
                &verify(&ex, &proof, &Dict::new()).unwrap(),
                "scram_server_signature"
            ),
            sig
        );
        // Spec form with the authid not escaped is neither form.
        let (proof, _) = client("pw", &ch, &spec_message("a=b,c", cn, &ch));
        assert!(verify(&ex, &proof, &Dict::new()).is_err());
    }

    #[test]
    fn authid_is_saslprepped() {
        let cred = small(Kdf::Pbkdf2, "pw");
        let cn = "bm9uY2U=";
        // U+00A0 (no-break space) maps to a plain space under SASLprep.
        let (ch, ex) = challenge(&cred, "joe\u{a0}x", &hello(cn)).unwrap();
        let (proof, _) = client("pw", &ch, &autobahn_message("joe x", cn, &ch));
        assert!(verify(&ex, &proof, &Dict::new()).is_ok());
        // Prohibited characters (a control character) are refused up front.
        assert!(challenge(&cred, "jo\u{7}e", &hello(cn))
            .unwrap_err()
            .contains("SASLprep"));
    }

    #[test]
    fn default_derive_uses_documented_parameters_and_fresh_salt() {
        let a = Credential::derive("pw", Kdf::Argon2id13);
        assert_eq!(a.kdf, Kdf::Argon2id13);
        assert_eq!(a.iterations, DEFAULT_ARGON2_ITERATIONS);
        assert_eq!(a.memory, DEFAULT_ARGON2_MEMORY_KIB);
        assert_eq!(a.salt.len(), 16);
        let b = Credential::derive("pw", Kdf::Pbkdf2);
        assert_eq!((b.iterations, b.memory), (DEFAULT_PBKDF2_ITERATIONS, 0));
        assert_ne!(a.salt, b.salt);
        // Same inputs, same keys: derive is derive_with plus a random salt.
        let again = Credential::derive_with("pw", Kdf::Pbkdf2, &b.salt, b.iterations, 0).unwrap();
        assert_eq!(again, b);
        // And the derived credential authenticates.
        let (ch, ex) = challenge(&a, "joe", &hello("Y24=")).unwrap();
        let (proof, _) = client("pw", &ch, &autobahn_message("joe", "Y24=", &ch));
        assert!(verify(&ex, &proof, &Dict::new()).is_ok());
    }

    // (b) Independent vectors.

    /// RFC 7677 section 3 (SCRAM-SHA-256): user "user", password "pencil". The WAMP spec's
    /// AuthMessage is RFC 5802's, so with PBKDF2 this exchange must verify unchanged.
    #[test]
    fn rfc7677_vector() {
        let salt = STANDARD.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
        let cred = Credential::derive_with("pencil", Kdf::Pbkdf2, &salt, 4096, 0).unwrap();
        let (ch, ex) = challenge_with_server_nonce(
            &cred,
            "user",
            &hello("rOprNGfwEbeRWgbNEkqO"),
            "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0",
        )
        .unwrap();
        assert_eq!(
            get_str(&ch, "nonce"),
            "rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
        );
        assert_eq!(get_str(&ch, "salt"), "W22ZaJ0SNY7soEsUEjb6gQ==");
        let welcome = verify(
            &ex,
            "dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
            &Dict::new(),
        )
        .unwrap();
        assert_eq!(
            get_str(&welcome, "scram_server_signature"),
            "6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
        );
    }

    /// Autobahn|Python's published `derive_scram_credential` vector
    /// (autobahn/wamp/test/test_wamp_scram.py): foobar@example.com / secret123 with salt
    /// ae1f…62c6, argon2id-13, t = 4096, m = 512.
    const AB_SALT: &str = "ae1f0d2f422757809077785e660b62c6";
    const AB_STORED: &str = "5f19358ff6f38e267b6ef1ea1d862514ec4e8745a84682259fd3894be09febb5";
    const AB_SERVER: &str = "0d8e7e9222a7c0e54c9e979aa342115699ff5696c45dc379b5ee241338a5861d";

    #[test]
    fn argon2_derivation_matches_autobahn() {
        let from_config = Credential::from_fields(
            "argon2id-13",
            4096,
            Some(512),
            AB_SALT,
            AB_STORED,
            AB_SERVER,
        )
        .unwrap();
        let salt = hex::decode(AB_SALT).unwrap();
        let derived =
            Credential::derive_with("secret123", Kdf::Argon2id13, &salt, 4096, 512).unwrap();
        assert_eq!(derived, from_config);
    }

    // Produced by tests/tools/scram_vectors.py with Autobahn|Python 26.10.2 (argon2-cffi 25.1,
    // passlib 1.7.4): `AuthScram(authid, password)` with its client nonce fixed, fed a CHALLENGE
    // with the server nonce below; PROOF is what `on_challenge` returned and SERVER_SIG the
    // signature its `on_welcome` accepted. Keys are from `derive_scram_credential` (first) and
    // from AuthScram's own salted password (second).
    const V1_AUTHID: &str = "joe";
    const V1_CLIENT_NONCE: &str = "Y2xpZW50LW5vbmNlLTAwMQ==";
    const V1_SERVER_NONCE: &str = "c2VydmVyLW5vbmNlLTAwMQ==";
    const V1_PROOF: &str = "gsZJxvE/YUns0yElG5Q7eQGhAAxEO7GxHkVYBCT5SQY=";
    const V1_SERVER_SIG: &str = "OPBF2BYMTCPPqUC3RIGkrU+SqsWRnHPPjHWrc0kESxc=";
    // Autobahn does not escape '=' or ',' in the authid; its password is raw UTF-8.
    const V2_AUTHID: &str = "user=1,x";
    const V2_PASSWORD: &str = "pässwörd";
    const V2_CLIENT_NONCE: &str = "AAECAwQFBgcICQoLDA0ODw==";
    const V2_SERVER_NONCE: &str = "EBESExQVFhcYGRobHB0eHw==";
    const V2_SALT: &str = "000102030405060708090a0b0c0d0e0f";
    const V2_STORED: &str = "60ba03eddb1efedc5a78fad61c6407ce8d8603babd159daea0d55d5153fd73a0";
    const V2_SERVER: &str = "6059ce9f41c7f69ff8d8a77c14c6f4b5cc04bdfb565b8fac213cb3e334165c8e";
    const V2_PROOF: &str = "JNEEK99OES1P/bwqKkaEgdXCXR7R2pjRixH5I/mVApM=";
    const V2_SERVER_SIG: &str = "cupieUi0aXoczrDqMWs+e8hL9BgZlE1L2fKFNB/NqIU=";
    // PBKDF2, computed by the same script with hashlib/hmac from the spec's pseudocode (the
    // script first checks that code against RFC 7677): the spec's AuthMessage form.
    const V3_AUTHID: &str = "ann";
    const V3_PASSWORD: &str = "correct horse";
    const V3_CLIENT_NONCE: &str = "cGJrZGYyLWNsaWVudA==";
    const V3_SERVER_NONCE: &str = "cGJrZGYyLXNlcnZlcg==";
    const V3_SALT: &str = "70626b6466322d73616c742d30303033";
    const V3_STORED: &str = "6b0c6e3916f816a952202efc6b7686a83a4308d2e19b4620323a918dd30b7721";
    const V3_SERVER: &str = "19fe329c3250b4efa5ed80a7111ed76a78780986a927bcf2795dab586e059820";
    const V3_PROOF: &str = "AgarQKqEO+8V4K3zuFPG18I2dX8mM7SCSP35o0kQo0M=";
    const V3_SERVER_SIG: &str = "LDPlYu0imNPFbE2n4OlIKQgxVGvgKx2P4Jc2kC6h/2A=";

    #[test]
    fn autobahn_client_vector_argon2_crossbar_credential() {
        let cred = Credential::from_fields(
            "argon2id-13",
            4096,
            Some(512),
            AB_SALT,
            AB_STORED,
            AB_SERVER,
        )
        .unwrap();
        let (ch, ex) =
            challenge_with_server_nonce(&cred, V1_AUTHID, &hello(V1_CLIENT_NONCE), V1_SERVER_NONCE)
                .unwrap();
        assert_eq!(get_str(&ch, "kdf"), "argon2id-13");
        let welcome = verify(&ex, V1_PROOF, &Dict::new()).unwrap();
        assert_eq!(get_str(&welcome, "scram_server_signature"), V1_SERVER_SIG);
    }

    #[test]
    fn autobahn_client_vector_argon2_unescaped_authid() {
        let cred =
            Credential::from_fields("argon2id-13", 3, Some(64), V2_SALT, V2_STORED, V2_SERVER)
                .unwrap();
        let salt = hex::decode(V2_SALT).unwrap();
        assert_eq!(
            Credential::derive_with(V2_PASSWORD, Kdf::Argon2id13, &salt, 3, 64).unwrap(),
            cred,
            "our derivation gives Autobahn's keys"
        );
        let (ch, ex) =
            challenge_with_server_nonce(&cred, V2_AUTHID, &hello(V2_CLIENT_NONCE), V2_SERVER_NONCE)
                .unwrap();
        assert_eq!(get_str(&ch, "salt"), "AAECAwQFBgcICQoLDA0ODw==");
        assert_eq!(dict_get(&ch, "memory"), Some(&Value::UInt(64)));
        let welcome = verify(&ex, V2_PROOF, &Dict::new()).unwrap();
        assert_eq!(get_str(&welcome, "scram_server_signature"), V2_SERVER_SIG);
        assert_eq!(verify(&ex, V1_PROOF, &Dict::new()), Err(()));
    }

    #[test]
    fn spec_vector_pbkdf2() {
        let cred =
            Credential::from_fields("pbkdf2", 4096, None, V3_SALT, V3_STORED, V3_SERVER).unwrap();
        let salt = hex::decode(V3_SALT).unwrap();
        assert_eq!(
            Credential::derive_with(V3_PASSWORD, Kdf::Pbkdf2, &salt, 4096, 0).unwrap(),
            cred
        );
        let (ch, ex) =
            challenge_with_server_nonce(&cred, V3_AUTHID, &hello(V3_CLIENT_NONCE), V3_SERVER_NONCE)
                .unwrap();
        assert_eq!(get_str(&ch, "kdf"), "pbkdf2");
        assert!(dict_get(&ch, "memory").is_none());
        let extra: Dict = vec![
            ("nonce".into(), Value::from(ex.nonce())),
            ("channel_binding".into(), Value::Null),
            ("cbind_data".into(), Value::Null),
        ];
        let welcome = verify(&ex, V3_PROOF, &extra).unwrap();
        assert_eq!(get_str(&welcome, "scram_server_signature"), V3_SERVER_SIG);
    }

    // (c) Everything wrong is an error, never a panic.

    fn pbkdf2_exchange() -> (Dict, Exchange, String) {
        let cred = small(Kdf::Pbkdf2, "pw");
        let (ch, ex) = challenge(&cred, "joe", &hello("bm9uY2U=")).unwrap();
        let (proof, _) = client("pw", &ch, &autobahn_message("joe", "bm9uY2U=", &ch));
        assert!(verify(&ex, &proof, &Dict::new()).is_ok());
        (ch, ex, proof)
    }

    #[test]
    fn bad_proofs_are_rejected() {
        let (_, ex, proof) = pbkdf2_exchange();
        let mut raw = STANDARD.decode(&proof).unwrap();
        raw[0] ^= 1;
        let flipped = STANDARD.encode(&raw);
        let short = STANDARD.encode(&raw[..31]);
        let long = STANDARD.encode([raw.as_slice(), &[0]].concat());
        for bad in [
            flipped.as_str(),
            &proof[..proof.len() - 4],
            &proof[..43],
            short.as_str(),
            long.as_str(),
            "",
            "!!!!",
            "not base64 at all",
            &format!(" {proof}"),
            &"A".repeat(100_000),
            "€€€€€€€€€€€€€€€€€€€€€€",
        ] {
            assert_eq!(verify(&ex, bad, &Dict::new()), Err(()), "{bad:?}");
        }
    }

    #[test]
    fn wrong_nonce_or_channel_binding_in_authenticate_is_rejected() {
        let (_, ex, proof) = pbkdf2_exchange();
        let other_nonce = format!("{}x", ex.nonce());
        for extra in [
            vec![("nonce".to_owned(), Value::from("bm9uY2U="))],
            vec![("nonce".to_owned(), Value::from(other_nonce.as_str()))],
            vec![("nonce".to_owned(), Value::UInt(1))],
            vec![("channel_binding".to_owned(), Value::from("tls-unique"))],
            vec![("cbind_data".to_owned(), Value::from("AAAA"))],
        ] {
            assert_eq!(verify(&ex, &proof, &extra), Err(()), "{extra:?}");
        }
    }

    #[test]
    fn a_proof_for_another_exchange_is_rejected() {
        let cred = small(Kdf::Pbkdf2, "pw");
        let (ch1, _ex1) = challenge(&cred, "joe", &hello("bm9uY2U=")).unwrap();
        let (_ch2, ex2) = challenge(&cred, "joe", &hello("bm9uY2U=")).unwrap();
        assert_ne!(_ex1.nonce(), ex2.nonce(), "server nonces are fresh");
        let (proof1, _) = client("pw", &ch1, &autobahn_message("joe", "bm9uY2U=", &ch1));
        assert_eq!(verify(&ex2, &proof1, &Dict::new()), Err(()));
        // Another authid's exchange, same credential and nonce: fails too.
        let (ch3, ex3) =
            challenge_with_server_nonce(&cred, "ann", &hello("bm9uY2U="), "c2VydmVy").unwrap();
        let (_, ex4) =
            challenge_with_server_nonce(&cred, "joe", &hello("bm9uY2U="), "c2VydmVy").unwrap();
        let (proof3, _) = client("pw", &ch3, &autobahn_message("ann", "bm9uY2U=", &ch3));
        assert!(verify(&ex3, &proof3, &Dict::new()).is_ok());
        assert_eq!(verify(&ex4, &proof3, &Dict::new()), Err(()));
    }

    #[test]
    fn bad_hellos_are_refused_with_reasons() {
        let cred = small(Kdf::Pbkdf2, "pw");
        let cb = vec![
            ("nonce".to_owned(), Value::from("bm9uY2U=")),
            ("channel_binding".to_owned(), Value::from("tls-unique")),
        ];
        let e = challenge(&cred, "joe", &cb).unwrap_err();
        assert!(
            e.contains("tls-unique") && e.contains("not available"),
            "{e}"
        );
        let cb_null = vec![
            ("nonce".to_owned(), Value::from("bm9uY2U=")),
            ("channel_binding".to_owned(), Value::Null),
        ];
        assert!(challenge(&cred, "joe", &cb_null).is_ok());
        assert!(challenge(&cred, "joe", &Dict::new())
            .unwrap_err()
            .contains("nonce is required"));
        for nonce in [
            Value::from(""),
            Value::from("a,b"),
            Value::from("with space"),
            Value::from("ünïcode"),
            Value::from("A".repeat(MAX_NONCE_LEN + 1)),
            Value::UInt(7),
        ] {
            let extra = vec![("nonce".to_owned(), nonce.clone())];
            assert!(challenge(&cred, "joe", &extra).is_err(), "{nonce:?}");
        }
        assert!(challenge(&cred, "", &hello("bm9uY2U=")).is_err());
        assert!(challenge(&cred, &"x".repeat(MAX_AUTHID_LEN + 1), &hello("bm9uY2U=")).is_err());
    }

    #[test]
    fn from_fields_validates_and_bounds() {
        let k = "00".repeat(32);
        let salt = "00112233445566778899aabbccddeeff";
        let ok = |kdf, i, m| Credential::from_fields(kdf, i, m, salt, &k, &k);
        assert_eq!(
            ok("argon2id13", 4096, Some(512)).unwrap().kdf,
            Kdf::Argon2id13
        );
        let p = ok("pbkdf2", 4096, None).unwrap();
        assert_eq!((p.kdf, p.memory), (Kdf::Pbkdf2, 0));
        assert!(
            ok("pbkdf2", 4096, Some(512)).is_ok(),
            "memory ignored for pbkdf2"
        );
        for (kdf, i, m, needle) in [
            ("scrypt", 4096, Some(512), "unknown kdf"),
            ("argon2id-13", 4096, None, "needs 'memory'"),
            ("argon2id-13", 4096, Some(u64::from(u32::MAX) + 1), "memory"),
            ("argon2id-13", 4096, Some(4 << 20), "memory"),
            ("argon2id-13", 4096, Some(4), "memory"),
            ("argon2id-13", 0, Some(512), "iterations"),
            ("argon2id-13", 1 << 40, Some(512), "iterations"),
            ("pbkdf2", 0, None, "iterations"),
            ("pbkdf2", 1 << 32, None, "iterations"),
        ] {
            let e = ok(kdf, i, m).unwrap_err();
            assert!(e.contains(needle), "{kdf} {i} {m:?}: {e}");
        }
        let bad = |salt: &str, a: &str, b: &str| {
            Credential::from_fields("pbkdf2", 4096, None, salt, a, b).unwrap_err()
        };
        assert!(bad("zz", &k, &k).contains("salt"));
        assert!(bad("0011", &k, &k).contains("salt"), "too short");
        assert!(bad(salt, &k[..62], &k).contains("stored-key"));
        assert!(bad(salt, &k, &format!("{k}00")).contains("server-key"));
        assert!(bad(salt, "W22ZaJ0SNY7soEsUEjb6gQ==", &k).contains("stored-key"));
        // derive_with is bounded the same way.
        assert!(Credential::derive_with("pw", Kdf::Argon2id13, b"0123456789", 1, 2 << 20).is_err());
        assert!(Credential::derive_with("pw", Kdf::Argon2id13, b"short", 1, 64).is_err());
    }

    #[test]
    fn debug_output_redacts_keys() {
        let cred = Credential::from_fields(
            "argon2id-13",
            4096,
            Some(512),
            AB_SALT,
            AB_STORED,
            AB_SERVER,
        )
        .unwrap();
        let (_, ex) = challenge(&cred, "joe", &hello("bm9uY2U=")).unwrap();
        for text in [format!("{cred:?}"), format!("{ex:?}"), format!("{cred:#?}")] {
            assert!(text.contains("redacted"), "{text}");
            for secret in [AB_STORED, AB_SERVER] {
                let bytes = hex::decode(secret).unwrap();
                assert!(!text.contains(secret), "{text}");
                assert!(!text.contains(&STANDARD.encode(&bytes)), "{text}");
                let as_list = format!("{:?}", &bytes[..4]);
                assert!(!text.contains(as_list.trim_end_matches(']')), "{text}");
            }
        }
    }

    #[test]
    fn mock_credentials_are_stable_per_authid_and_never_verify() {
        let a = Credential::mock("ghost", b"node secret");
        let b = Credential::mock("ghost", b"node secret");
        assert_eq!(a.salt, b.salt);
        assert_ne!(a.salt, Credential::mock("ghost2", b"node secret").salt);
        assert_ne!(a.salt, Credential::mock("ghost", b"other node").salt);
        assert_ne!(a.stored_key, b.stored_key);
        let (ch, ex) = challenge(&a, "ghost", &hello("bm9uY2U=")).unwrap();
        assert_eq!(get_str(&ch, "kdf"), "argon2id-13");
        let (proof, _) = client("anything", &ch, &autobahn_message("ghost", "bm9uY2U=", &ch));
        assert!(verify(&ex, &proof, &Dict::new()).is_err());
    }
}
