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

/// The TURN relay's hot paths: ChannelData from a client out to its peer (sent at once, or
/// handled for a batch and sent with `sendmmsg`), and a peer's datagram framed as ChannelData
/// or a Data indication into the client batch and flushed, allocate nothing.
#[test]
fn relaying_turn_channel_data_does_not_allocate() {
    use std::net::SocketAddr;
    use std::os::fd::AsRawFd;
    use stun_types::attribute::{Nonce, Realm, Username};
    use stun_types::message::{
        IntegrityAlgorithm, LongTermKeyCredentials, Message, MessageWrite, MessageWriteExt,
        MessageWriteVec,
    };
    use switchboard::calls::turn::batch::{send_datagrams, Outbound};
    use switchboard::calls::turn::server::{
        push_channel_data, push_data_indication, FromPeer, Handled, Server, Sink, Transport,
    };
    use turn_types::attribute::{ChannelNumber, RequestedTransport, XorPeerAddress};
    use turn_types::message::{ALLOCATE, CHANNEL_BIND};

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let _guard = rt.enter();
    let cfg = switchboard::calls::turn::TurnConfig {
        allow_loopback_peers: true,
        max_bps: 0,
        ..Default::default()
    };
    let got = Arc::new(parking_lot::Mutex::new(None));
    let keep = got.clone();
    let metrics = Arc::new(switchboard::metrics::Metrics::default());
    let server = Arc::new(Server::new(
        cfg,
        "s",
        metrics.clone(),
        "127.0.0.1".parse().unwrap(),
        Box::new(move |_, a| *keep.lock() = Some(a)),
    ));
    // The relay's listening socket, and the client on the other end.
    let listen = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    listen.set_nonblocking(true).unwrap();
    let listen = Arc::new(tokio::net::UdpSocket::from_std(listen).unwrap());
    let out = Arc::new(Outbound::new(listen, metrics.clone()));
    let sink = Sink::Udp(out.clone());
    let client = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    client
        .set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .unwrap();
    let from: SocketAddr = client.local_addr().unwrap();
    let peer = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let peer_addr = peer.local_addr().unwrap();
    peer.set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .unwrap();

    let mut m = Message::builder_request(ALLOCATE, MessageWriteVec::new());
    m.add_attribute(&RequestedTransport::new(17)).unwrap();
    let r = server
        .on_client(&m.finish(), Transport::Udp, from, &sink)
        .unwrap();
    let nonce = Message::from_bytes(&r)
        .unwrap()
        .attribute::<Nonce>()
        .unwrap()
        .nonce()
        .to_owned();
    let (user, pass) = switchboard::calls::credentials::issue("s", "u", 4_000_000_000);
    let key = LongTermKeyCredentials::new(user.clone(), pass, "switchboard".into()).into();
    let sign = |mut m: MessageWriteVec| {
        m.add_attribute(&Username::new(&user).unwrap()).unwrap();
        m.add_attribute(&Realm::new("switchboard").unwrap())
            .unwrap();
        m.add_attribute(&Nonce::new(&nonce).unwrap()).unwrap();
        m.add_message_integrity(&key, IntegrityAlgorithm::Sha1)
            .unwrap();
        m.finish()
    };
    let mut m = Message::builder_request(ALLOCATE, MessageWriteVec::new());
    m.add_attribute(&RequestedTransport::new(17)).unwrap();
    let r = server
        .on_client(&sign(m), Transport::Udp, from, &sink)
        .unwrap();
    assert!(Message::from_bytes(&r).unwrap().is_response());
    let mut m = Message::builder_request(CHANNEL_BIND, MessageWriteVec::new());
    let tid = m.transaction_id();
    m.add_attribute(&ChannelNumber::new(0x4000)).unwrap();
    m.add_attribute(&XorPeerAddress::new(peer_addr, tid))
        .unwrap();
    let r = server
        .on_client(&sign(m), Transport::Udp, from, &sink)
        .unwrap();
    assert_eq!(r[0..2], [0x01, 0x09], "ChannelBind success");
    let alloc = got.lock().clone().expect("allocated");

    let mut pkt = vec![0x40, 0x00, 0x00, 100];
    pkt.extend_from_slice(&[7u8; 100]);
    let mut buf = Vec::with_capacity(4096);
    let now = std::time::Instant::now();
    // Warm up: the client batch's buffer grows once, the thread's sendmmsg headers (plain and
    // GSO) are made.
    for i in 0..64 {
        out.push(from, Some(100), |b| {
            push_channel_data(b, 0x4000, &pkt[4..], false)
        });
        if i % 2 == 0 {
            out.push(from, Some(100), |b| {
                push_data_indication(b, &pkt[4..], peer_addr, [1; 12])
            });
        }
    }
    while out.flush() {}
    let two = [(&pkt[4..], peer_addr), (&pkt[..], peer_addr)]; // not a GSO run
    assert_eq!(send_datagrams(alloc.relay.as_raw_fd(), &two).unwrap(), 2);
    let mut got = [0u8; 200];
    for _ in 0..96 {
        assert!(client.recv(&mut got).unwrap() >= 104);
    }
    let n = allocations_during(|| {
        for _ in 0..20 {
            // Client to peer, sent at once, and handled for a batch then sent.
            assert!(server
                .on_client(&pkt, Transport::Udp, from, &sink)
                .is_none());
            let Handled::Relay(a, to, range) =
                server.handle(&pkt, Transport::Udp, from, &sink, now)
            else {
                panic!("not relayed")
            };
            let msgs = [(&pkt[range.clone()], to), (&pkt[range], to)];
            assert_eq!(send_datagrams(a.relay.as_raw_fd(), &msgs).unwrap(), 2);
            // Peer to client: framed into the batch, flushed.
            assert!(matches!(
                alloc.from_peer(peer_addr, 100, now),
                FromPeer::Channel(0x4000)
            ));
            out.push(from, Some(100), |b| {
                push_channel_data(b, 0x4000, &pkt[4..], false)
            });
            out.push(from, Some(100), |b| {
                push_data_indication(b, &pkt[4..], peer_addr, [1; 12])
            });
            buf.clear();
            push_data_indication(&mut buf, &pkt[4..], peer_addr, [1; 12]);
            assert!(!out.flush());
        }
    });
    assert_eq!(n, 0, "the relaying paths allocate");
    assert_eq!(peer.recv(&mut got).unwrap(), 100, "relayed to the peer");
    assert_eq!(client.recv(&mut got).unwrap(), 104, "relayed to the client");
}
