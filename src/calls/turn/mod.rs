//! The built-in TURN relay (RFC 8656, formerly RFC 5766): Allocate, Refresh,
//! CreatePermission, ChannelBind, Send/Data indications and ChannelData, relaying over UDP;
//! clients reach it over UDP or TCP (RFC 6062 framing on the stream; relaying to peers over
//! TCP, RFC 6062 Connect, is not offered). The same UDP socket answers STUN Binding requests.
//!
//! - `auth`: REST credentials (`expiry:userid`, coturn's `static-auth-secret`) and stateless
//!   nonces;
//! - `server`: the allocation table and the request handling, synchronous (short locks, no
//!   await under them);
//! - `io`: the sockets — the listening UDP socket, the TCP listener and its connections, one
//!   UDP relay socket per allocation — and the sweeper that expires allocations, permissions
//!   and channels.
//!
//! Peers are checked by [`super::peer_filter`] on every path: the relay is never open.

pub mod auth;
pub mod batch;
pub mod cli;
pub mod io;
pub mod server;

use std::net::{IpAddr, SocketAddr};

/// `calls.turn` in the router worker's config (CLI: `--turn` and the `--turn-*` flags).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TurnConfig {
    /// UDP address for TURN and STUN (default 0.0.0.0:3478).
    pub listen: SocketAddr,
    /// TCP address for clients over TCP (default: the UDP address); none: no TCP.
    pub tcp_listen: Option<SocketAddr>,
    /// The local address relay sockets bind to (default: the listen address, or the
    /// address of the default route when that is unspecified).
    pub relay_ip: Option<IpAddr>,
    /// The public address behind a 1:1 NAT, advertised in XOR-RELAYED-ADDRESS and in the
    /// `turn:` URIs while sockets bind locally.
    pub external_ip: Option<IpAddr>,
    /// Host name in the `turn:` URIs handed to browsers (default: external IP, else relay IP).
    pub host: Option<String>,
    /// Relay port range, inclusive (default 49152–65535).
    pub min_port: u16,
    pub max_port: u16,
    /// Realm of the long-term credentials (default "switchboard").
    pub realm: String,
    /// Allocations one user id may hold at once (default 10).
    pub user_quota: u32,
    /// Allocations in total (default 1000).
    pub total_quota: u32,
    /// Bytes per second one allocation may relay, both directions together, as a token bucket
    /// of one second's worth (default 1,000,000 = 8 Mbit/s; 0: unlimited).
    pub max_bps: u64,
    /// Allocation lifetime when the client asks for none or less (default 600 s).
    pub default_lifetime: u32,
    /// The longest lifetime granted (default 3600 s).
    pub max_lifetime: u32,
    /// How long a nonce is good for (default 600 s; then 438 Stale Nonce).
    pub nonce_lifetime: u32,
    /// Tests only: let peers be on loopback (127.0.0.0/8, ::1). Logged as a warning.
    pub allow_loopback_peers: bool,
}

impl Default for TurnConfig {
    fn default() -> TurnConfig {
        TurnConfig {
            listen: SocketAddr::from(([0, 0, 0, 0], 3478)),
            tcp_listen: Some(SocketAddr::from(([0, 0, 0, 0], 3478))),
            relay_ip: None,
            external_ip: None,
            host: None,
            min_port: 49152,
            max_port: 65535,
            realm: "switchboard".into(),
            user_quota: 10,
            total_quota: 1000,
            max_bps: 1_000_000,
            default_lifetime: 600,
            max_lifetime: 3600,
            nonce_lifetime: 600,
            allow_loopback_peers: false,
        }
    }
}

/// Where `turns:` is offered: a host name the web listener's certificate is for, and that
/// listener's port. Browsers verify the name, so an address alone gets no `turns:` URI.
#[derive(Clone, Debug, PartialEq)]
pub struct TurnsAt {
    pub name: String,
    pub port: u16,
}

impl TurnsAt {
    /// From the relay's configured host (when it is a name) or else the first ACME domain, and
    /// the port of a TLS listener with a fixed port.
    pub fn find(
        turn_host: Option<&str>,
        acme_domains: &[String],
        tls_port: Option<u16>,
    ) -> Option<TurnsAt> {
        let name = turn_host
            .filter(|h| h.parse::<std::net::IpAddr>().is_err() && !h.starts_with('['))
            .or(acme_domains.first().map(String::as_str))?;
        let port = tls_port.filter(|p| *p != 0)?;
        Some(TurnsAt {
            name: name.to_owned(),
            port,
        })
    }
}

/// The `turn:` (and, if none is configured, `stun:`) URIs to hand out for a relay reachable at
/// `host` on `udp_port` (and `tcp_port`), and `turns:` where it is offered, added to `uris`
/// unless it already names a TURN server (then the operator chose).
pub fn add_ice_uris(
    uris: &mut Vec<String>,
    host: &str,
    udp_port: u16,
    tcp_port: Option<u16>,
    turns: Option<&TurnsAt>,
) {
    if uris
        .iter()
        .any(|u| u.starts_with("turn:") || u.starts_with("turns:"))
    {
        return;
    }
    let host = if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]")
    } else {
        host.to_owned()
    };
    if !uris.iter().any(|u| u.starts_with("stun:")) {
        uris.push(format!("stun:{host}:{udp_port}"));
    }
    uris.push(format!("turn:{host}:{udp_port}?transport=udp"));
    if let Some(p) = tcp_port {
        uris.push(format!("turn:{host}:{p}?transport=tcp"));
    }
    if let Some(t) = turns {
        uris.push(format!("turns:{}:{}?transport=tcp", t.name, t.port));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ice_uris_are_added_unless_configured() {
        let mut u = vec![];
        let turns = TurnsAt::find(Some("turn.example.com"), &[], Some(443));
        add_ice_uris(&mut u, "turn.example.com", 3478, Some(3478), turns.as_ref());
        assert_eq!(
            u,
            [
                "stun:turn.example.com:3478",
                "turn:turn.example.com:3478?transport=udp",
                "turn:turn.example.com:3478?transport=tcp",
                "turns:turn.example.com:443?transport=tcp"
            ]
        );
        let mut u = vec!["stun:s:1".to_owned()];
        add_ice_uris(&mut u, "2001:db8::1", 3478, None, None);
        assert_eq!(u, ["stun:s:1", "turn:[2001:db8::1]:3478?transport=udp"]);
        let mut u = vec!["turn:other:3478".to_owned()];
        add_ice_uris(&mut u, "h", 1, Some(1), turns.as_ref());
        assert_eq!(u, ["turn:other:3478"]);
    }

    #[test]
    fn turns_needs_a_name_and_a_tls_port() {
        let acme = ["chat.example.com".to_owned(), "www.example.com".to_owned()];
        let at = |name: &str, port| {
            Some(TurnsAt {
                name: name.into(),
                port,
            })
        };
        assert_eq!(
            TurnsAt::find(Some("relay.example.com"), &acme, Some(443)),
            at("relay.example.com", 443)
        );
        // An address is no name: the certificate's (ACME) name instead, or nothing.
        assert_eq!(
            TurnsAt::find(Some("203.0.113.5"), &acme, Some(8443)),
            at("chat.example.com", 8443)
        );
        assert_eq!(TurnsAt::find(Some("203.0.113.5"), &[], Some(443)), None);
        assert_eq!(TurnsAt::find(Some("[2001:db8::1]"), &[], Some(443)), None);
        assert_eq!(
            TurnsAt::find(None, &acme, Some(443)),
            at("chat.example.com", 443)
        );
        // No TLS listener, or one on a port chosen at bind time.
        assert_eq!(TurnsAt::find(None, &acme, None), None);
        assert_eq!(TurnsAt::find(None, &acme, Some(0)), None);
    }
}
