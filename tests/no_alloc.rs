//! The permission check sits on every PUBLISH, SUBSCRIBE, REGISTER and CALL: for a static rule
//! and for a decision an authorizer asked to cache it must not allocate — nor may counting a
//! message for the metrics. The counting global allocator of `allocation-counter` (this test
//! binary only) proves it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use switchboard::auth::permissions::{Action, Decision};
use switchboard::auth::Principal;
use switchboard::config::{Allow, Disclose, PermissionConfig, RealmConfig, RoleConfig};
use switchboard::framing::Framing;
use switchboard::outbox::Outbox;
use switchboard::router::peer::{ClientFeatures, Peer};
use switchboard::router::realm::{Authorization, Realm};
use switchboard::wamp::uri::MatchPolicy;
use switchboard::wamp::Serializer;

fn allocations_during(f: impl FnOnce()) -> u64 {
    allocation_counter::measure(f).count_total
}

fn peer(id: u64, role: &str) -> Arc<Peer> {
    Arc::new(Peer::new(
        id,
        Principal {
            authid: format!("p{id}"),
            authrole: role.into(),
            authmethod: "ticket".into(),
            authprovider: "static".into(),
            authextra: Vec::new(),
        },
        Serializer::Json,
        Framing::WebSocket,
        ClientFeatures::default(),
        Arc::new(Outbox::new(1 << 20)),
    ))
}

#[test]
fn static_and_cached_decisions_do_not_allocate() {
    let rule = |uri: &str, policy| PermissionConfig {
        uri: uri.into(),
        policy,
        allow: Allow::ALL,
        disclose: Disclose::default(),
    };
    let realm = Realm::new(RealmConfig {
        name: "realm1".into(),
        history: Vec::new(),
        roles: vec![
            RoleConfig {
                name: "user".into(),
                permissions: vec![
                    rule("com.app.", MatchPolicy::Prefix),
                    rule("com..news", MatchPolicy::Wildcard),
                    rule("com.app.exact", MatchPolicy::Exact),
                ],
                authorizer: None,
            },
            RoleConfig {
                name: "reviewer".into(),
                permissions: vec![],
                authorizer: Some("com.authorize".into()),
            },
        ],
    });
    let user = peer(1, "user");
    let reviewer = peer(2, "reviewer");
    let yes = Decision {
        allowed: true,
        disclose: true,
    };
    realm
        .register(&user, 1, &vec![], "com.app.authorize", yes)
        .unwrap();
    // The authorizer must be registered for a decision to be cached.
    assert!(matches!(
        realm.authorization(&reviewer, Action::Call, "com.review.x"),
        Authorization::Ask(_)
    ));
    realm.cache_decision("reviewer", "com.review.x", Action::Call, yes);
    assert!(
        matches!(
            realm.authorization(&reviewer, Action::Call, "com.review.x"),
            Authorization::Ask(_)
        ),
        "nothing cached while the authorizer is not registered"
    );
    realm
        .register(&user, 2, &vec![], "com.authorize", yes)
        .unwrap();
    realm.cache_decision("reviewer", "com.review.x", Action::Call, yes);

    let mut outcomes = Vec::with_capacity(8);
    let n = allocations_during(|| {
        for (p, action, uri) in [
            (&user, Action::Publish, "com.app.orders"),
            (&user, Action::Call, "com.app.exact"),
            (&user, Action::Subscribe, "com.x.news"),
            (&user, Action::Register, "org.denied"),
            (&reviewer, Action::Call, "com.review.x"),
        ] {
            outcomes.push(realm.authorization(p, action, uri));
        }
    });
    assert_eq!(n, 0, "the permission check allocated {n} times");
    let allowed: Vec<bool> = outcomes
        .iter()
        .map(|o| matches!(o, Authorization::Decided(d) if d.allowed))
        .collect();
    assert_eq!(allowed, [true, true, true, false, true]);
    assert_eq!(outcomes[4], Authorization::Decided(yes));
}

#[test]
fn counting_messages_does_not_allocate() {
    use switchboard::metrics::{Counters, Metrics};
    use switchboard::wamp::message::code;
    let (m, c) = (Metrics::default(), Counters::default());
    let n = allocations_during(|| {
        m.messages_in.count(code::PUBLISH);
        m.messages_out.add(code::EVENT, 10_000);
        Counters::add(&c.bytes_in, 1500);
    });
    assert_eq!(n, 0, "counting allocated {n} times");
    assert_eq!(m.messages_out.get(code::EVENT), 10_000);
}
