//! Automatic certificates with ACME (RFC 8555, `instant-acme`), HTTP-01 or TLS-ALPN-01
//! (RFC 8737) challenges.
//!
//! The account key and the certificate live in `<data dir>/acme/` (`account.json`, `cert.pem`,
//! `key.pem`, all 0600, with `account.directory` and `order` saying which CA and names they are
//! for). At start a stored certificate for the same CA and names is served at once;
//! a task then checks every `check_interval` and orders a new one when there is none, the
//! names changed, or two thirds of its lifetime have passed. HTTP-01 tokens are answered by
//! the plain-HTTP listener (`/.well-known/acme-challenge/`, `http::redirect`), which must be
//! reachable on port 80 of every name; TLS-ALPN-01 challenge certificates are served by the
//! HTTPS listeners themselves (`CertResolver`, ALPN `acme-tls/1`) on port 443. A failed order is logged and retried (backoff up to the
//! check interval); the certificate being served stays.

use super::CertResolver;
use instant_acme::{
    Account, AccountCredentials, AuthorizationStatus, ChallengeType, Identifier, NewAccount,
    NewOrder, OrderStatus, RetryPolicy,
};
use parking_lot::RwLock;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

pub const LETS_ENCRYPT: &str = "https://acme-v02.api.letsencrypt.org/directory";
pub const LETS_ENCRYPT_STAGING: &str = "https://acme-staging-v02.api.letsencrypt.org/directory";

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AcmeConfig {
    /// DNS names on the certificate (the first is its subject).
    pub domains: Vec<String>,
    /// Contact email addresses for the account (without `mailto:`).
    pub emails: Vec<String>,
    /// The ACME directory URL.
    pub directory: String,
    /// A PEM root certificate the directory's HTTPS is verified with instead of the system's
    /// (a test CA such as pebble's).
    pub root_certificate: Option<PathBuf>,
    /// How often the certificate's age is checked.
    pub check_interval: Duration,
    /// How the CA validates control of the names.
    pub challenge: Challenge,
}

/// The ACME challenge answered.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Challenge {
    /// HTTP-01: a token at `http://NAME/.well-known/acme-challenge/` (the redirect listener on
    /// port 80).
    #[default]
    Http01,
    /// TLS-ALPN-01: a special certificate on the HTTPS listener itself (port 443), no port 80.
    TlsAlpn01,
}

impl Challenge {
    pub fn parse(s: &str) -> Option<Challenge> {
        match s {
            "http-01" => Some(Challenge::Http01),
            "tls-alpn-01" => Some(Challenge::TlsAlpn01),
            _ => None,
        }
    }
}

impl AcmeConfig {
    pub fn new(domains: Vec<String>) -> AcmeConfig {
        AcmeConfig {
            domains,
            emails: Vec::new(),
            directory: LETS_ENCRYPT.into(),
            root_certificate: None,
            check_interval: Duration::from_secs(12 * 3600),
            challenge: Challenge::Http01,
        }
    }
}

/// HTTP-01 key authorizations by token, while an order is in progress.
#[derive(Debug, Default)]
pub struct Challenges {
    tokens: RwLock<HashMap<String, String>>,
}

impl Challenges {
    /// The key authorization for `token`, if an order is waiting for it.
    pub fn get(&self, token: &str) -> Option<String> {
        self.tokens.read().get(token).cloned()
    }
    fn put(&self, token: String, key_authorization: String) {
        self.tokens.write().insert(token, key_authorization);
    }
    fn clear(&self) {
        self.tokens.write().clear();
    }
}

/// The running ACME manager.
pub struct Acme {
    pub resolver: Arc<CertResolver>,
    pub challenges: Arc<Challenges>,
    pub challenge: Challenge,
    task: tokio::task::JoinHandle<()>,
}

impl Acme {
    pub fn stop(&self) {
        self.task.abort();
    }
}

struct Store {
    dir: PathBuf,
}

impl Store {
    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Writes a private file atomically (temporary file, 0600, rename).
    fn write(&self, name: &str, data: &[u8]) -> std::io::Result<()> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let tmp = self.path(&format!(".{name}.tmp"));
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
        std::fs::rename(&tmp, self.path(name))
    }

    fn read(&self, name: &str) -> Option<Vec<u8>> {
        std::fs::read(self.path(name)).ok()
    }
}

/// The stored certificate: the key to serve, when it stops being young enough, its names.
struct Stored {
    key: rustls::sign::CertifiedKey,
    renew_at: SystemTime,
    not_after: SystemTime,
}

/// What a stored certificate was ordered for: the directory and the names.
fn order_key(config: &AcmeConfig) -> String {
    format!("{}\n{}\n", config.directory, config.domains.join(","))
}

fn load_stored(store: &Store, config: &AcmeConfig) -> Option<Stored> {
    if store.read("order")? != order_key(config).as_bytes() {
        return None;
    }
    let key = super::load_pem(&store.read("cert.pem")?, &store.read("key.pem")?).ok()?;
    let (not_before, not_after) = super::der::validity(key.cert.first()?)?;
    let life = not_after.duration_since(not_before).ok()?;
    Some(Stored {
        key,
        renew_at: not_before + life * 2 / 3,
        not_after,
    })
}

/// Loads a stored certificate (served at once) and starts the renewal task.
pub fn start(config: AcmeConfig, data_dir: &Path) -> Result<Acme, String> {
    let dir = data_dir.join("acme");
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let store = Store { dir };
    let stored = load_stored(&store, &config);
    let mut renew_at = None;
    let resolver = CertResolver::new(None);
    if let Some(s) = stored {
        tracing::info!(domains = ?config.domains, not_after = %crate::clock::rfc3339(s.not_after), "ACME: serving the stored certificate");
        renew_at = Some(s.renew_at);
        resolver.set(s.key);
    }
    let challenges = Arc::new(Challenges::default());
    let challenge = config.challenge;
    let task = tokio::spawn(run(
        config,
        store,
        resolver.clone(),
        challenges.clone(),
        renew_at,
    ));
    Ok(Acme {
        resolver,
        challenges,
        challenge,
        task,
    })
}

async fn run(
    config: AcmeConfig,
    store: Store,
    resolver: Arc<CertResolver>,
    challenges: Arc<Challenges>,
    mut renew_at: Option<SystemTime>,
) {
    let mut backoff = Duration::from_secs(5);
    loop {
        let due = renew_at.is_none_or(|t| SystemTime::now() >= t);
        if due {
            tracing::info!(domains = ?config.domains, directory = %config.directory, "ACME: ordering a certificate");
            let result = order(&config, &store, &challenges, &resolver).await;
            challenges.clear();
            resolver.clear_alpn_challenges();
            match result {
                Ok(s) => {
                    tracing::info!(domains = ?config.domains, not_after = %crate::clock::rfc3339(s.not_after), "ACME: new certificate installed");
                    renew_at = Some(s.renew_at);
                    resolver.set(s.key);
                    backoff = Duration::from_secs(5);
                }
                Err(e) => {
                    tracing::error!(domains = ?config.domains, "ACME: could not get a certificate: {e}; retrying in {}s", backoff.as_secs());
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(config.check_interval.max(Duration::from_secs(5)));
                    continue;
                }
            }
        }
        let wait = renew_at
            .and_then(|t| t.duration_since(SystemTime::now()).ok())
            .unwrap_or_default()
            .clamp(Duration::from_secs(1), config.check_interval);
        tokio::time::sleep(wait).await;
    }
}

async fn account(config: &AcmeConfig, store: &Store) -> Result<Account, String> {
    let builder = || match &config.root_certificate {
        Some(root) => Account::builder_with_root(root)
            .map_err(|e| format!("ACME root certificate {}: {e}", root.display())),
        None => Account::builder().map_err(|e| e.to_string()),
    };
    // An account belongs to one CA: a stored one for another directory is not used.
    let same_ca = store.read("account.directory").as_deref() == Some(config.directory.as_bytes());
    if let Some(saved) = store.read("account.json").filter(|_| same_ca) {
        match serde_json::from_slice::<AccountCredentials>(&saved) {
            Ok(creds) => {
                return builder()?
                    .from_credentials(creds)
                    .await
                    .map_err(|e| format!("stored ACME account: {e}"))
            }
            Err(e) => tracing::warn!("ACME: stored account unreadable ({e}); creating a new one"),
        }
    }
    let contact: Vec<String> = config
        .emails
        .iter()
        .map(|m| format!("mailto:{m}"))
        .collect();
    let contact: Vec<&str> = contact.iter().map(String::as_str).collect();
    let (account, creds) = builder()?
        .create(
            &NewAccount {
                contact: &contact,
                terms_of_service_agreed: true,
                only_return_existing: false,
            },
            config.directory.clone(),
            None,
        )
        .await
        .map_err(|e| format!("creating an ACME account at {}: {e}", config.directory))?;
    let json = serde_json::to_vec(&creds).map_err(|e| e.to_string())?;
    store
        .write("account.json", &json)
        .and_then(|()| store.write("account.directory", config.directory.as_bytes()))
        .map_err(|e| format!("saving the ACME account: {e}"))?;
    tracing::info!(id = %account.id(), "ACME: account created");
    Ok(account)
}

async fn order(
    config: &AcmeConfig,
    store: &Store,
    challenges: &Challenges,
    resolver: &CertResolver,
) -> Result<Stored, String> {
    let account = account(config, store).await?;
    let ids: Vec<Identifier> = config
        .domains
        .iter()
        .map(|d| Identifier::Dns(d.clone()))
        .collect();
    let mut order = account
        .new_order(&NewOrder::new(&ids))
        .await
        .map_err(|e| format!("new order: {e}"))?;
    let mut authorizations = order.authorizations();
    while let Some(result) = authorizations.next().await {
        let mut authz = result.map_err(|e| format!("authorization: {e}"))?;
        match authz.status {
            AuthorizationStatus::Pending => {}
            AuthorizationStatus::Valid => continue,
            other => return Err(format!("authorization is {other:?}")),
        }
        let kind = match config.challenge {
            Challenge::Http01 => ChallengeType::Http01,
            Challenge::TlsAlpn01 => ChallengeType::TlsAlpn01,
        };
        let mut challenge = authz
            .challenge(kind.clone())
            .ok_or_else(|| format!("the CA offers no {kind:?} challenge"))?;
        match config.challenge {
            Challenge::Http01 => challenges.put(
                challenge.token.clone(),
                challenge.key_authorization().as_str().to_owned(),
            ),
            Challenge::TlsAlpn01 => {
                let domain = challenge.identifier().to_string();
                let digest = challenge.key_authorization().digest();
                let key = super::alpn_challenge_cert(&domain, digest.as_ref())?;
                resolver.set_alpn_challenge(&domain, key);
            }
        }
        challenge
            .set_ready()
            .await
            .map_err(|e| format!("challenge: {e}"))?;
    }
    let retries = RetryPolicy::new().timeout(Duration::from_secs(90));
    let status = order
        .poll_ready(&retries)
        .await
        .map_err(|e| format!("waiting for validation: {e}"))?;
    if status != OrderStatus::Ready {
        return Err(format!("the order is {status:?} after validation"));
    }
    let key_pem = order
        .finalize()
        .await
        .map_err(|e| format!("finalize: {e}"))?;
    let chain_pem = order
        .poll_certificate(&retries)
        .await
        .map_err(|e| format!("certificate: {e}"))?;
    let key = super::load_pem(chain_pem.as_bytes(), key_pem.as_bytes())?;
    let save = |name: &str, data: &[u8]| {
        store
            .write(name, data)
            .map_err(|e| format!("saving {name}: {e}"))
    };
    save("key.pem", key_pem.as_bytes())?;
    save("cert.pem", chain_pem.as_bytes())?;
    save("order", order_key(config).as_bytes())?;
    let leaf = key.cert.first().ok_or("empty chain")?;
    let (not_before, not_after) =
        super::der::validity(leaf).ok_or("the certificate's validity is unreadable")?;
    let life = not_after
        .duration_since(not_before)
        .map_err(|_| "the certificate expires before it starts")?;
    Ok(Stored {
        key,
        renew_at: not_before + life * 2 / 3,
        not_after,
    })
}
