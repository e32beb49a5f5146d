//! Plain configuration data: realms, roles, permissions, limits, and the listeners with their
//! transports and authentication.
//!
//! Nothing here is hard-wired into routing: the router only ever sees a `RouterConfig`, the
//! transports a `ListenerConfig`. The zero-config development default is one such value
//! (`NodeConfig::development`); `crossbar::load` builds others from a Crossbar-style file.

pub mod crossbar;
mod exposure;
pub mod ipnet;

use crate::wamp::uri::MatchPolicy;
use crate::wamp::Serializer;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Everything a node runs: the router and where it listens.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    pub router: RouterConfig,
    pub listeners: Vec<ListenerConfig>,
    /// Topics whose events are POSTed to HTTP endpoints.
    pub webhooks: Vec<WebhookConfig>,
    /// Automatic certificates for listeners with `TlsSource::Acme`.
    pub acme: Option<crate::tls::acme::AcmeConfig>,
    /// A plain-HTTP listener that redirects to HTTPS (308) and answers ACME HTTP-01 challenges.
    pub http_redirect: Option<SocketAddr>,
}

/// Where a listener accepts connections.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Endpoint {
    Tcp(SocketAddr),
    Unix(PathBuf),
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Endpoint::Tcp(a) => write!(f, "tcp://{a}"),
            Endpoint::Unix(p) => write!(f, "unix://{}", p.display()),
        }
    }
}

/// How a listener accepts WAMP: which serializers, which authentication.
#[derive(Clone, Debug)]
pub struct WampEndpoint {
    pub serializers: Vec<Serializer>,
    pub auth: Arc<TransportAuth>,
    /// Browser origins allowed to open a WebSocket (`*` wildcards); `None`: any origin.
    pub allowed_origins: Option<Vec<String>>,
}

impl WampEndpoint {
    /// Whether a WebSocket upgrade with this `Origin` header may proceed. Requests without an
    /// Origin (non-browser clients) are always allowed; browsers always send one.
    pub fn origin_allowed(&self, origin: Option<&str>) -> bool {
        match (&self.allowed_origins, origin) {
            (None, _) | (_, None) => true,
            (Some(list), Some(o)) => list.iter().any(|p| glob_match(p, o)),
        }
    }
}

/// `*` matches any run of characters; everything else matches itself (ASCII case-insensitive).
fn glob_match(pattern: &str, text: &str) -> bool {
    let (p, t) = (pattern.to_ascii_lowercase(), text.to_ascii_lowercase());
    let parts: Vec<&str> = p.split('*').collect();
    if parts.len() == 1 {
        return p == t;
    }
    let mut rest = t.as_str();
    for (i, part) in parts.iter().enumerate() {
        if i == 0 {
            match rest.strip_prefix(part) {
                Some(r) => rest = r,
                None => return false,
            }
        } else if i == parts.len() - 1 {
            return rest.ends_with(part);
        } else {
            match rest.find(part) {
                Some(at) => rest = &rest[at + part.len()..],
                None => return false,
            }
        }
    }
    true
}

impl WampEndpoint {
    /// The development default's `/ws`: anonymous clients get role `anonymous` (everything);
    /// users of the built-in store (`switchboard user add NAME --role staff`) log in with SCRAM
    /// or WAMP-CRA.
    pub fn development() -> WampEndpoint {
        WampEndpoint {
            serializers: Serializer::ALL.to_vec(),
            auth: Arc::new(TransportAuth {
                scram: Some(HashMap::new()),
                wampcra: Some(HashMap::new()),
                ..TransportAuth::anonymous("anonymous")
            }),
            allowed_origins: None,
        }
    }

    /// The development default's `/chat`: website visitors (the chat widget) with visitor
    /// tokens, from any origin.
    pub fn development_visitors() -> WampEndpoint {
        WampEndpoint {
            serializers: Serializer::ALL.to_vec(),
            auth: Arc::new(TransportAuth {
                visitor: Some(crate::auth::visitor::VisitorAuth {
                    role: "visitor".into(),
                    hs256: None,
                    ed25519: None,
                }),
                ..TransportAuth::default()
            }),
            allowed_origins: None,
        }
    }
}

/// One listening socket. A plain WebSocket transport has `websocket` paths; a RawSocket one
/// has `rawsocket`; a universal one has both (told apart by the first byte).
#[derive(Clone, Debug)]
pub struct ListenerConfig {
    pub endpoint: Endpoint,
    /// WebSocket paths served on this listener; `*` accepts an upgrade on any path.
    pub websocket: Vec<(String, WampEndpoint)>,
    pub rawsocket: Option<WampEndpoint>,
    /// Serve the web UI and `/api/status` on this listener.
    pub web: bool,
    /// HTTP bridge paths (Crossbar's `publisher` and `caller` web paths), by URL path.
    pub bridge: Vec<(String, BridgeConfig)>,
    /// TLS on this listener (TCP only): `wss://`, `https://`, RawSocket over TLS.
    pub tls: Option<crate::tls::TlsSource>,
    /// Where this listener was configured (a config path, or "command line"), for errors.
    pub origin: String,
}

/// What an HTTP bridge path does with a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BridgeKind {
    /// `POST {"topic", "args", "kwargs", "options"}` → PUBLISH.
    Publisher,
    /// `POST {"procedure", "args", "kwargs"}` → CALL.
    Caller,
}

/// The key and secret a signed bridge request is computed with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BridgeKey {
    pub key: String,
    pub secret: Secret,
}

/// One HTTP bridge path: a router-internal session of `role` in `realm` publishes or calls
/// on behalf of HTTP clients, with that role's permissions.
#[derive(Clone, Debug)]
pub struct BridgeConfig {
    pub kind: BridgeKind,
    pub realm: String,
    pub role: String,
    /// When set, every request must be signed with it.
    pub signing: Option<BridgeKey>,
    /// Largest request body accepted (larger: 413).
    pub body_limit: usize,
    /// How far a signed request's timestamp may be from now; also how long a signature is
    /// remembered to refuse its replay. `None`: any timestamp (Crossbar's `0`).
    pub timestamp_window: Option<Duration>,
    /// Client addresses allowed; `None`: any.
    pub require_ip: Option<Vec<ipnet::IpNet>>,
    /// Only requests that came over TLS (a listener with `tls`).
    pub require_tls: bool,
    /// Log every request (never secrets or signatures).
    pub debug: bool,
    /// How long a bridged call may take before the client gets 504.
    pub call_timeout: Duration,
}

/// Events of `topics` in `realm` are POSTed as JSON to `url`.
#[derive(Clone, Debug)]
pub struct WebhookConfig {
    pub realm: String,
    /// The role its router-internal session subscribes as; `None`: the built-in `trusted`.
    pub role: Option<String>,
    pub topics: Vec<(String, MatchPolicy)>,
    /// `http://host[:port]/path`.
    pub url: String,
    /// Events that may wait for delivery; more are dropped (and counted).
    pub max_queue: usize,
    /// Attempts after the first failed one.
    pub retries: u32,
    /// Wait before the first retry; doubles each time up to `max_retry_delay`.
    pub retry_delay: Duration,
    pub max_retry_delay: Duration,
    /// How long one POST may take.
    pub timeout: Duration,
    /// Where it was configured, for logs and errors.
    pub origin: String,
}

/// Authentication accepted on a transport (Crossbar's `auth` section).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TransportAuth {
    /// Anonymous clients are admitted with this role.
    pub anonymous: Option<String>,
    /// WAMP-Ticket principals by authid (static).
    pub ticket: Option<HashMap<String, TicketPrincipal>>,
    /// WAMP-CRA users by authid (static).
    pub wampcra: Option<HashMap<String, CraUser>>,
    /// WAMP-Cryptosign principals by authid (static).
    pub cryptosign: Option<HashMap<String, CryptosignPrincipal>>,
    /// Website visitors (the chat widget): tickets are visitor tokens or app-signed JWTs.
    pub visitor: Option<crate::auth::visitor::VisitorAuth>,
    /// WAMP-SCRAM principals by authid (static; the built-in store is consulted too).
    pub scram: Option<HashMap<String, ScramPrincipal>>,
    /// Methods whose principals a dynamic authenticator decides, by method name
    /// (anonymous, ticket, wampcra, cryptosign, scram).
    pub dynamic: HashMap<String, DynamicAuth>,
}

/// A procedure that authenticates (Crossbar's `type: dynamic`): called as
/// `authenticator(realm, authid, details)` in `realm` by a router session with `role`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DynamicAuth {
    pub authenticator: String,
    /// `authenticator-realm`; the realm the client joins when absent.
    pub realm: Option<String>,
    /// `authenticator-role`: the role of the router session that calls the authenticator.
    pub role: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CryptosignPrincipal {
    pub role: String,
    /// Ed25519 public keys allowed to act as this principal.
    pub authorized_keys: Vec<[u8; 32]>,
    /// The only realm this principal may join, if set.
    pub realm: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScramPrincipal {
    pub role: String,
    pub credential: crate::auth::scram::Credential,
}

/// A secret from the config: compared, never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(…)")
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TicketPrincipal {
    pub ticket: Secret,
    pub role: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CraUser {
    pub secret: Secret,
    pub role: String,
    /// PBKDF2 parameters when the secret is salted.
    pub salt: Option<CraSalt>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CraSalt {
    pub salt: String,
    pub iterations: u32,
    pub keylen: u32,
}

impl TransportAuth {
    pub fn anonymous(role: &str) -> TransportAuth {
        TransportAuth {
            anonymous: Some(role.to_owned()),
            ..TransportAuth::default()
        }
    }
}

#[derive(Clone, Debug)]
pub struct RouterConfig {
    pub realms: Vec<RealmConfig>,
    pub limits: Limits,
    /// True for the zero-config development default (shown in status and warned about).
    pub dev_mode: bool,
    /// The built-in chat service, if enabled.
    pub chat: Option<crate::chat::ChatConfig>,
    /// STUN server and TURN credentials for calls.
    pub calls: crate::calls::CallsConfig,
}

#[derive(Clone, Debug)]
pub struct RealmConfig {
    pub name: String,
    pub roles: Vec<RoleConfig>,
    /// Topics whose last events are stored (Crossbar's `store.event-history`).
    pub history: Vec<HistoryRule>,
}

/// Keep the last `limit` events of each topic matching (uri, policy).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HistoryRule {
    pub uri: String,
    pub policy: MatchPolicy,
    pub limit: usize,
}

#[derive(Clone, Debug)]
pub struct RoleConfig {
    pub name: String,
    pub permissions: Vec<PermissionConfig>,
    /// A procedure in the realm that decides what static permissions do not grant.
    pub authorizer: Option<String>,
}

#[derive(Clone, Debug)]
pub struct PermissionConfig {
    pub uri: String,
    pub policy: MatchPolicy,
    pub allow: Allow,
    pub disclose: Disclose,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Allow {
    pub call: bool,
    pub register: bool,
    pub publish: bool,
    pub subscribe: bool,
}

impl Allow {
    pub const ALL: Allow = Allow {
        call: true,
        register: true,
        publish: true,
        subscribe: true,
    };
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Disclose {
    pub caller: bool,
    pub publisher: bool,
}

/// Limits, each with a documented default (see README "Limits").
#[derive(Clone, Debug)]
pub struct Limits {
    /// Largest WAMP message accepted, after reassembling fragments.
    pub max_message_size: usize,
    /// Bytes that may wait in one connection's outbound queue before it is cut off as slow.
    pub max_queue_bytes: usize,
    /// How often an idle peer is pinged; `None` turns keep-alive off.
    pub ping_interval: Option<Duration>,
    /// How long a ping may go unanswered before the peer is dropped.
    pub ping_timeout: Duration,
    /// How long a new connection may take to send HELLO.
    pub hello_timeout: Duration,
    /// How long outbound frames may wait to be written together (0: write at once). Trades a
    /// little latency for far fewer syscalls when many small events go to many subscribers.
    pub write_delay: Duration,
    /// How long a dynamic authenticator or authorizer may take before the router gives up
    /// (authentication fails, the action is denied).
    pub auth_timeout: Duration,
    /// What one session may hold (router-internal sessions are exempt).
    pub session: SessionLimits,
    /// How many connections the listeners accept, in all and from one address.
    pub connections: ConnectionLimits,
}

/// What one client session may hold, and how many topics a realm keeps. A request beyond a
/// limit gets `switchboard.error.limit_exceeded` naming the limit; nothing already held is lost.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionLimits {
    /// Subscriptions one session may hold.
    pub subscriptions: usize,
    /// Registrations one session may hold.
    pub registrations: usize,
    /// Calls one session may have waiting for their result.
    pub calls_in_flight: usize,
    /// Distinct subscriptions (topic, match policy) one realm keeps.
    pub topics_per_realm: usize,
}

impl Default for SessionLimits {
    fn default() -> Self {
        SessionLimits {
            subscriptions: 1_000,
            registrations: 1_000,
            calls_in_flight: 1_000,
            topics_per_realm: 1_000_000,
        }
    }
}

/// Connection caps applied at accept time: beyond them a WebSocket/HTTP client gets HTTP 503
/// and a RawSocket client the handshake error "maximum connection count reached".
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Open connections (HTTP, WebSocket and RawSocket) in all.
    pub total: usize,
    /// Open connections from one IP address (IPv6: one /64).
    pub per_address: usize,
    /// Addresses the per-address cap does not apply to (default loopback: a reverse proxy on
    /// the same host, or `switchboard bench`).
    pub unlimited: Vec<ipnet::IpNet>,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            total: 100_000,
            per_address: 1_000,
            unlimited: vec![ipnet::IpNet::loopback_v4(), ipnet::IpNet::loopback_v6()],
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_message_size: 1 << 20,
            max_queue_bytes: 1 << 20,
            ping_interval: Some(Duration::from_secs(30)),
            ping_timeout: Duration::from_secs(30),
            hello_timeout: Duration::from_secs(10),
            write_delay: Duration::ZERO,
            auth_timeout: Duration::from_secs(5),
            session: SessionLimits::default(),
            connections: ConnectionLimits::default(),
        }
    }
}

impl NodeConfig {
    /// The zero-config default on `listen`: WAMP at `/ws`, the web UI, development realm.
    pub fn development(listen: SocketAddr, limits: Limits) -> NodeConfig {
        NodeConfig {
            router: RouterConfig::development(limits),
            listeners: vec![ListenerConfig {
                endpoint: Endpoint::Tcp(listen),
                websocket: vec![
                    ("/ws".into(), WampEndpoint::development()),
                    ("/chat".into(), WampEndpoint::development_visitors()),
                ],
                rawsocket: None,
                web: true,
                bridge: Vec::new(),
                tls: None,
                origin: "--listen".into(),
            }],
            webhooks: Vec::new(),
            acme: None,
            http_redirect: None,
        }
    }
}

impl RouterConfig {
    /// The zero-config default: one realm `realm1` where anonymous clients may do everything
    /// (except inside the chat service's namespace, which it guards), with the chat service on
    /// (roles `visitor` and `staff`).
    pub fn development(limits: Limits) -> RouterConfig {
        let everything = || {
            vec![PermissionConfig {
                uri: String::new(),
                policy: MatchPolicy::Prefix,
                allow: Allow::ALL,
                disclose: Disclose::default(),
            }]
        };
        let role = |name: &str, permissions| RoleConfig {
            name: name.into(),
            permissions,
            authorizer: None,
        };
        RouterConfig {
            realms: vec![RealmConfig {
                name: "realm1".into(),
                roles: vec![
                    role("anonymous", everything()),
                    role("staff", everything()),
                    role("visitor", Vec::new()),
                ],
                history: Vec::new(),
            }],
            limits,
            dev_mode: true,
            chat: Some(crate::chat::ChatConfig::new(
                "realm1",
                crate::chat::Roles {
                    visitor: "visitor".into(),
                    staff: vec!["staff".into()],
                },
            )),
            calls: crate::calls::CallsConfig {
                credential_ttl: 86_400,
                ..Default::default()
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origin_patterns() {
        let e = WampEndpoint {
            allowed_origins: Some(vec![
                "https://*.example.com".into(),
                "http://localhost:8080".into(),
            ]),
            ..WampEndpoint::development()
        };
        assert!(e.origin_allowed(Some("https://shop.example.com")));
        assert!(e.origin_allowed(Some("HTTPS://Shop.Example.com")));
        assert!(e.origin_allowed(Some("http://localhost:8080")));
        assert!(!e.origin_allowed(Some("https://example.com.evil.net")));
        assert!(!e.origin_allowed(Some("http://localhost:8081")));
        assert!(e.origin_allowed(None), "non-browser clients send no Origin");
        assert!(WampEndpoint::development().origin_allowed(Some("https://anything")));
        assert!(glob_match("*", "x"));
        assert!(glob_match("a*b*c", "a123b45c"));
        assert!(!glob_match("a*b*c", "a123b45"));
    }
}
