//! Criterion benchmarks for the router's hot paths: encode/decode per serializer, broker fan-out
//! to 10k subscribers, dealer call routing, pattern matching with 10k patterns, the permission
//! check, and what metrics cost (counting, a scrape).
//! Figures are in the README ("Measured figures"); run with `cargo bench`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, Throughput};
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};
use switchboard::auth::Principal;
use switchboard::framing::Framing;
use switchboard::outbox::Outbox;
use switchboard::router::broker::{Audience, Broker};
use switchboard::router::dealer::{CallOptions, Dealer, InvokePolicy};
use switchboard::router::peer::{ClientFeatures, Peer};
use switchboard::wamp::pattern::PatternIndex;
use switchboard::wamp::uri::MatchPolicy;
use switchboard::wamp::value::dict;
use switchboard::wamp::{Message, Payload, Serializer, Value};

fn peer(id: u64, ser: Serializer) -> Arc<Peer> {
    Arc::new(Peer::new(
        id,
        Principal {
            authid: format!("user{id}"),
            authrole: "anonymous".into(),
            authmethod: "anonymous".into(),
            authprovider: "static".into(),
            authextra: Vec::new(),
        },
        ser,
        Framing::WebSocket,
        ClientFeatures {
            callee_progressive_results: true,
            callee_call_canceling: true,
        },
        Arc::new(Outbox::new(usize::MAX)),
    ))
}

fn sample_payload() -> Payload {
    Payload {
        args: Some(vec![
            Value::Str("hello world".into()),
            Value::UInt(42),
            Value::Bytes(Bytes::from_static(&[7; 32])),
        ]),
        kwargs: Some(dict([
            ("price", Value::Float(9.99)),
            ("tags", Value::List(vec!["a".into(), "b".into()])),
        ])),
    }
}

fn codec(c: &mut Criterion) {
    let msg = Message::Publish {
        request: 12345,
        options: dict([("acknowledge", Value::Bool(true))]),
        topic: "com.example.shop.order.created".into(),
        payload: sample_payload(),
    };
    let mut g = c.benchmark_group("codec");
    for ser in Serializer::ALL {
        let bytes = ser.encode(&msg).unwrap();
        g.throughput(Throughput::Bytes(bytes.len() as u64));
        g.bench_with_input(BenchmarkId::new("encode", ser.name()), &ser, |b, ser| {
            b.iter(|| ser.encode(&msg).unwrap())
        });
        g.bench_with_input(BenchmarkId::new("decode", ser.name()), &ser, |b, ser| {
            b.iter(|| ser.decode(&bytes).unwrap())
        });
    }
    g.finish();
}

fn drain(peers: &[Arc<Peer>]) {
    let mut q = VecDeque::new();
    for p in peers {
        p.outbox.take(&mut q);
        let n: usize = q.iter().map(Bytes::len).sum();
        p.outbox.written(n);
        q.clear();
    }
}

fn fanout(c: &mut Criterion) {
    let mut g = c.benchmark_group("fanout");
    g.sample_size(20);
    for (label, sers) in [
        ("json", vec![Serializer::Json]),
        ("mixed3", Serializer::ALL.to_vec()),
    ] {
        let mut broker = Broker::default();
        let peers: Vec<Arc<Peer>> = (0..10_000u64)
            .map(|i| peer(i + 1, sers[i as usize % sers.len()]))
            .collect();
        for p in &peers {
            broker.subscribe(p, "com.example.topic", MatchPolicy::Exact);
        }
        let payload = Arc::new(Payload::args(vec![Value::Str("x".repeat(100))]));
        let audience = Audience {
            publisher: 999_999,
            exclude_me: true,
            ..Audience::default()
        };
        g.throughput(Throughput::Elements(peers.len() as u64));
        g.bench_function(BenchmarkId::new("publish_to_10k", label), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let t = Instant::now();
                    let d = broker.publish("com.example.topic", 1, &vec![], &payload, &audience);
                    total += t.elapsed();
                    assert_eq!(d.delivered, 10_000);
                    assert_eq!(d.encodings, sers.len());
                    drain(&peers);
                }
                total
            })
        });
    }
    g.finish();
}

fn dealer(c: &mut Criterion) {
    let mut g = c.benchmark_group("dealer");
    let caller = peer(1, Serializer::Json);
    let callee = peer(2, Serializer::Json);
    let mut dealer = Dealer::default();
    for i in 0..1000 {
        dealer
            .register(
                &callee,
                &format!("com.example.proc{i}"),
                MatchPolicy::Exact,
                InvokePolicy::Single,
                false,
            )
            .unwrap();
    }
    let mut request = 0u64;
    g.throughput(Throughput::Elements(1));
    g.bench_function("call_yield_round_trip", |b| {
        b.iter_batched(
            || {
                request += 1;
                request
            },
            |req| {
                let key = dealer
                    .call(
                        &caller,
                        req,
                        CallOptions::default(),
                        "com.example.proc500",
                        sample_payload(),
                        false,
                    )
                    .unwrap();
                dealer.yield_(key.0, key.1, &vec![], sample_payload());
                drain(&[caller.clone(), callee.clone()]);
            },
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

fn patterns(c: &mut Criterion) {
    let mut idx: PatternIndex<u32> = PatternIndex::new();
    for i in 0..10_000u32 {
        match i % 3 {
            0 => idx.insert(&format!("com.app.e{i}.created"), MatchPolicy::Exact, i),
            1 => idx.insert(&format!("com.app.p{i}"), MatchPolicy::Prefix, i),
            _ => idx.insert(&format!("com..w{i}.created"), MatchPolicy::Wildcard, i),
        };
    }
    let mut g = c.benchmark_group("pattern_10k");
    g.bench_function("all_matches", |b| {
        b.iter(|| {
            let mut n = 0;
            idx.for_each_match("com.app.w5.created", |_, _| n += 1);
            n
        })
    });
    g.bench_function("best_match_wildcard", |b| {
        b.iter(|| idx.best_match("com.x.w9998.created").map(|(v, _)| *v))
    });
    g.bench_function("best_match_exact", |b| {
        b.iter(|| idx.best_match("com.app.e9999.created").map(|(v, _)| *v))
    });
    g.finish();
}

/// The permission check on every PUBLISH/SUBSCRIBE/REGISTER/CALL: a static rule among 1,000,
/// and a decision a dynamic authorizer asked to cache among 1,000.
fn permissions(c: &mut Criterion) {
    use switchboard::auth::permissions::{Action, Decision};
    use switchboard::config::{Allow, Disclose, PermissionConfig, RealmConfig, RoleConfig};
    use switchboard::router::realm::{Authorization, Realm};
    let rules = (0..1000)
        .map(|i| PermissionConfig {
            uri: format!("com.app{i}."),
            policy: MatchPolicy::Prefix,
            allow: Allow::ALL,
            disclose: Disclose::default(),
        })
        .collect();
    let realm = Realm::new(RealmConfig {
        name: "realm1".into(),
        history: Vec::new(),
        roles: vec![
            RoleConfig {
                name: "anonymous".into(),
                permissions: rules,
                authorizer: None,
            },
            RoleConfig {
                name: "dynamic".into(),
                permissions: vec![],
                authorizer: Some("com.authorize".into()),
            },
        ],
    });
    let static_peer = peer(1, Serializer::Json);
    let mut p = Peer::new(
        2,
        Principal {
            authid: "d".into(),
            authrole: "dynamic".into(),
            authmethod: "ticket".into(),
            authprovider: "dynamic".into(),
            authextra: Vec::new(),
        },
        Serializer::Json,
        Framing::WebSocket,
        ClientFeatures::default(),
        Arc::new(Outbox::new(1 << 30)),
    );
    p.trusted = false;
    let dynamic_peer = Arc::new(p);
    let allow = Decision {
        allowed: true,
        disclose: false,
    };
    realm
        .register(&static_peer, 1, &vec![], "com.authorize", allow)
        .unwrap();
    for i in 0..1000 {
        realm.cache_decision("dynamic", &format!("com.dyn.t{i}"), Action::Publish, allow);
    }
    let mut g = c.benchmark_group("permission_check");
    g.bench_function("static_rule", |b| {
        b.iter(|| {
            matches!(
                realm.authorization(&static_peer, Action::Publish, "com.app500.news"),
                Authorization::Decided(Decision { allowed: true, .. })
            )
        })
    });
    g.bench_function("cached_dynamic", |b| {
        b.iter(|| {
            matches!(
                realm.authorization(&dynamic_peer, Action::Publish, "com.dyn.t500"),
                Authorization::Decided(Decision { allowed: true, .. })
            )
        })
    });
    g.finish();
}

/// What `/metrics` costs: counting one message on a hot path, counting 10,000 joined sessions
/// by transport and serializer (under the realm's read lock), and a whole scrape.
fn metrics(c: &mut Criterion) {
    use switchboard::auth::TransportInfo;
    use switchboard::config::{RealmConfig, RoleConfig};
    use switchboard::metrics::exposition::{render, Format, RealmSnapshot, Snapshot};
    use switchboard::metrics::{Counters, Metrics};
    use switchboard::router::peer::Attachment;
    use switchboard::router::realm::Realm;
    let realm = Realm::new(RealmConfig {
        name: "realm1".into(),
        history: Vec::new(),
        roles: vec![RoleConfig {
            name: "anonymous".into(),
            permissions: vec![],
            authorizer: None,
        }],
    });
    for i in 0..10_000u64 {
        let framing = if i % 10 == 0 {
            Framing::RawSocket
        } else {
            Framing::WebSocket
        };
        let link = Attachment {
            serializer: Serializer::ALL[i as usize % 3],
            framing,
            features: ClientFeatures::default(),
            outbox: Arc::new(Outbox::new(1 << 20)),
            transport: Some(TransportInfo {
                framing,
                peer: None,
                protocol: None,
                http_headers: None,
            }),
        };
        let p = Principal {
            authid: format!("u{i}"),
            authrole: "anonymous".into(),
            authmethod: "anonymous".into(),
            authprovider: "static".into(),
            authextra: Vec::new(),
        };
        realm.join(i + 1, p, link).unwrap();
    }
    let (m, counters) = (Metrics::default(), Counters::default());
    let mut g = c.benchmark_group("metrics");
    g.bench_function("count_message", |b| {
        b.iter(|| m.messages_in.count(std::hint::black_box(16)))
    });
    g.bench_function("session_mix_10k", |b| b.iter(|| realm.session_mix()));
    g.bench_function("scrape_10k_sessions", |b| {
        b.iter(|| {
            let snapshot = Snapshot {
                counters: &counters,
                metrics: &m,
                realms: vec![RealmSnapshot {
                    name: realm.name(),
                    sessions: realm.session_mix(),
                    subscriptions: 0,
                    registrations: 0,
                    authorizer: &realm.authorizer_counts,
                }],
                connections: 10_000,
                started_at: std::time::SystemTime::now(),
            };
            render(&snapshot, Format::Prometheus).len()
        })
    });
    g.finish();
}

criterion_group!(
    benches,
    codec,
    fanout,
    dealer,
    patterns,
    permissions,
    metrics
);
criterion_main!(benches);
