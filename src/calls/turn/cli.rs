//! The relay's command-line flags (`--turn`, `--turn-*`), flattened into the binary's CLI.
//! They apply on top of a config file's `calls.turn` too (any `--turn-*` flag turns the relay
//! on).

use super::TurnConfig;
use crate::calls::CallsConfig;
use std::net::{IpAddr, SocketAddr};

#[derive(clap::Args, Debug, Default, Clone)]
pub struct TurnArgs {
    /// Run the built-in TURN relay (and STUN) on UDP and TCP 0.0.0.0:3478.
    #[arg(long)]
    pub turn: bool,
    /// UDP address of the TURN relay (STUN is answered there too).
    #[arg(long, value_name = "ADDR")]
    pub turn_listen: Option<SocketAddr>,
    /// TCP address for TURN clients over TCP (default: the UDP address).
    #[arg(long, value_name = "ADDR")]
    pub turn_tcp_listen: Option<SocketAddr>,
    /// Relay port range, LOW-HIGH (default 49152-65535).
    #[arg(long, value_name = "LOW-HIGH", value_parser = parse_range)]
    pub turn_relay_ports: Option<(u16, u16)>,
    /// Public IP behind a 1:1 NAT, advertised as the relayed address.
    #[arg(long, value_name = "IP")]
    pub turn_external_ip: Option<IpAddr>,
    /// Local IP the relay sockets bind to (default: the listen IP or the default route's).
    #[arg(long, value_name = "IP")]
    pub turn_relay_ip: Option<IpAddr>,
    /// Host name in the turn: URIs handed to browsers.
    #[arg(long, value_name = "HOST")]
    pub turn_host: Option<String>,
    /// Shared secret of the REST credentials (coturn's static-auth-secret; default: random
    /// per start, which suits the built-in relay alone).
    #[arg(long, value_name = "SECRET", env = "SWITCHBOARD_TURN_SECRET")]
    pub turn_secret: Option<String>,
    /// Realm of the long-term credentials.
    #[arg(long, value_name = "REALM")]
    pub turn_realm: Option<String>,
    /// Allocations per user at once (default 10).
    #[arg(long, value_name = "N")]
    pub turn_user_quota: Option<u32>,
    /// Allocations in total (default 1000).
    #[arg(long, value_name = "N")]
    pub turn_total_quota: Option<u32>,
    /// Bytes per second per allocation (default 1000000; 0: unlimited).
    #[arg(long, value_name = "BYTES")]
    pub turn_max_bps: Option<u64>,
    /// TESTS ONLY: allow relaying to loopback peers (127.0.0.0/8, ::1).
    #[arg(long)]
    pub turn_allow_loopback_peers: bool,
}

fn parse_range(s: &str) -> Result<(u16, u16), String> {
    let (a, b) = s
        .split_once('-')
        .ok_or("expected LOW-HIGH, e.g. 49152-65535")?;
    let (a, b): (u16, u16) = (
        a.trim().parse().map_err(|_| "LOW is not a port")?,
        b.trim().parse().map_err(|_| "HIGH is not a port")?,
    );
    if a == 0 || a > b {
        return Err("expected 1 <= LOW <= HIGH".into());
    }
    Ok((a, b))
}

impl TurnArgs {
    fn any(&self) -> bool {
        self.turn
            || self.turn_listen.is_some()
            || self.turn_tcp_listen.is_some()
            || self.turn_relay_ports.is_some()
            || self.turn_external_ip.is_some()
            || self.turn_relay_ip.is_some()
            || self.turn_host.is_some()
            || self.turn_realm.is_some()
            || self.turn_user_quota.is_some()
            || self.turn_total_quota.is_some()
            || self.turn_max_bps.is_some()
            || self.turn_allow_loopback_peers
    }

    /// Applies the flags to `calls`.
    pub fn apply(self, calls: &mut CallsConfig) {
        if let Some(s) = self.turn_secret.clone() {
            calls.turn_secret = Some(crate::config::Secret(s));
        }
        if !self.any() {
            return;
        }
        let t = calls.turn.get_or_insert_with(TurnConfig::default);
        if let Some(a) = self.turn_listen {
            t.listen = a;
            if self.turn_tcp_listen.is_none() {
                t.tcp_listen = Some(a);
            }
        }
        if let Some(a) = self.turn_tcp_listen {
            t.tcp_listen = Some(a);
        }
        if let Some((lo, hi)) = self.turn_relay_ports {
            t.min_port = lo;
            t.max_port = hi;
        }
        t.external_ip = self.turn_external_ip.or(t.external_ip);
        t.relay_ip = self.turn_relay_ip.or(t.relay_ip);
        t.host = self.turn_host.or(t.host.take());
        if let Some(r) = self.turn_realm {
            t.realm = r;
        }
        if let Some(n) = self.turn_user_quota {
            t.user_quota = n;
        }
        if let Some(n) = self.turn_total_quota {
            t.total_quota = n;
        }
        if let Some(n) = self.turn_max_bps {
            t.max_bps = n;
        }
        t.allow_loopback_peers |= self.turn_allow_loopback_peers;
        if calls.turn_secret.is_none() {
            let r: [u8; 24] = rand::random();
            calls.turn_secret = Some(crate::config::Secret(hex::encode(r)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("49152-65535"), Ok((49152, 65535)));
        assert!(parse_range("5-4").is_err());
        assert!(parse_range("0-4").is_err());
        assert!(parse_range("x").is_err());
    }

    #[test]
    fn flags_turn_the_relay_on_with_a_secret() {
        let mut c = CallsConfig::default();
        TurnArgs::default().apply(&mut c);
        assert!(c.turn.is_none());
        TurnArgs {
            turn_listen: Some("127.0.0.1:3479".parse().unwrap()),
            turn_allow_loopback_peers: true,
            ..Default::default()
        }
        .apply(&mut c);
        let t = c.turn.unwrap();
        assert_eq!(t.tcp_listen, Some("127.0.0.1:3479".parse().unwrap()));
        assert!(t.allow_loopback_peers);
        assert!(c.turn_secret.is_some());
    }
}
