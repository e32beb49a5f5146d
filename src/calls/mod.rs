//! Calls from a chat: the STUN server, and time-limited TURN credentials in the common REST
//! form (coturn's `static-auth-secret`), so browsers can reach each other through NAT. The
//! signalling itself travels through the chat service (`switchboard.chat.signal`). The TURN
//! relay (`turn`) is built in; `peer_filter` keeps it from relaying into private networks.

pub mod credentials;
pub mod peer_filter;
pub mod stun;
pub mod turn;

use std::net::SocketAddr;

/// `calls` in the router worker's config.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct CallsConfig {
    /// UDP address of the STUN server (none: no STUN server).
    pub stun_listen: Option<SocketAddr>,
    /// ICE server URIs handed to browsers (`stun:HOST:PORT`, `turn:HOST:PORT?transport=udp`).
    pub ice_uris: Vec<String>,
    /// Shared secret for TURN REST credentials (coturn's `static-auth-secret`); none: no TURN
    /// credentials are handed out.
    pub turn_secret: Option<crate::config::Secret>,
    /// Lifetime of handed-out TURN credentials, in seconds.
    pub credential_ttl: u64,
    /// The built-in TURN relay, if enabled (needs `turn_secret`).
    pub turn: Option<turn::TurnConfig>,
}
