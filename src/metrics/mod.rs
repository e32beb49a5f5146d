//! Operational metrics: the live counters that the hot paths touch. `exposition` renders them,
//! with the gauges computed from the router's state at scrape time, for `/metrics`.
//!
//! A leaf: nothing here names the router, the transports or the HTTP layer. Counting on the
//! per-message paths is one relaxed atomic add into a fixed slot — no lock, no allocation, no
//! label lookup. Label sets are bounded by construction: WAMP message types, the known
//! authentication methods and refusal reasons, store names, and realm names from the config.
//!
//! One `Metrics` (and one `Counters`) per `Router`, not a process-wide global: each router
//! counts only its own traffic, so tests running several servers in one process see exact
//! figures.

pub mod exposition;

use crate::wamp::uris;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// Connection-level counters, updated by the connection loop (one per router).
#[derive(Default)]
pub struct Counters {
    /// Frames fully written to client sockets (WAMP messages and WebSocket control frames).
    pub messages_out: AtomicU64,
    /// Write syscalls on client sockets (messages_out / writes = frames per write).
    pub writes: AtomicU64,
    /// Bytes read from client sockets once the connection is WebSocket or RawSocket (framing
    /// included; the HTTP upgrade request and the RawSocket handshake are not).
    pub bytes_in: AtomicU64,
    /// Bytes written to client sockets (framing included).
    pub bytes_out: AtomicU64,
    /// Connections cut off because their outbound queue overflowed (`--max-queue-bytes`).
    pub slow_consumers: AtomicU64,
    /// Outbound frames never written (see `Outbox::dropped`), added when a connection ends.
    pub frames_dropped: AtomicU64,
}

impl Counters {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}

/// The slot of messages that could not be decoded (no WAMP message type is 0).
pub const UNDECODABLE: u64 = 0;
/// Slots 0..=70: every WAMP message type code fits (YIELD is 70).
const SLOTS: usize = 71;

/// A counter per WAMP message type, indexed by the type code.
pub struct MessageCounts([AtomicU64; SLOTS]);

impl Default for MessageCounts {
    fn default() -> MessageCounts {
        MessageCounts(std::array::from_fn(|_| AtomicU64::new(0)))
    }
}

impl MessageCounts {
    /// Adds `n` messages of type `code` (codes outside the table are ignored).
    #[inline]
    pub fn add(&self, code: u64, n: u64) {
        if let Some(slot) = usize::try_from(code).ok().and_then(|i| self.0.get(i)) {
            slot.fetch_add(n, Ordering::Relaxed);
        }
    }

    #[inline]
    pub fn count(&self, code: u64) {
        self.add(code, 1);
    }

    pub fn get(&self, code: u64) -> u64 {
        usize::try_from(code)
            .ok()
            .and_then(|i| self.0.get(i))
            .map_or(0, |s| s.load(Ordering::Relaxed))
    }

    /// All messages, every type and the undecodable ones.
    pub fn total(&self) -> u64 {
        self.0.iter().map(|s| s.load(Ordering::Relaxed)).sum()
    }
}

/// What a realm's dynamic authorizers did (kept by the realm, rendered with its name).
#[derive(Default)]
pub struct AuthorizerCounts {
    pub allowed: AtomicU64,
    pub denied: AtomicU64,
    /// Errors, answers of the wrong shape, timeouts, no authorizer registered.
    pub failed: AtomicU64,
    /// Decisions taken from the cache instead of calling the authorizer.
    pub cache_hits: AtomicU64,
}

impl AuthorizerCounts {
    pub fn answered(&self, allowed: bool) {
        let c = if allowed { &self.allowed } else { &self.denied };
        c.fetch_add(1, Ordering::Relaxed);
    }

    pub fn failed(&self) {
        self.failed.fetch_add(1, Ordering::Relaxed);
    }

    #[inline]
    pub fn cache_hit(&self) {
        self.cache_hits.fetch_add(1, Ordering::Relaxed);
    }
}

/// The authentication methods the router knows; anything else is counted as `other`.
pub const AUTH_METHODS: [&str; 5] = ["anonymous", "ticket", "wampcra", "cryptosign", "scram"];

/// The bounded label for an authentication method a client named.
pub fn auth_method_label(method: &str) -> &'static str {
    AUTH_METHODS
        .iter()
        .find(|m| **m == method)
        .copied()
        .unwrap_or("other")
}

/// Refused because of too many failed attempts (the throttle), before credentials were checked.
pub const THROTTLED: &str = "throttled";

/// The bounded label for an ABORT reason: the spec's URIs by their last part; anything else
/// (an error URI a dynamic authenticator raised) is `other`.
pub fn auth_reason_label(uri: &str) -> &'static str {
    match uri {
        uris::NOT_AUTHORIZED => "not_authorized",
        uris::NO_SUCH_PRINCIPAL => "no_such_principal",
        uris::AUTHENTICATION_FAILED => "authentication_failed",
        uris::NO_AUTH_METHOD => "no_auth_method",
        uris::INVALID_ARGUMENT => "invalid_argument",
        uris::NO_SUCH_ROLE => "no_such_role",
        uris::NO_SUCH_REALM => "no_such_realm",
        _ => "other",
    }
}

type StaticLabels<const N: usize> = [(&'static str, &'static str); N];

/// Times the flushes of one store (a histogram in seconds).
#[derive(Clone, Debug)]
pub struct FlushTimer(Histogram);

impl FlushTimer {
    /// A flush that began at `start` has just ended.
    pub fn done(&self, start: Instant) {
        self.0.observe(start.elapsed().as_secs_f64());
    }
}

fn flush_histogram() -> Histogram {
    Histogram::new([
        0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    ])
}

/// A limit that refused a request or a connection (`--max-*`, README "Limits").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Limit {
    Subscriptions = 0,
    Registrations = 1,
    CallsInFlight = 2,
    TopicsPerRealm = 3,
    Connections = 4,
    ConnectionsPerAddress = 5,
}

impl Limit {
    pub const ALL: [Limit; 6] = [
        Limit::Subscriptions,
        Limit::Registrations,
        Limit::CallsInFlight,
        Limit::TopicsPerRealm,
        Limit::Connections,
        Limit::ConnectionsPerAddress,
    ];

    /// The metric label, also the name used in error messages.
    pub fn label(self) -> &'static str {
        match self {
            Limit::Subscriptions => "subscriptions_per_session",
            Limit::Registrations => "registrations_per_session",
            Limit::CallsInFlight => "calls_in_flight_per_session",
            Limit::TopicsPerRealm => "topics_per_realm",
            Limit::Connections => "connections",
            Limit::ConnectionsPerAddress => "connections_per_address",
        }
    }
}

/// Who wrote a chat message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChatSender {
    Visitor = 0,
    Staff = 1,
}

/// The router's message, authentication, chat and store counters.
pub struct Metrics {
    /// WAMP messages received from client sessions, by type (after decoding; `UNDECODABLE`
    /// for those that could not be decoded). Router-internal sessions send none.
    pub messages_in: MessageCounts,
    /// WAMP messages queued for client sessions, by type: each EVENT delivery counts once per
    /// subscriber. Messages for router-internal sessions and frames refused because the
    /// connection was closing are not counted.
    pub messages_out: MessageCounts,
    auth_failures: Family<StaticLabels<2>, Counter>,
    chat_sent: [AtomicU64; 2],
    chat_acknowledged: [AtomicU64; 2],
    limit_refusals: [AtomicU64; 6],
    store_flush: Family<StaticLabels<1>, Histogram, fn() -> Histogram>,
    /// The TURN relay's counters.
    pub turn: TurnCounts,
}

/// Reasons a TURN peer address is refused (`calls::peer_filter::Denied`, same order).
pub const TURN_REFUSED: [&str; 8] = [
    "loopback",
    "unspecified",
    "private",
    "link_local",
    "multicast",
    "broadcast",
    "documentation",
    "reserved",
];

/// Reasons an Allocate is refused (`calls::turn::server::AllocRefusal`, same order).
pub const TURN_ALLOC_REFUSED: [&str; 3] = ["unauthorized", "quota", "capacity"];

/// The TURN relay's counters: relaxed atomics, the relayed ones touched once per packet.
#[derive(Default)]
pub struct TurnCounts {
    allocations: AtomicU64,
    allocations_total: AtomicU64,
    refused: [AtomicU64; 8],
    alloc_refused: [AtomicU64; 3],
    /// [to peers, to clients]
    packets: [AtomicU64; 2],
    bytes: [AtomicU64; 2],
    dropped: AtomicU64,
}

impl TurnCounts {
    pub fn allocated(&self) {
        self.allocations.fetch_add(1, Ordering::Relaxed);
        self.allocations_total.fetch_add(1, Ordering::Relaxed);
    }

    pub fn released(&self) {
        self.allocations.fetch_sub(1, Ordering::Relaxed);
    }

    /// A peer refused for reason `i` of `TURN_REFUSED`.
    pub fn refused(&self, i: usize) {
        if let Some(c) = self.refused.get(i) {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn alloc_refused(&self, why: crate::calls::turn::server::AllocRefusal) {
        if let Some(c) = self.alloc_refused.get(why as usize) {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A packet of `bytes` relayed in `direction` (0: to a peer, 1: to a client).
    pub fn relayed(&self, direction: usize, bytes: usize) {
        if let (Some(p), Some(b)) = (self.packets.get(direction), self.bytes.get(direction)) {
            p.fetch_add(1, Ordering::Relaxed);
            b.fetch_add(bytes as u64, Ordering::Relaxed);
        }
    }

    /// `packets` packets of `bytes` in all relayed in `direction` (a batch sent at once).
    pub fn relayed_many(&self, direction: usize, packets: u64, bytes: u64) {
        if packets == 0 {
            return;
        }
        if let (Some(p), Some(b)) = (self.packets.get(direction), self.bytes.get(direction)) {
            p.fetch_add(packets, Ordering::Relaxed);
            b.fetch_add(bytes, Ordering::Relaxed);
        }
    }

    /// A packet to relay was dropped: the socket's send buffer or the TCP client's queue was
    /// full, or the kernel refused it.
    pub fn dropped(&self) {
        self.dropped.fetch_add(1, Ordering::Relaxed);
    }

    /// `n` packets to relay were dropped at once.
    pub fn dropped_many(&self, n: u64) {
        if n > 0 {
            self.dropped.fetch_add(n, Ordering::Relaxed);
        }
    }

    pub fn dropped_count(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    pub fn allocations(&self) -> u64 {
        self.allocations.load(Ordering::Relaxed)
    }

    pub fn allocations_total(&self) -> u64 {
        self.allocations_total.load(Ordering::Relaxed)
    }

    pub fn refused_count(&self, i: usize) -> u64 {
        self.refused.get(i).map_or(0, |c| c.load(Ordering::Relaxed))
    }

    pub fn alloc_refused_count(&self, i: usize) -> u64 {
        self.alloc_refused
            .get(i)
            .map_or(0, |c| c.load(Ordering::Relaxed))
    }

    /// (packets, bytes) relayed in `direction`.
    pub fn relayed_count(&self, direction: usize) -> (u64, u64) {
        (
            self.packets
                .get(direction)
                .map_or(0, |c| c.load(Ordering::Relaxed)),
            self.bytes
                .get(direction)
                .map_or(0, |c| c.load(Ordering::Relaxed)),
        )
    }
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics {
            messages_in: MessageCounts::default(),
            messages_out: MessageCounts::default(),
            auth_failures: Family::default(),
            chat_sent: Default::default(),
            chat_acknowledged: Default::default(),
            limit_refusals: Default::default(),
            store_flush: Family::new_with_constructor(flush_histogram),
            turn: TurnCounts::default(),
        }
    }
}

impl Metrics {
    /// A HELLO was refused during authentication (`method` and `reason` are bounded labels:
    /// `auth_method_label`, `auth_reason_label`, `THROTTLED`).
    pub fn auth_failed(&self, method: &'static str, reason: &'static str) {
        self.auth_failures
            .get_or_create(&[("method", method), ("reason", reason)])
            .inc();
    }

    /// A chat message was numbered and queued for storage.
    pub fn chat_sent(&self, from: ChatSender) {
        self.chat_sent[from as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// A chat message was stored durably and its sender answered.
    pub fn chat_acknowledged(&self, from: ChatSender) {
        self.chat_acknowledged[from as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// A request or connection was refused by `limit`.
    pub fn limit_refused(&self, limit: Limit) {
        self.limit_refusals[limit as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// How many requests or connections `limit` refused.
    pub fn limit_refusals(&self, limit: Limit) -> u64 {
        self.limit_refusals[limit as usize].load(Ordering::Relaxed)
    }

    /// The timer for the flushes of `store` (`history`, `chat`).
    pub fn flush_timer(&self, store: &'static str) -> FlushTimer {
        FlushTimer(self.store_flush.get_or_create_owned(&[("store", store)]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wamp::message::code;

    #[test]
    fn message_counts_by_type_and_in_total() {
        let m = MessageCounts::default();
        m.count(code::PUBLISH);
        m.add(code::EVENT, 10);
        m.count(UNDECODABLE);
        m.add(1000, 5);
        assert_eq!(m.get(code::PUBLISH), 1);
        assert_eq!(m.get(code::EVENT), 10);
        assert_eq!(m.get(code::YIELD), 0);
        assert_eq!(m.get(1000), 0, "out of the table: ignored");
        assert_eq!(m.total(), 12);
    }

    #[test]
    fn labels_are_bounded() {
        assert_eq!(auth_method_label("wampcra"), "wampcra");
        assert_eq!(auth_method_label("x-made-up"), "other");
        assert_eq!(auth_reason_label(uris::NOT_AUTHORIZED), "not_authorized");
        assert_eq!(auth_reason_label("com.example.invalid_ticket"), "other");
    }
}
