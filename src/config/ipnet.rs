//! IP networks as configs write them (`require_ip`): a single address, `ADDR/PREFIX`, or an
//! IPv4 `ADDR/NETMASK` (`192.168.1.0/255.255.255.0`, as Crossbar's examples do). Host bits are
//! ignored, so `192.168.1.1/24` is the network `192.168.1.0/24`.

use std::net::IpAddr;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IpNet {
    addr: IpAddr,
    prefix: u8,
}

impl IpNet {
    /// 127.0.0.0/8.
    pub fn loopback_v4() -> IpNet {
        IpNet {
            addr: IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 0)),
            prefix: 8,
        }
    }

    /// ::1/128.
    pub fn loopback_v6() -> IpNet {
        IpNet {
            addr: IpAddr::V6(std::net::Ipv6Addr::LOCALHOST),
            prefix: 128,
        }
    }

    pub fn parse(s: &str) -> Option<IpNet> {
        let (addr, mask) = match s.trim().split_once('/') {
            Some((a, m)) => (a.parse::<IpAddr>().ok()?, Some(m)),
            None => (s.trim().parse::<IpAddr>().ok()?, None),
        };
        let bits = match addr {
            IpAddr::V4(_) => 32,
            IpAddr::V6(_) => 128,
        };
        let prefix = match mask {
            None => bits,
            Some(m) => match (m.parse::<u8>(), addr, m.parse::<std::net::Ipv4Addr>()) {
                (Ok(p), _, _) if p <= bits => p,
                (Err(_), IpAddr::V4(_), Ok(netmask)) => {
                    let n = u32::from(netmask);
                    // A netmask is ones then zeros.
                    if n.leading_ones() + n.trailing_zeros() != 32 {
                        return None;
                    }
                    n.leading_ones() as u8
                }
                _ => return None,
            },
        };
        // Keep the network address only, so equal networks compare equal.
        let addr = match addr {
            IpAddr::V4(a) => IpAddr::V4((u32::from(a) & v4_mask(prefix)).into()),
            IpAddr::V6(a) => IpAddr::V6((u128::from(a) & v6_mask(prefix)).into()),
        };
        Some(IpNet { addr, prefix })
    }

    /// Whether `ip` is in this network (an IPv4-mapped IPv6 address counts as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

fn v4_mask(prefix: u8) -> u32 {
    u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0)
}

fn v6_mask(prefix: u8) -> u128 {
    u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn addresses_prefixes_and_netmasks() {
        let one = IpNet::parse("127.0.0.1").unwrap();
        assert!(one.contains(ip("127.0.0.1")));
        assert!(!one.contains(ip("127.0.0.2")));
        assert!(
            one.contains(ip("::ffff:127.0.0.1")),
            "IPv4-mapped IPv6 peers"
        );
        let lan = IpNet::parse("192.168.1.1/255.255.255.0").unwrap();
        assert_eq!(lan, IpNet::parse("192.168.1.0/24").unwrap());
        assert!(lan.contains(ip("192.168.1.200")));
        assert!(!lan.contains(ip("192.168.2.1")));
        let all = IpNet::parse("0.0.0.0/0").unwrap();
        assert!(all.contains(ip("8.8.8.8")));
        assert!(
            !all.contains(ip("::1")),
            "an IPv4 net holds no IPv6 address"
        );
        let v6 = IpNet::parse("fd00::/8").unwrap();
        assert!(v6.contains(ip("fd12::1")));
        assert!(!v6.contains(ip("fe80::1")));
        assert!(IpNet::parse("::1").unwrap().contains(ip("::1")));
        for bad in [
            "",
            "localhost",
            "10.0.0.0/33",
            "10.0.0.0/255.0.255.0",
            "::/129",
            "::/255.0.0.0",
            "10.0.0.0/x",
        ] {
            assert_eq!(IpNet::parse(bad), None, "{bad}");
        }
    }
}
