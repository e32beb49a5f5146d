//! Connection caps at accept time: how many connections are open in all and from one address,
//! and how a connection beyond a cap is turned away — HTTP 503 with a reason for HTTP and
//! WebSocket clients, the RawSocket handshake error "maximum connection count reached".
//!
//! Counting is by address: IPv4 by the address, IPv6 by its /64 (one customer's prefix), so a
//! client cannot dodge the cap by cycling through the addresses of its own network.

use crate::config::ConnectionLimits;
use crate::metrics::Limit;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The open connections, counted in all and by address.
pub struct Admissions {
    limits: ConnectionLimits,
    total: AtomicUsize,
    by_address: Mutex<HashMap<IpAddr, usize>>,
}

/// One admitted connection; dropping it gives its place back.
pub struct Admission {
    admissions: Arc<Admissions>,
    /// The address it is counted under (none: exempt from the per-address cap).
    address: Option<IpAddr>,
}

impl Drop for Admission {
    fn drop(&mut self) {
        self.admissions.total.fetch_sub(1, Ordering::Relaxed);
        if let Some(a) = self.address {
            let mut map = self.admissions.by_address.lock();
            if let Some(n) = map.get_mut(&a) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    map.remove(&a);
                }
            }
        }
    }
}

/// The key an address is counted under: IPv4 (also IPv4-mapped IPv6) as is, IPv6 by its /64.
fn address_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => IpAddr::V6((u128::from(v6) & !((1u128 << 64) - 1)).into()),
        v4 => v4,
    }
}

impl Admissions {
    pub fn new(limits: ConnectionLimits) -> Arc<Admissions> {
        Arc::new(Admissions {
            limits,
            total: AtomicUsize::new(0),
            by_address: Mutex::new(HashMap::new()),
        })
    }

    /// Admits a connection from `peer` (none: a Unix socket), or names the cap it would break.
    pub fn admit(self: &Arc<Self>, peer: Option<IpAddr>) -> Result<Admission, Limit> {
        let before = self.total.fetch_add(1, Ordering::Relaxed);
        let mut admission = Admission {
            admissions: self.clone(),
            address: None,
        };
        if before >= self.limits.total {
            return Err(Limit::Connections);
        }
        let Some(ip) = peer.filter(|ip| !self.limits.unlimited.iter().any(|n| n.contains(*ip)))
        else {
            return Ok(admission);
        };
        let key = address_key(ip);
        let mut map = self.by_address.lock();
        let n = map.entry(key).or_default();
        if *n >= self.limits.per_address {
            return Err(Limit::ConnectionsPerAddress);
        }
        *n += 1;
        admission.address = Some(key);
        Ok(admission)
    }

    /// Connections admitted and still open.
    pub fn open(&self) -> usize {
        self.total.load(Ordering::Relaxed)
    }

    /// Why a connection was turned away, for the client.
    pub fn reason(&self, limit: Limit) -> String {
        match limit {
            Limit::ConnectionsPerAddress => format!(
                "too many connections from your address (at most {})",
                self.limits.per_address
            ),
            _ => format!(
                "the server is at its connection limit ({}); try again later",
                self.limits.total
            ),
        }
    }
}

/// How long a refused client gets to send its request or handshake before the socket closes
/// (reading it first avoids a reset that would swallow the refusal).
const REFUSAL_READ: Duration = Duration::from_secs(2);

/// Answers an HTTP (or WebSocket upgrade) request with 503 and `reason`, then closes.
pub async fn refuse_http<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
    mut stream: S,
    reason: &str,
) {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    let _ = tokio::time::timeout(REFUSAL_READ, async {
        while head.len() < 16 * 1024 && !head.windows(4).any(|w| w == b"\r\n\r\n") {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => head.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    let body = format!("{reason}\n");
    let response = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain; charset=utf-8\r\nretry-after: 10\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(response.as_bytes()).await;
    let _ = stream.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ipnet::IpNet;

    fn limits(total: usize, per_address: usize) -> ConnectionLimits {
        ConnectionLimits {
            total,
            per_address,
            unlimited: vec![IpNet::loopback_v4()],
        }
    }

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn per_address_cap_counts_ipv6_by_prefix_and_frees_on_drop() {
        let a = Admissions::new(limits(100, 2));
        let first = a.admit(ip("2001:db8::1")).unwrap();
        let _second = a.admit(ip("2001:db8::2")).unwrap();
        assert_eq!(
            a.admit(ip("2001:db8::ffff")).err(),
            Some(Limit::ConnectionsPerAddress)
        );
        // Another /64 and IPv4 have their own allowance; loopback is exempt.
        let _other = a.admit(ip("2001:db8:0:1::1")).unwrap();
        let _v4 = a.admit(ip("192.0.2.1")).unwrap();
        let _lo: Vec<_> = (0..5).map(|_| a.admit(ip("127.0.0.5")).unwrap()).collect();
        drop(first);
        assert!(a.admit(ip("2001:db8::3")).is_ok());
    }

    #[test]
    fn mapped_ipv4_counts_as_ipv4() {
        let a = Admissions::new(limits(100, 1));
        let _one = a.admit(ip("192.0.2.7")).unwrap();
        assert_eq!(
            a.admit(ip("::ffff:192.0.2.7")).err(),
            Some(Limit::ConnectionsPerAddress)
        );
    }

    #[test]
    fn total_cap_and_refusals_do_not_leak_places() {
        let a = Admissions::new(limits(2, 10));
        let one = a.admit(ip("192.0.2.1")).unwrap();
        let _two = a.admit(None).unwrap();
        for _ in 0..5 {
            assert_eq!(a.admit(ip("192.0.2.2")).err(), Some(Limit::Connections));
        }
        assert_eq!(a.open(), 2);
        drop(one);
        assert_eq!(a.open(), 1);
        assert!(a.admit(ip("192.0.2.2")).is_ok());
    }
}
