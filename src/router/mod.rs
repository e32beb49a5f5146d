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
    realms: HashMap<String, Arc<Realm>>,
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
            realms,
            config,
            counters: Arc::new(Counters::default()),
            metrics,
            throttle: Default::default(),
            principals,
            local_clients: Default::default(),
        })
    }

    pub fn realm(&self, name: &str) -> Option<&Arc<Realm>> {
        self.realms.get(name)
    }

    pub fn realm_stats(&self) -> Vec<RealmStats> {
        let mut v: Vec<RealmStats> = self.realms.values().map(|r| r.stats()).collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }

    pub fn session_count(&self) -> usize {
        self.realms.values().map(|r| r.session_count()).sum()
    }

    /// Each realm's gauges for `/metrics`, by name.
    pub fn realm_snapshots(&self) -> Vec<RealmSnapshot<'_>> {
        let mut v: Vec<RealmSnapshot> = self
            .realms
            .values()
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
            .collect();
        v.sort_by(|a, b| a.name.cmp(b.name));
        v
    }

    /// The router-internal session acting as `role` in `realm` (created on first use; needs a
    /// Tokio runtime). It is trusted unless `role` is one of the realm's configured roles.
    pub fn local_client(&self, realm: &str, role: Option<&str>) -> Option<Arc<local::LocalClient>> {
        let r = self.realms.get(realm)?;
        let role = role.unwrap_or(TRUSTED_ROLE);
        let mut map = self.local_clients.lock();
        let key = (realm.to_owned(), role.to_owned());
        if let Some(c) = map.get(&key) {
            return Some(c.clone());
        }
        let trusted = !r.config.roles.iter().any(|x| x.name == role);
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
        let r = self.realms.get(realm)?;
        let role = role.unwrap_or(TRUSTED_ROLE);
        let trusted = !r.config.roles.iter().any(|x| x.name == role);
        Some(local::LocalClient::attach(
            r.clone(),
            local::internal_principal(role),
            trusted,
        ))
    }

    /// Whether any role of any realm has a dynamic authorizer.
    pub fn has_authorizers(&self) -> bool {
        self.config
            .realms
            .iter()
            .any(|r| r.roles.iter().any(|x| x.authorizer.is_some()))
    }
}
