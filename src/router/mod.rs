//! Routing: the `Router` holds the realms; each `Realm` has a `Broker` (pub/sub) and a `Dealer`
//! (RPC). Realms, roles and permissions come in as `RouterConfig` data.
//!
//! Invariant: no `.await` while a routing lock is held; pushes to outboxes never block.

pub mod broker;
pub mod dealer;
pub mod history;
pub mod local;
pub mod meta;
pub mod peer;
pub mod realm;

use crate::config::RouterConfig;
use crate::metrics::exposition::RealmSnapshot;
use crate::metrics::{Counters, Metrics};
use realm::{Realm, RealmStats};
use std::collections::HashMap;
use std::sync::Arc;

/// A refusal the session reports as ERROR (or ABORT during HELLO) with a spec URI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteError {
    pub uri: &'static str,
    pub message: String,
}

impl RouteError {
    pub fn new(uri: &'static str, message: impl Into<String>) -> RouteError {
        RouteError {
            uri,
            message: message.into(),
        }
    }
}

pub struct Router {
    /// The realms by name: replaced as a whole when a reload adds or removes one.
    realms: arc_swap::ArcSwap<HashMap<String, Arc<Realm>>>,
    /// The config the router started with (limits, chat, calls); realms, roles and permissions
    /// are the realms' own, which `reload` replaces.
    pub config: RouterConfig,
    /// What the connection loops count (bytes, writes, slow consumers).
    pub counters: Arc<Counters>,
    /// Messages by type, authentication, chat and store figures (`/metrics`).
    pub metrics: Arc<Metrics>,
    /// Failed-authentication counters shared by every transport.
    pub throttle: crate::auth::throttle::Throttle,
    /// The built-in principal store (`switchboard user`), consulted after the config.
    pub principals: Option<crate::store::principals::Principals>,
    /// Router-internal sessions that call authenticators and authorizers, by (realm, role).
    local_clients: parking_lot::Mutex<HashMap<(String, String), Arc<local::LocalClient>>>,
    /// Where realms added by a reload write their event history.
    history_writer: Option<history::Writer>,
    /// One reload at a time.
    reloading: parking_lot::Mutex<()>,
}

/// What a reload did, for the log.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Reloaded {
    /// Realms whose roles and permissions were replaced.
    pub updated: Vec<String>,
    pub added: Vec<String>,
    /// Removed realms (their sessions were closed).
    pub removed: Vec<String>,
    /// Changes that take a restart; the running values stay.
    pub needs_restart: Vec<String>,
}

/// The role of router-internal sessions that are not permission-checked (Crossbar's name).
pub const TRUSTED_ROLE: &str = "trusted";

impl Router {
    pub fn new(config: RouterConfig) -> Arc<Router> {
        Self::with_principals(config, None)
    }

    pub fn with_principals(
        config: RouterConfig,
        principals: Option<crate::store::principals::Principals>,
    ) -> Arc<Router> {
        Self::with_store(config, principals, None)
    }

    /// A router backed by the data store: principals for authentication, and event history
    /// (its writer task starts here, so this needs a Tokio runtime when `history` is given).
    pub fn with_store(
        config: RouterConfig,
        principals: Option<crate::store::principals::Principals>,
        history: Option<crate::store::history::History>,
    ) -> Arc<Router> {
        let metrics = Arc::new(Metrics::default());
        let wants_history = config.realms.iter().any(|r| !r.history.is_empty());
        let writer = history.filter(|_| wants_history).map(|mut h| {
            h.time_flushes(metrics.flush_timer("history"));
            history::Writer::start(h)
        });
        let realms = config
            .realms
            .iter()
            .map(|r| {
                (
                    r.name.clone(),
                    Realm::with_history(
                        r.clone(),
                        writer.clone(),
                        metrics.clone(),
                        config.limits.session,
                    ),
                )
            })
            .collect();
        Arc::new(Router {
            realms: arc_swap::ArcSwap::from_pointee(realms),
            history_writer: writer,
            reloading: parking_lot::Mutex::new(()),
            config,
            counters: Arc::new(Counters::default()),
            metrics,
            throttle: Default::default(),
            principals,
            local_clients: Default::default(),
        })
    }

    pub fn realm(&self, name: &str) -> Option<Arc<Realm>> {
        self.realms.load().get(name).cloned()
    }

    /// Every realm, by name.
    pub fn realms(&self) -> Vec<Arc<Realm>> {
        let mut v: Vec<Arc<Realm>> = self.realms.load().values().cloned().collect();
        v.sort_by(|a, b| a.name().cmp(b.name()));
        v
    }

    pub fn realm_stats(&self) -> Vec<RealmStats> {
        self.realms().iter().map(|r| r.stats()).collect()
    }

    pub fn session_count(&self) -> usize {
        self.realms.load().values().map(|r| r.session_count()).sum()
    }

    /// Each realm's gauges for `/metrics` (borrowing from `realms`, see `Router::realms`).
    pub fn realm_snapshots(realms: &[Arc<Realm>]) -> Vec<RealmSnapshot<'_>> {
        realms
            .iter()
            .map(|r| {
                let stats = r.stats();
                RealmSnapshot {
                    name: r.name(),
                    sessions: r.session_mix(),
                    subscriptions: stats.subscriptions as u64,
                    registrations: stats.registrations as u64,
                    authorizer: &r.authorizer_counts,
                }
            })
            .collect()
    }

    /// Applies a new config's realms, roles and permissions (SIGHUP) without dropping a
    /// session: existing realms get the new rules at once (cached authorizer decisions are
    /// forgotten), new realms open, removed realms close their sessions. Limits and the chat
    /// and calls settings take a restart; they are named in `needs_restart`.
    pub fn reload(&self, new: &RouterConfig) -> Reloaded {
        let _one = self.reloading.lock();
        let mut out = Reloaded::default();
        let current = self.realms.load_full();
        let mut next: HashMap<String, Arc<Realm>> = HashMap::new();
        for rc in &new.realms {
            match current.get(&rc.name) {
                Some(realm) => {
                    if realm.config().history != rc.history {
                        out.needs_restart
                            .push(format!("realm '{}': store.event-history", rc.name));
                    }
                    realm.reconfigure(rc);
                    out.updated.push(rc.name.clone());
                    next.insert(rc.name.clone(), realm.clone());
                }
                None => {
                    let realm = Realm::with_history(
                        rc.clone(),
                        self.history_writer.clone(),
                        self.metrics.clone(),
                        self.config.limits.session,
                    );
                    out.added.push(rc.name.clone());
                    next.insert(rc.name.clone(), realm);
                }
            }
        }
        let chat_realm = self.config.chat.as_ref().map(|c| c.realm.as_str());
        let mut removed = Vec::new();
        for (name, realm) in current.iter() {
            if next.contains_key(name) {
                continue;
            }
            if Some(name.as_str()) == chat_realm {
                out.needs_restart
                    .push(format!("realm '{name}' (the chat service's) was removed"));
                next.insert(name.clone(), realm.clone());
            } else {
                out.removed.push(name.clone());
                removed.push(realm.clone());
            }
        }
        if new.limits.session != self.config.limits.session
            || new.limits.connections != self.config.limits.connections
        {
            out.needs_restart.push("limits".into());
        }
        if new.chat != self.config.chat {
            out.needs_restart.push("chat".into());
        }
        if new.calls != self.config.calls {
            out.needs_restart.push("calls".into());
        }
        self.realms.store(Arc::new(next));
        self.local_clients
            .lock()
            .retain(|(realm, _), _| !out.removed.contains(realm));
        for realm in removed {
            realm.close_all(
                crate::wamp::uris::CLOSE_SYSTEM_SHUTDOWN,
                "the realm was removed from the configuration",
            );
        }
        out.updated.sort();
        out.added.sort();
        out.removed.sort();
        out
    }

    /// The router-internal session acting as `role` in `realm` (created on first use; needs a
    /// Tokio runtime). It is trusted unless `role` is one of the realm's configured roles.
    pub fn local_client(&self, realm: &str, role: Option<&str>) -> Option<Arc<local::LocalClient>> {
        let r = self.realm(realm)?;
        let role = role.unwrap_or(TRUSTED_ROLE);
        let mut map = self.local_clients.lock();
        let key = (realm.to_owned(), role.to_owned());
        if let Some(c) = map.get(&key) {
            return Some(c.clone());
        }
        let trusted = !r.has_role(role);
        let c = local::LocalClient::attach(r.clone(), local::internal_principal(role), trusted);
        map.insert(key, c.clone());
        Some(c)
    }

    /// A router-internal session of its own (not shared with other users of `local_client`),
    /// e.g. for a component whose subscriptions must not mix with anyone else's. It leaves the
    /// realm when dropped. Trusted unless `role` is one of the realm's configured roles.
    pub fn new_local_client(
        &self,
        realm: &str,
        role: Option<&str>,
    ) -> Option<Arc<local::LocalClient>> {
        let r = self.realm(realm)?;
        let role = role.unwrap_or(TRUSTED_ROLE);
        let trusted = !r.has_role(role);
        Some(local::LocalClient::attach(
            r.clone(),
            local::internal_principal(role),
            trusted,
        ))
    }

    /// Whether any role of any realm has a dynamic authorizer.
    pub fn has_authorizers(&self) -> bool {
        self.realms.load().values().any(|r| r.has_authorizers())
    }
}
