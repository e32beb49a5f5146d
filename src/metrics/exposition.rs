//! What `/metrics` shows: every metric's name, help text and labels, in one place.
//!
//! A registry is built per scrape from the live counters (`super::Metrics`, `super::Counters`,
//! each realm's `AuthorizerCounts`) and the gauges of a `Snapshot` the caller takes of the
//! router's state — so nothing on a hot path maintains a gauge. Scrapes are rare (seconds
//! apart); building the registry costs a few allocations per series.

use super::{AuthorizerCounts, ChatSender, Counters, Metrics, UNDECODABLE};
use crate::framing::Framing;
use crate::wamp::message::{code, code_name};
use crate::wamp::Serializer;
use prometheus_client::encoding::{prometheus_text, text};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::{Registry, Unit};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

/// One realm's state at scrape time.
pub struct RealmSnapshot<'a> {
    pub name: &'a str,
    /// Client sessions by `[Framing::index()][Serializer::index()]`.
    pub sessions: [[u64; 3]; 2],
    pub subscriptions: u64,
    pub registrations: u64,
    pub authorizer: &'a AuthorizerCounts,
}

/// Everything a scrape renders.
pub struct Snapshot<'a> {
    pub counters: &'a Counters,
    pub metrics: &'a Metrics,
    pub realms: Vec<RealmSnapshot<'a>>,
    /// Open WebSocket and RawSocket connections (with or without a session).
    pub connections: u64,
    pub started_at: SystemTime,
}

/// The exposition format, chosen from the scraper's `Accept` header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Prometheus text 0.0.4: for anything that does not ask for OpenMetrics.
    Prometheus,
    OpenMetrics,
}

impl Format {
    pub fn from_accept(accept: Option<&str>) -> Format {
        match accept {
            Some(a) if a.contains("application/openmetrics-text") => Format::OpenMetrics,
            _ => Format::Prometheus,
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::Prometheus => prometheus_text::CONTENT_TYPE,
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
        }
    }
}

/// The message types the router receives from clients in the protocol (always shown, from 0).
const RECEIVED: [u64; 13] = [
    code::HELLO,
    code::AUTHENTICATE,
    code::ABORT,
    code::GOODBYE,
    code::ERROR,
    code::PUBLISH,
    code::SUBSCRIBE,
    code::UNSUBSCRIBE,
    code::CALL,
    code::CANCEL,
    code::REGISTER,
    code::UNREGISTER,
    code::YIELD,
];

/// The message types the router sends to clients.
const SENT: [u64; 14] = [
    code::WELCOME,
    code::ABORT,
    code::CHALLENGE,
    code::GOODBYE,
    code::ERROR,
    code::PUBLISHED,
    code::SUBSCRIBED,
    code::UNSUBSCRIBED,
    code::EVENT,
    code::RESULT,
    code::REGISTERED,
    code::UNREGISTERED,
    code::INVOCATION,
    code::INTERRUPT,
];

type Labels<const N: usize> = [(&'static str, &'static str); N];
type RealmLabels<const N: usize> = [(&'static str, String); N];

fn load(a: &AtomicU64) -> u64 {
    a.load(Ordering::Relaxed)
}

fn counter(value: u64) -> Counter {
    let c = Counter::default();
    c.inc_by(value);
    c
}

fn gauge(value: u64) -> Gauge<u64, AtomicU64> {
    let g = Gauge::default();
    g.set(value);
    g
}

/// Messages by type: the protocol's types for this direction always, others once seen.
fn by_type(counts: &super::MessageCounts, usual: &[u64]) -> Family<Labels<1>, Counter> {
    let f = Family::<Labels<1>, Counter>::default();
    for c in 1..=code::YIELD {
        let n = counts.get(c);
        if usual.contains(&c) || (n > 0 && code_name(c) != "unknown") {
            f.get_or_create(&[("type", code_name(c))]).inc_by(n);
        }
    }
    f
}

fn register_messages(r: &mut Registry, s: &Snapshot) {
    let m = s.metrics;
    let received = by_type(&m.messages_in, &RECEIVED);
    received
        .get_or_create(&[("type", "invalid")])
        .inc_by(m.messages_in.get(UNDECODABLE));
    r.register(
        "switchboard_messages_received",
        "WAMP messages received from client sessions, by type (invalid: could not be decoded)",
        received,
    );
    r.register(
        "switchboard_messages_sent",
        "WAMP messages queued for client sessions, by type; an EVENT counts once per subscriber it is queued for",
        by_type(&m.messages_out, &SENT),
    );
    let c = s.counters;
    r.register_with_unit(
        "switchboard_received",
        "Bytes read from WebSocket and RawSocket connections, framing included",
        Unit::Bytes,
        counter(load(&c.bytes_in)),
    );
    r.register_with_unit(
        "switchboard_sent",
        "Bytes written to WebSocket and RawSocket connections, framing included",
        Unit::Bytes,
        counter(load(&c.bytes_out)),
    );
    r.register(
        "switchboard_socket_writes",
        "Write system calls on client sockets (several queued frames go out in one)",
        counter(load(&c.writes)),
    );
    r.register(
        "switchboard_slow_consumer_disconnects",
        "Connections cut off because more than --max-queue-bytes waited in their outbound queue",
        counter(load(&c.slow_consumers)),
    );
    r.register(
        "switchboard_outbound_frames_dropped",
        "Outbound frames never written: discarded at a slow-consumer cut-off or a close that does not flush, refused after the close began, or still queued when the connection ended (counted when it ends)",
        counter(load(&c.frames_dropped)),
    );
}

fn register_state(r: &mut Registry, s: &Snapshot) {
    let sessions = Family::<RealmLabels<3>, Gauge<u64, AtomicU64>>::default();
    let subscriptions = Family::<RealmLabels<1>, Gauge<u64, AtomicU64>>::default();
    let registrations = Family::<RealmLabels<1>, Gauge<u64, AtomicU64>>::default();
    let calls = Family::<RealmLabels<2>, Counter>::default();
    let hits = Family::<RealmLabels<1>, Counter>::default();
    for realm in &s.realms {
        let name = || ("realm", realm.name.to_owned());
        for f in [Framing::WebSocket, Framing::RawSocket] {
            for ser in Serializer::ALL {
                sessions
                    .get_or_create(&[
                        name(),
                        ("transport", f.name().to_owned()),
                        ("serializer", ser.name().to_owned()),
                    ])
                    .set(realm.sessions[f.index()][ser.index()]);
            }
        }
        subscriptions
            .get_or_create(&[name()])
            .set(realm.subscriptions);
        registrations
            .get_or_create(&[name()])
            .set(realm.registrations);
        let a = realm.authorizer;
        for (outcome, n) in [
            ("allowed", &a.allowed),
            ("denied", &a.denied),
            ("failed", &a.failed),
        ] {
            calls
                .get_or_create(&[name(), ("outcome", outcome.to_owned())])
                .inc_by(load(n));
        }
        hits.get_or_create(&[name()]).inc_by(load(&a.cache_hits));
    }
    r.register(
        "switchboard_sessions",
        "Client sessions joined to a realm, by transport and serializer (router-internal sessions not counted)",
        sessions,
    );
    r.register(
        "switchboard_connections",
        "Open WebSocket and RawSocket connections, with or without a session",
        gauge(s.connections),
    );
    r.register(
        "switchboard_subscriptions",
        "Subscriptions with at least one client subscriber",
        subscriptions,
    );
    r.register(
        "switchboard_registrations",
        "Registrations with a client callee",
        registrations,
    );
    r.register(
        "switchboard_authorizer_calls",
        "Calls to dynamic authorizers that were answered (allowed, denied) or failed (error, bad answer, timeout, none registered)",
        calls,
    );
    r.register(
        "switchboard_authorizer_cache_hits",
        "Permission checks decided by a cached authorizer decision instead of a call",
        hits,
    );
}

fn register_auth_chat_store(r: &mut Registry, m: &Metrics) {
    r.register(
        "switchboard_auth_failures",
        "HELLOs refused during authentication, by method (none: no offered method applies) and reason",
        m.auth_failures.clone(),
    );
    let chat = |v: &[AtomicU64; 2]| {
        let f = Family::<Labels<1>, Counter>::default();
        for (from, i) in [
            ("visitor", ChatSender::Visitor),
            ("staff", ChatSender::Staff),
        ] {
            f.get_or_create(&[("from", from)])
                .inc_by(load(&v[i as usize]));
        }
        f
    };
    r.register(
        "switchboard_chat_messages_sent",
        "Chat messages accepted by switchboard.chat.send and queued for storage (retries of a known client_id not counted)",
        chat(&m.chat_sent),
    );
    r.register(
        "switchboard_chat_messages_acknowledged",
        "Chat messages stored durably and answered to their sender",
        chat(&m.chat_acknowledged),
    );
    let refusals = Family::<Labels<1>, Counter>::default();
    for limit in super::Limit::ALL {
        refusals
            .get_or_create(&[("limit", limit.label())])
            .inc_by(m.limit_refusals(limit));
    }
    r.register(
        "switchboard_limit_refusals",
        "Requests (SUBSCRIBE, REGISTER, CALL) and connections refused because a limit was reached",
        refusals,
    );
    r.register_with_unit(
        "switchboard_store_flush_duration",
        "Time to flush the data store to disk (history: event history batches; chat: message batches and deletions)",
        Unit::Seconds,
        m.store_flush.clone(),
    );
}

fn register_turn(r: &mut Registry, t: &super::TurnCounts) {
    r.register(
        "switchboard_turn_allocations",
        "TURN allocations alive",
        gauge(t.allocations()),
    );
    let total = Counter::<u64, AtomicU64>::default();
    total.inc_by(t.allocations_total());
    r.register(
        "switchboard_turn_allocations_created",
        "TURN allocations created",
        total,
    );
    let refused = Family::<Labels<1>, Counter>::default();
    for (i, reason) in super::TURN_REFUSED.iter().enumerate() {
        refused
            .get_or_create(&[("reason", reason)])
            .inc_by(t.refused_count(i));
    }
    r.register(
        "switchboard_turn_peers_refused",
        "TURN CreatePermission/ChannelBind/Send refused by the peer address filter, by reason",
        refused,
    );
    let alloc = Family::<Labels<1>, Counter>::default();
    for (i, reason) in super::TURN_ALLOC_REFUSED.iter().enumerate() {
        alloc
            .get_or_create(&[("reason", reason)])
            .inc_by(t.alloc_refused_count(i));
    }
    r.register(
        "switchboard_turn_allocations_refused",
        "TURN Allocate requests refused: bad credentials, quota (486), capacity (508)",
        alloc,
    );
    let packets = Family::<Labels<1>, Counter>::default();
    let bytes = Family::<Labels<1>, Counter>::default();
    for (i, dir) in ["to_peer", "to_client"].iter().enumerate() {
        let (p, b) = t.relayed_count(i);
        packets.get_or_create(&[("direction", dir)]).inc_by(p);
        bytes.get_or_create(&[("direction", dir)]).inc_by(b);
    }
    let dropped = Counter::<u64, AtomicU64>::default();
    dropped.inc_by(t.dropped_count());
    r.register(
        "switchboard_turn_dropped_packets",
        "Packets TURN could not relay: a full socket send buffer (to peers) or TCP client queue",
        dropped,
    );
    r.register(
        "switchboard_turn_relayed_packets",
        "Packets relayed by TURN, by direction",
        packets,
    );
    r.register_with_unit(
        "switchboard_turn_relayed",
        "Payload bytes relayed by TURN, by direction",
        Unit::Bytes,
        bytes,
    );
}

fn register_process(r: &mut Registry, started_at: SystemTime) {
    r.register(
        "switchboard_build",
        "The running version",
        Info::new([("version", env!("CARGO_PKG_VERSION"))]),
    );
    let pid = std::process::id();
    if let Some(rss) = crate::procfs::rss_bytes(pid) {
        r.register_with_unit(
            "process_resident_memory",
            "Resident memory size",
            Unit::Bytes,
            gauge(rss),
        );
    }
    if let Some(cpu) = crate::procfs::cpu_seconds(pid) {
        let c = Counter::<f64, AtomicU64>::default();
        c.inc_by(cpu);
        r.register_with_unit(
            "process_cpu",
            "User and system CPU time spent",
            Unit::Seconds,
            c,
        );
    }
    let start = started_at
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0);
    let g = Gauge::<f64, AtomicU64>::default();
    g.set(start);
    r.register_with_unit(
        "process_start_time",
        "Start time of the process since the Unix epoch",
        Unit::Seconds,
        g,
    );
}

/// The exposition text of `s` in `format`.
pub fn render(s: &Snapshot, format: Format) -> String {
    let mut r = Registry::default();
    register_messages(&mut r, s);
    register_state(&mut r, s);
    register_auth_chat_store(&mut r, s.metrics);
    register_turn(&mut r, &s.metrics.turn);
    register_process(&mut r, s.started_at);
    let mut out = String::with_capacity(16 * 1024);
    let written = match format {
        Format::Prometheus => prometheus_text::encode(&mut out, &r),
        Format::OpenMetrics => text::encode(&mut out, &r),
    };
    if let Err(e) = written {
        // Writing into a String cannot fail; keep what was written if it ever does.
        tracing::error!(error = %e, "cannot encode the metrics");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot<'a>(
        metrics: &'a Metrics,
        counters: &'a Counters,
        authz: &'a AuthorizerCounts,
    ) -> Snapshot<'a> {
        let mut sessions = [[0; 3]; 2];
        sessions[Framing::RawSocket.index()][Serializer::Cbor.index()] = 4;
        Snapshot {
            counters,
            metrics,
            realms: vec![RealmSnapshot {
                name: "realm\"1",
                sessions,
                subscriptions: 2,
                registrations: 1,
                authorizer: authz,
            }],
            connections: 5,
            started_at: SystemTime::UNIX_EPOCH,
        }
    }

    #[test]
    fn renders_counters_gauges_and_escapes_realm_names() {
        let (m, c, a) = (
            Metrics::default(),
            Counters::default(),
            AuthorizerCounts::default(),
        );
        m.messages_in.add(code::PUBLISH, 3);
        m.messages_out.add(code::EVENT, 30);
        m.messages_out.count(code::HELLO); // never sent by a router, shown once seen
        m.auth_failed("ticket", "not_authorized");
        m.chat_sent(ChatSender::Staff);
        a.cache_hit();
        Counters::add(&c.bytes_in, 100);
        let text = render(&snapshot(&m, &c, &a), Format::Prometheus);
        for line in [
            "switchboard_messages_received_total{type=\"PUBLISH\"} 3",
            "switchboard_messages_received_total{type=\"CALL\"} 0",
            "switchboard_messages_sent_total{type=\"EVENT\"} 30",
            "switchboard_messages_sent_total{type=\"HELLO\"} 1",
            "switchboard_received_bytes_total 100",
            "switchboard_auth_failures_total{method=\"ticket\",reason=\"not_authorized\"} 1",
            "switchboard_chat_messages_sent_total{from=\"staff\"} 1",
            "switchboard_chat_messages_sent_total{from=\"visitor\"} 0",
            "switchboard_sessions{realm=\"realm\\\"1\",transport=\"rawsocket\",serializer=\"cbor\"} 4",
            "switchboard_sessions{realm=\"realm\\\"1\",transport=\"websocket\",serializer=\"json\"} 0",
            "switchboard_authorizer_cache_hits_total{realm=\"realm\\\"1\"} 1",
            "switchboard_connections 5",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line:?} in\n{text}");
        }
        assert!(!text.contains("# EOF"));
    }

    #[test]
    fn openmetrics_on_request() {
        let (m, c, a) = (
            Metrics::default(),
            Counters::default(),
            AuthorizerCounts::default(),
        );
        let accept = "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5";
        let f = Format::from_accept(Some(accept));
        assert_eq!(f, Format::OpenMetrics);
        assert_eq!(Format::from_accept(Some("*/*")), Format::Prometheus);
        let text = render(&snapshot(&m, &c, &a), f);
        assert!(text.ends_with("# EOF\n"), "{text}");
        assert!(text.contains("# TYPE switchboard_messages_received counter"));
    }
}
