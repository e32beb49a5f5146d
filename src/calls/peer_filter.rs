//! Which peers the TURN relay may talk to. A relay that forwards to any address is an open
//! proxy into the server's own network (loopback admin ports, cloud metadata at
//! 169.254.169.254, the LAN): every CreatePermission, ChannelBind, Send indication and
//! ChannelData goes through [`check`], on every client transport.
//!
//! The list is eturnal's "recommended" deny list plus `0.0.0.0/8` and `::/128`
//! (CVE-2020-26262) and with IPv6 forms that carry an IPv4 address — mapped `::ffff:a.b.c.d`
//! (CVE-2026-27624), IPv4-compatible `::a.b.c.d`, NAT64 `64:ff9b::/96` and 6to4 `2002::/16` —
//! judged by the IPv4 address inside.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Why a peer address is refused (a bounded metrics label).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Denied {
    Loopback,
    /// `0.0.0.0/8`, `::`.
    Unspecified,
    /// RFC 1918, CGNAT `100.64.0.0/10`, unique local `fc00::/7`, site-local `fec0::/10`,
    /// local-use NAT64 `64:ff9b:1::/48`.
    Private,
    LinkLocal,
    Multicast,
    Broadcast,
    /// `192.0.2.0/24`, `198.51.100.0/24`, `203.0.113.0/24`, `2001:db8::/32`, `3fff::/20`.
    Documentation,
    /// Everything else not globally routable: `192.0.0.0/24`, `192.88.99.0/24`,
    /// `198.18.0.0/15`, `240.0.0.0/4`, `::/8` left-overs, `100::/64`, `2001::/23`, `5f00::/16`.
    Reserved,
}

impl Denied {
    pub const ALL: [Denied; 8] = [
        Denied::Loopback,
        Denied::Unspecified,
        Denied::Private,
        Denied::LinkLocal,
        Denied::Multicast,
        Denied::Broadcast,
        Denied::Documentation,
        Denied::Reserved,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Denied::Loopback => "loopback",
            Denied::Unspecified => "unspecified",
            Denied::Private => "private",
            Denied::LinkLocal => "link_local",
            Denied::Multicast => "multicast",
            Denied::Broadcast => "broadcast",
            Denied::Documentation => "documentation",
            Denied::Reserved => "reserved",
        }
    }
}

/// `Err(reason)` if the relay must not talk to `ip`. `allow_loopback` (tests only) admits
/// `127.0.0.0/8` and `::1`, in any of their IPv6 spellings; nothing else.
pub fn check(ip: IpAddr, allow_loopback: bool) -> Result<(), Denied> {
    let r = match ip {
        IpAddr::V4(v4) => v4_reason(v4),
        IpAddr::V6(v6) => v6_reason(v6),
    };
    match r {
        None => Ok(()),
        Some(Denied::Loopback) if allow_loopback => Ok(()),
        Some(d) => Err(d),
    }
}

fn in_v4(ip: u32, net: [u8; 4], prefix: u32) -> bool {
    let net = u32::from_be_bytes(net);
    let mask = if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - prefix)
    };
    ip & mask == net & mask
}

fn v4_reason(ip: Ipv4Addr) -> Option<Denied> {
    let a = u32::from(ip);
    let table: [([u8; 4], u32, Denied); 16] = [
        ([255, 255, 255, 255], 32, Denied::Broadcast),
        ([0, 0, 0, 0], 8, Denied::Unspecified),
        ([127, 0, 0, 0], 8, Denied::Loopback),
        ([10, 0, 0, 0], 8, Denied::Private),
        ([172, 16, 0, 0], 12, Denied::Private),
        ([192, 168, 0, 0], 16, Denied::Private),
        ([100, 64, 0, 0], 10, Denied::Private),
        ([169, 254, 0, 0], 16, Denied::LinkLocal),
        ([192, 0, 0, 0], 24, Denied::Reserved),
        ([192, 0, 2, 0], 24, Denied::Documentation),
        ([198, 51, 100, 0], 24, Denied::Documentation),
        ([203, 0, 113, 0], 24, Denied::Documentation),
        ([192, 88, 99, 0], 24, Denied::Reserved),
        ([198, 18, 0, 0], 15, Denied::Reserved),
        ([224, 0, 0, 0], 4, Denied::Multicast),
        ([240, 0, 0, 0], 4, Denied::Reserved),
    ];
    table
        .iter()
        .find(|(net, p, _)| in_v4(a, *net, *p))
        .map(|(_, _, d)| *d)
}

fn in_v6(ip: u128, net: [u16; 8], prefix: u32) -> bool {
    let net = u128::from(Ipv6Addr::from(net));
    let mask = if prefix == 0 {
        0
    } else {
        u128::MAX << (128 - prefix)
    };
    ip & mask == net & mask
}

fn v6_reason(ip: Ipv6Addr) -> Option<Denied> {
    let a = u128::from(ip);
    let low32 = Ipv4Addr::from((a & 0xffff_ffff) as u32);
    if ip.is_unspecified() {
        return Some(Denied::Unspecified);
    }
    if ip.is_loopback() {
        return Some(Denied::Loopback);
    }
    // Forms that carry an IPv4 address: judged by it (and never less than reserved when the
    // form itself is obsolete).
    if in_v6(a, [0, 0, 0, 0, 0, 0xffff, 0, 0], 96) {
        return v4_reason(low32); // IPv4-mapped
    }
    if in_v6(a, [0x64, 0xff9b, 0, 0, 0, 0, 0, 0], 96) {
        return v4_reason(low32); // NAT64 well-known prefix
    }
    if in_v6(a, [0, 0, 0, 0, 0, 0, 0, 0], 96) {
        return Some(v4_reason(low32).unwrap_or(Denied::Reserved)); // IPv4-compatible
    }
    if in_v6(a, [0x2002, 0, 0, 0, 0, 0, 0, 0], 16) {
        let inner = Ipv4Addr::from(((a >> 80) & 0xffff_ffff) as u32);
        return v4_reason(inner); // 6to4
    }
    let table: [([u16; 8], u32, Denied); 11] = [
        ([0x64, 0xff9b, 1, 0, 0, 0, 0, 0], 48, Denied::Private),
        ([0, 0, 0, 0, 0, 0, 0, 0], 8, Denied::Reserved),
        ([0x100, 0, 0, 0, 0, 0, 0, 0], 64, Denied::Reserved),
        ([0x2001, 0xdb8, 0, 0, 0, 0, 0, 0], 32, Denied::Documentation),
        ([0x3fff, 0, 0, 0, 0, 0, 0, 0], 20, Denied::Documentation),
        ([0x2001, 0, 0, 0, 0, 0, 0, 0], 23, Denied::Reserved),
        ([0x5f00, 0, 0, 0, 0, 0, 0, 0], 16, Denied::Reserved),
        ([0xfc00, 0, 0, 0, 0, 0, 0, 0], 7, Denied::Private),
        ([0xfe80, 0, 0, 0, 0, 0, 0, 0], 10, Denied::LinkLocal),
        ([0xfec0, 0, 0, 0, 0, 0, 0, 0], 10, Denied::Private),
        ([0xff00, 0, 0, 0, 0, 0, 0, 0], 8, Denied::Multicast),
    ];
    let hit = table
        .iter()
        .find(|(net, p, _)| in_v6(a, *net, *p))
        .map(|(_, _, d)| *d);
    if hit.is_some() {
        return hit;
    }
    // Global unicast is 2000::/3; anything outside it is not (yet) a real peer.
    if in_v6(a, [0x2000, 0, 0, 0, 0, 0, 0, 0], 3) {
        None
    } else {
        Some(Denied::Reserved)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verdict(s: &str) -> Result<(), Denied> {
        check(s.parse().unwrap(), false)
    }

    #[test]
    fn public_addresses_pass() {
        for ok in [
            "1.1.1.1",
            "8.8.8.8",
            "93.184.216.34",
            "100.63.255.255",
            "100.128.0.0",
            "172.15.255.255",
            "172.32.0.0",
            "192.167.255.255",
            "192.169.0.0",
            "198.17.255.255",
            "198.20.0.0",
            "223.255.255.255",
            "11.0.0.1",
            "2606:4700:4700::1111",
            "2a00:1450:4001:80b::200e",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
            "2002:808:808::1",
        ] {
            assert_eq!(verdict(ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn every_denied_range_is_refused_with_its_reason() {
        use Denied::*;
        let cases: &[(&str, Denied)] = &[
            ("127.0.0.1", Loopback),
            ("127.255.255.254", Loopback),
            ("0.0.0.0", Unspecified),
            ("0.1.2.3", Unspecified),
            ("10.0.0.1", Private),
            ("10.255.255.255", Private),
            ("172.16.0.1", Private),
            ("172.31.255.255", Private),
            ("192.168.1.1", Private),
            ("100.64.0.1", Private),
            ("100.127.255.255", Private),
            ("169.254.169.254", LinkLocal),
            ("192.0.0.8", Reserved),
            ("192.0.2.1", Documentation),
            ("198.51.100.7", Documentation),
            ("203.0.113.9", Documentation),
            ("192.88.99.1", Reserved),
            ("198.18.0.1", Reserved),
            ("198.19.255.255", Reserved),
            ("224.0.0.1", Multicast),
            ("239.255.255.250", Multicast),
            ("240.0.0.1", Reserved),
            ("255.255.255.254", Reserved),
            ("255.255.255.255", Broadcast),
            ("::", Unspecified),
            ("::1", Loopback),
            ("::ffff:127.0.0.1", Loopback),
            ("::ffff:0.0.0.0", Unspecified),
            ("::ffff:10.1.2.3", Private),
            ("::ffff:169.254.169.254", LinkLocal),
            ("::ffff:255.255.255.255", Broadcast),
            ("::127.0.0.1", Loopback),
            ("::10.0.0.1", Private),
            ("::8.8.8.8", Reserved),
            ("::ffff:0:7f00:1", Reserved),
            ("64:ff9b::7f00:1", Loopback),
            ("64:ff9b::a00:1", Private),
            ("64:ff9b:1::1", Private),
            ("2002:7f00:1::1", Loopback),
            ("2002:c0a8:101::1", Private),
            ("100::1", Reserved),
            ("2001::1", Reserved),
            ("2001:2::1", Reserved),
            ("2001:db8::1", Documentation),
            ("3fff::1", Documentation),
            ("5f00::1", Reserved),
            ("fc00::1", Private),
            ("fd12:3456::1", Private),
            ("fe80::1", LinkLocal),
            ("febf::1", LinkLocal),
            ("fec0::1", Private),
            ("ff02::1", Multicast),
            ("ff0e::1", Multicast),
            ("4000::1", Reserved),
            ("e000::1", Reserved),
        ];
        for (ip, why) in cases {
            assert_eq!(verdict(ip), Err(*why), "{ip}");
        }
    }

    #[test]
    fn the_loopback_switch_admits_loopback_only() {
        let allow = |s: &str| check(s.parse().unwrap(), true);
        for ok in [
            "127.0.0.1",
            "127.1.2.3",
            "::1",
            "::ffff:127.0.0.1",
            "::127.0.0.1",
        ] {
            assert_eq!(allow(ok), Ok(()), "{ok}");
        }
        assert_eq!(allow("0.0.0.0"), Err(Denied::Unspecified));
        assert_eq!(allow("::"), Err(Denied::Unspecified));
        assert_eq!(allow("10.0.0.1"), Err(Denied::Private));
        assert_eq!(allow("fe80::1"), Err(Denied::LinkLocal));
        assert_eq!(allow("169.254.169.254"), Err(Denied::LinkLocal));
    }

    #[test]
    fn labels_are_distinct() {
        let mut l: Vec<_> = Denied::ALL.iter().map(|d| d.label()).collect();
        l.sort_unstable();
        l.dedup();
        assert_eq!(l.len(), Denied::ALL.len());
    }
}
