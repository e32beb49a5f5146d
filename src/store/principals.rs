//! The built-in principal store: users managed with `switchboard user …`, kept in the
//! `principals` tree. Each has a SCRAM credential (argon2id-13) and, if asked for, a WAMP-CRA
//! key; the password itself is never stored.
//!
//! A record belongs to one realm or to any realm. Keys: `*` NUL authid for any realm,
//! `=` realm NUL authid for one realm (a realm name holds no NUL), so a realm's records sort
//! together and `get` can look the realm's record up first.
//!
//! Every change is flushed to disk before the call returns.

use super::{codec, StoreError};
use crate::auth::scram::{Credential, Kdf};
use crate::wamp::uri::{self, MatchPolicy};
use base64::Engine as _;
use rand::Rng;
use serde::{Deserialize, Serialize};
use std::time::{SystemTime, UNIX_EPOCH};

/// The sled tree's name.
pub const TREE: &str = "principals";

/// PBKDF2 iterations of new WAMP-CRA keys. The client derives the key on every login, and
/// Autobahn|JS does it in plain JavaScript (CryptoJS), where 10 000 rounds take a fraction of
/// a second; Autobahn's own default is 1000. The derived key is what the client signs with, so
/// it is a password equivalent for this router whatever the count: the rounds only protect the
/// password itself, should the store leak.
pub const CRA_ITERATIONS: u32 = 10_000;
/// Length of new WAMP-CRA keys, bytes.
pub const CRA_KEYLEN: u32 = 32;

/// A WAMP-CRA key as Autobahn's `derive_key` makes it from the password: the client is sent
/// `salt`, `iterations` and `keylen` in the CHALLENGE and signs with `key`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CraKey {
    /// base64(PBKDF2-HMAC-SHA256(password, salt, iterations, keylen)), the HMAC key.
    pub key: String,
    /// Used as its UTF-8 bytes, as Autobahn does.
    pub salt: String,
    pub iterations: u32,
    pub keylen: u32,
}

impl CraKey {
    /// Derives a key with a fresh random salt.
    pub fn derive(password: &str) -> CraKey {
        let salt: [u8; 16] = rand::rng().random();
        let salt = base64::engine::general_purpose::STANDARD.encode(salt);
        CraKey {
            key: crate::auth::wampcra::derive_key(password, &salt, CRA_ITERATIONS, CRA_KEYLEN),
            salt,
            iterations: CRA_ITERATIONS,
            keylen: CRA_KEYLEN,
        }
    }
}

impl std::fmt::Debug for CraKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CraKey")
            .field("key", &format_args!("<redacted>"))
            .field("salt", &self.salt)
            .field("iterations", &self.iterations)
            .field("keylen", &self.keylen)
            .finish()
    }
}

/// One user of the built-in store.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrincipalRecord {
    pub authid: String,
    /// `None`: the principal may join any realm.
    pub realm: Option<String>,
    pub role: String,
    pub scram: Credential,
    pub wampcra: Option<CraKey>,
    /// Unix seconds when the record was added.
    pub created: u64,
}

impl PrincipalRecord {
    /// A new record for `password`: an argon2id-13 SCRAM credential with fresh salt, plus a
    /// WAMP-CRA key if `wampcra`.
    pub fn new(
        authid: &str,
        realm: Option<&str>,
        role: &str,
        password: &str,
        wampcra: bool,
    ) -> PrincipalRecord {
        PrincipalRecord {
            authid: authid.to_owned(),
            realm: realm.map(str::to_owned),
            role: role.to_owned(),
            scram: Credential::derive(password, Kdf::Argon2id13),
            wampcra: wampcra.then(|| CraKey::derive(password)),
            created: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
        }
    }

    /// The authentication methods this record can serve.
    pub fn methods(&self) -> Vec<&'static str> {
        let mut m = vec![crate::auth::scram::AUTHMETHOD];
        if self.wampcra.is_some() {
            m.push("wampcra");
        }
        m
    }
}

fn key(realm: Option<&str>, authid: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(authid.len() + realm.map_or(0, str::len) + 2);
    match realm {
        None => k.push(b'*'),
        Some(r) => {
            k.push(b'=');
            k.extend_from_slice(r.as_bytes());
        }
    }
    k.push(0);
    k.extend_from_slice(authid.as_bytes());
    k
}

fn invalid(msg: impl Into<String>) -> StoreError {
    StoreError::Invalid(msg.into())
}

fn check_name(what: &str, s: &str) -> Result<(), StoreError> {
    if s.is_empty() {
        return Err(invalid(format!("{what} is empty")));
    }
    if s.chars().any(char::is_control) {
        return Err(invalid(format!("{what} contains control characters")));
    }
    Ok(())
}

/// Checks the names of a record to be added: non-empty, no control characters, the realm a
/// valid URI.
pub fn validate(authid: &str, realm: Option<&str>, role: &str) -> Result<(), StoreError> {
    check_name("authid", authid)?;
    check_name("role", role)?;
    if let Some(r) = realm {
        check_name("realm", r)?;
        if !uri::is_valid(r, MatchPolicy::Exact) {
            return Err(invalid(format!("'{r}' is not a valid realm URI")));
        }
    }
    Ok(())
}

/// Handle on the `principals` tree (cheap to clone; see [`super::Store::principals`]).
#[derive(Clone)]
pub struct Principals {
    db: sled::Db,
    tree: sled::Tree,
}

impl Principals {
    pub(super) fn new(db: sled::Db, tree: sled::Tree) -> Principals {
        Principals { db, tree }
    }

    fn flush(&self) -> Result<(), StoreError> {
        self.db.flush()?;
        Ok(())
    }

    /// Adds a record; refuses one whose (realm, authid) exists. Durable when it returns.
    pub fn add(&self, rec: &PrincipalRecord) -> Result<(), StoreError> {
        validate(&rec.authid, rec.realm.as_deref(), &rec.role)?;
        let k = key(rec.realm.as_deref(), &rec.authid);
        let value = codec::encode(rec)?;
        match self.tree.compare_and_swap(k, None::<&[u8]>, Some(value))? {
            Ok(()) => self.flush(),
            Err(_) => Err(StoreError::Duplicate {
                authid: rec.authid.clone(),
                realm: rec.realm.clone(),
            }),
        }
    }

    /// The record with exactly this realm (or none: any realm) and authid.
    pub fn get_exact(
        &self,
        realm: Option<&str>,
        authid: &str,
    ) -> Result<Option<PrincipalRecord>, StoreError> {
        match self.tree.get(key(realm, authid))? {
            Some(bytes) => Ok(Some(codec::decode(&bytes)?)),
            None => Ok(None),
        }
    }

    /// The record a client joining `realm` as `authid` authenticates against: the realm's own
    /// record if there is one, else the one for any realm.
    pub fn get(&self, realm: &str, authid: &str) -> Result<Option<PrincipalRecord>, StoreError> {
        match self.get_exact(Some(realm), authid)? {
            Some(rec) => Ok(Some(rec)),
            None => self.get_exact(None, authid),
        }
    }

    /// All records: those for any realm first, then by realm, each by authid.
    pub fn list(&self) -> Result<Vec<PrincipalRecord>, StoreError> {
        self.tree
            .iter()
            .map(|item| {
                let (_, bytes) = item?;
                Ok(codec::decode(&bytes)?)
            })
            .collect()
    }

    /// Replaces the password: new SCRAM credential and, if the record has one, new WAMP-CRA
    /// key, both with fresh salts. `false` if there is no such record. Durable when it returns.
    pub fn set_password(
        &self,
        realm: Option<&str>,
        authid: &str,
        password: &str,
    ) -> Result<bool, StoreError> {
        if password.is_empty() {
            return Err(invalid("the password is empty"));
        }
        let k = key(realm, authid);
        let Some(old_bytes) = self.tree.get(&k)? else {
            return Ok(false);
        };
        let mut rec: PrincipalRecord = codec::decode(&old_bytes)?;
        rec.scram = Credential::derive(password, rec.scram.kdf);
        if rec.wampcra.is_some() {
            rec.wampcra = Some(CraKey::derive(password));
        }
        // Only if the record was not changed or removed meanwhile.
        match self
            .tree
            .compare_and_swap(&k, Some(old_bytes), Some(codec::encode(&rec)?))?
        {
            Ok(()) => {
                self.flush()?;
                Ok(true)
            }
            Err(_) => Ok(false),
        }
    }

    /// Removes a record; `false` if there was none. Durable when it returns.
    pub fn remove(&self, realm: Option<&str>, authid: &str) -> Result<bool, StoreError> {
        let removed = self.tree.remove(key(realm, authid))?.is_some();
        if removed {
            self.flush()?;
        }
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;

    fn open(dir: &std::path::Path) -> Store {
        Store::open(dir, 1 << 20).unwrap()
    }

    /// A record with cheap KDF parameters (the store does not care which).
    fn rec(authid: &str, realm: Option<&str>, role: &str) -> PrincipalRecord {
        PrincipalRecord {
            authid: authid.into(),
            realm: realm.map(Into::into),
            role: role.into(),
            scram: Credential::derive_with("pw", Kdf::Argon2id13, b"saltsalt", 1, 8).unwrap(),
            wampcra: None,
            created: 1_700_000_000,
        }
    }

    #[test]
    fn add_get_with_realm_precedence() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        let p = store.principals();
        assert_eq!(p.get("realm1", "joe").unwrap(), None);
        p.add(&rec("joe", None, "anywhere")).unwrap();
        assert_eq!(p.get("realm1", "joe").unwrap().unwrap().role, "anywhere");
        assert_eq!(p.get("other", "joe").unwrap().unwrap().role, "anywhere");
        p.add(&rec("joe", Some("realm1"), "local")).unwrap();
        assert_eq!(p.get("realm1", "joe").unwrap().unwrap().role, "local");
        assert_eq!(p.get("other", "joe").unwrap().unwrap().role, "anywhere");
        assert_eq!(p.get_exact(None, "joe").unwrap().unwrap().role, "anywhere");
        // A realm-specific record alone does not serve other realms.
        p.add(&rec("ann", Some("realm1"), "r")).unwrap();
        assert!(p.get("realm2", "ann").unwrap().is_none());
        assert!(p.get_exact(None, "ann").unwrap().is_none());
        // Names are compared exactly ("jo" is not a prefix match of "joe").
        assert!(p.get("realm1", "jo").unwrap().is_none());
    }

    #[test]
    fn duplicates_and_invalid_records_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = open(dir.path()).principals();
        p.add(&rec("joe", None, "a")).unwrap();
        let e = p.add(&rec("joe", None, "b")).unwrap_err();
        assert!(matches!(&e, StoreError::Duplicate { authid, realm: None } if authid == "joe"));
        assert!(e.to_string().contains("already exists"), "{e}");
        assert_eq!(p.get_exact(None, "joe").unwrap().unwrap().role, "a", "kept");
        // The same authid in a realm is another principal.
        p.add(&rec("joe", Some("r1"), "b")).unwrap();
        assert!(p.add(&rec("joe", Some("r1"), "c")).is_err());
        for bad in [
            rec("", None, "r"),
            rec("joe\n", None, "r"),
            rec("x", None, ""),
            rec("x", Some(""), "r"),
            rec("x", Some("a\0b"), "r"),
            rec("x", Some("my realm"), "r"),
            rec("x", Some("realm..one"), "r"),
        ] {
            assert!(
                matches!(p.add(&bad), Err(StoreError::Invalid(_))),
                "{bad:?}"
            );
        }
        assert_eq!(p.list().unwrap().len(), 2);
    }

    #[test]
    fn list_is_ordered_any_realm_first() {
        let dir = tempfile::tempdir().unwrap();
        let p = open(dir.path()).principals();
        for (a, r) in [
            ("zed", Some("b.realm")),
            ("bob", None),
            ("amy", Some("a.realm")),
            ("al", None),
        ] {
            p.add(&rec(a, r, "x")).unwrap();
        }
        let got: Vec<(String, Option<String>)> = p
            .list()
            .unwrap()
            .into_iter()
            .map(|r| (r.authid, r.realm))
            .collect();
        assert_eq!(
            got,
            vec![
                ("al".into(), None),
                ("bob".into(), None),
                ("amy".into(), Some("a.realm".into())),
                ("zed".into(), Some("b.realm".into())),
            ]
        );
    }

    #[test]
    fn set_password_rederives_both_credentials() {
        let dir = tempfile::tempdir().unwrap();
        let p = open(dir.path()).principals();
        let mut r = rec("joe", Some("r1"), "x");
        r.wampcra = Some(CraKey::derive("old"));
        p.add(&r).unwrap();
        assert!(p.set_password(Some("r1"), "joe", "new password").unwrap());
        let after = p.get_exact(Some("r1"), "joe").unwrap().unwrap();
        assert_eq!((after.role.as_str(), after.created), ("x", r.created));
        assert_ne!(after.scram, r.scram);
        // The new SCRAM credential is the new password's.
        let again = Credential::derive_with(
            "new password",
            after.scram.kdf,
            &after.scram.salt,
            after.scram.iterations,
            after.scram.memory,
        )
        .unwrap();
        assert_eq!(again, after.scram);
        let cra = after.wampcra.unwrap();
        assert_eq!(
            cra.key,
            crate::auth::wampcra::derive_key("new password", &cra.salt, cra.iterations, cra.keylen)
        );
        // Unknown principal, wrong realm, empty password.
        assert!(!p.set_password(None, "joe", "x").unwrap());
        assert!(!p.set_password(Some("r1"), "nobody", "x").unwrap());
        assert!(p.set_password(Some("r1"), "joe", "").is_err());
        // A record without a CRA key does not get one.
        p.add(&rec("ann", None, "x")).unwrap();
        assert!(p.set_password(None, "ann", "pw2").unwrap());
        assert!(p.get_exact(None, "ann").unwrap().unwrap().wampcra.is_none());
    }

    #[test]
    fn remove_only_the_named_record() {
        let dir = tempfile::tempdir().unwrap();
        let p = open(dir.path()).principals();
        p.add(&rec("joe", None, "a")).unwrap();
        p.add(&rec("joe", Some("r1"), "b")).unwrap();
        assert!(!p.remove(Some("r2"), "joe").unwrap());
        assert!(p.remove(Some("r1"), "joe").unwrap());
        assert!(!p.remove(Some("r1"), "joe").unwrap());
        assert_eq!(p.get("r1", "joe").unwrap().unwrap().role, "a");
        assert!(p.remove(None, "joe").unwrap());
        assert!(p.list().unwrap().is_empty());
    }

    #[test]
    fn records_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let mut r = PrincipalRecord::new("joe", Some("realm1"), "user", "pw", true);
        {
            let store = open(dir.path());
            store.principals().add(&r).unwrap();
            store.principals().add(&rec("ann", None, "x")).unwrap();
            store.principals().remove(None, "ann").unwrap();
        }
        let store = open(dir.path());
        let p = store.principals();
        assert_eq!(p.get("realm1", "joe").unwrap().as_ref(), Some(&r));
        assert!(p.get("x", "ann").unwrap().is_none());
        assert!(p.set_password(Some("realm1"), "joe", "pw2").unwrap());
        drop(p);
        drop(store);
        let store = open(dir.path());
        let got = store.principals().get("realm1", "joe").unwrap().unwrap();
        assert_ne!(got.scram, r.scram);
        r.scram = got.scram.clone();
        r.wampcra = got.wampcra.clone();
        assert_eq!(got, r);
    }

    #[test]
    fn new_records_hold_no_password_and_debug_hides_keys() {
        let r = PrincipalRecord::new("joe", None, "user", "hunter2-password", true);
        assert_eq!(r.methods(), vec!["scram", "wampcra"]);
        assert_eq!(r.scram.kdf, Kdf::Argon2id13);
        let bytes = codec::encode(&r).unwrap();
        assert!(!bytes
            .windows("hunter2-password".len())
            .any(|w| w == b"hunter2-password"));
        let text = format!("{r:?}");
        let cra = r.wampcra.as_ref().unwrap();
        assert!(!text.contains(&cra.key), "{text}");
        assert!(!text.contains("hunter2"), "{text}");
        assert!(text.contains("redacted"));
        // A record without CRA serves SCRAM only.
        assert_eq!(
            PrincipalRecord::new("a", None, "r", "p", false).methods(),
            vec!["scram"]
        );
    }

    #[test]
    fn a_locked_directory_is_reported_as_such() {
        let dir = tempfile::tempdir().unwrap();
        let _held = open(dir.path());
        // sled's lock is per open file description, so a second open in this process
        // sees it too.
        match Store::open(dir.path(), 1 << 20) {
            Err(StoreError::Locked(d)) => assert_eq!(d, dir.path().display().to_string()),
            Err(e) => panic!("{e}"),
            Ok(_) => panic!("opened twice"),
        }
    }
}
