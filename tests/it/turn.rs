//! The built-in TURN relay over real sockets, driven by a raw TURN client written here on
//! `stun-types`/`turn-types` (messages built and checked independently of the server's
//! handling): authentication (401, expired credentials, bad integrity, 438), Refresh and
//! lifetime 0, Send/Data and ChannelData round trips to a UDP peer over UDP, TCP and TLS
//! (`turns:` on the web listener), the peer filter on UDP and TCP, malformed input, quotas.

use crate::support::*;
use std::net::SocketAddr;
use std::time::Duration;
use stun_types::attribute::{ErrorCode, Nonce, Realm, Username, XorMappedAddress};
use stun_types::message::{
    IntegrityAlgorithm, LongTermKeyCredentials, Message, MessageClass, MessageIntegrityCredentials,
    MessageWrite, MessageWriteExt, MessageWriteVec, Method, BINDING,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use turn_types::attribute::{
    ChannelNumber, Data, Lifetime, RequestedTransport, XorPeerAddress, XorRelayedAddress,
};
use turn_types::message::{ALLOCATE, CHANNEL_BIND, CREATE_PERMISSION, DATA, REFRESH, SEND};

const SECRET: &str = "turn-test-secret";
const WAIT: Duration = Duration::from_secs(3);

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

struct Relay {
    srv: TestServer,
    udp: SocketAddr,
    tcp: SocketAddr,
    /// A TLS web listener (`turns:` is served there) and its certificate.
    tls: SocketAddr,
    cert: Vec<u8>,
    _cert_dir: tempfile::TempDir,
}

/// How a test client reaches the relay.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Via {
    Udp,
    Tcp,
    Tls,
}

impl Relay {
    async fn start(tweak: impl FnOnce(&mut switchboard::calls::turn::TurnConfig)) -> Relay {
        let cert_dir = tempfile::tempdir().unwrap();
        let (cert, key, der) = crate::https::write_cert(cert_dir.path());
        let srv = TestServer::with(|o| {
            let mut t = switchboard::calls::turn::TurnConfig {
                listen: "127.0.0.1:0".parse().unwrap(),
                tcp_listen: Some("127.0.0.1:0".parse().unwrap()),
                min_port: 40000,
                max_port: 48000,
                ..Default::default()
            };
            tweak(&mut t);
            o.node.router.calls.turn = Some(t);
            o.node.router.calls.turn_secret = Some(switchboard::config::Secret(SECRET.into()));
            o.node
                .listeners
                .push(crate::https::universal_tls(&cert, &key));
        })
        .await;
        let r = srv.running.as_ref().unwrap();
        let (udp, tcp) = (r.turn_addr.unwrap(), r.turn_tcp_addr.unwrap());
        let tls = r
            .listeners
            .iter()
            .find(|b| b.config.tls.is_some())
            .and_then(|b| b.addr)
            .unwrap();
        Relay {
            srv,
            udp,
            tcp,
            tls,
            cert: der,
            _cert_dir: cert_dir,
        }
    }

    fn turn(&self) -> &switchboard::metrics::TurnCounts {
        &self.srv.running.as_ref().unwrap().router.metrics.turn
    }
}

/// A byte stream to the relay: TCP, or TLS over TCP.
trait Duplex: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Duplex for T {}

/// A raw client over UDP, or over a stream (TCP or TLS: RFC 6062 framing).
enum Conn {
    Udp(UdpSocket, SocketAddr),
    Stream(Box<dyn Duplex>, Vec<u8>),
}

struct Client {
    conn: Conn,
    user: String,
    pass: String,
    realm: String,
    nonce: String,
}

fn creds_for(user: &str, expiry: u64) -> (String, String) {
    switchboard::calls::credentials::issue(SECRET, user, expiry)
}

impl Client {
    async fn udp(relay: &Relay) -> Client {
        let s = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        Client::new(Conn::Udp(s, relay.udp))
    }

    async fn tcp(relay: &Relay) -> Client {
        let s = TcpStream::connect(relay.tcp).await.unwrap();
        Client::new(Conn::Stream(Box::new(s), Vec::new()))
    }

    /// `turns:` on the web listener, the certificate verified as for `localhost`, naming
    /// TURN's ALPN (RFC 7443) as such clients may: the listener must accept it.
    async fn tls(relay: &Relay) -> Client {
        let mut cfg = (*crate::https::client_config(&[&relay.cert])).clone();
        cfg.alpn_protocols = vec![b"stun.turn".to_vec()];
        let tcp = TcpStream::connect(relay.tls).await.unwrap();
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        let s = tokio_rustls::TlsConnector::from(std::sync::Arc::new(cfg))
            .connect(name, tcp)
            .await
            .expect("TLS handshake with ALPN stun.turn");
        assert_eq!(s.get_ref().1.alpn_protocol(), Some(&b"stun.turn"[..]));
        Client::new(Conn::Stream(Box::new(s), Vec::new()))
    }

    async fn over(relay: &Relay, via: Via) -> Client {
        match via {
            Via::Udp => Client::udp(relay).await,
            Via::Tcp => Client::tcp(relay).await,
            Via::Tls => Client::tls(relay).await,
        }
    }

    fn new(conn: Conn) -> Client {
        let (user, pass) = creds_for("alice", now() + 3600);
        Client {
            conn,
            user,
            pass,
            realm: String::new(),
            nonce: String::new(),
        }
    }

    async fn send_raw(&mut self, b: &[u8]) {
        match &mut self.conn {
            Conn::Udp(s, to) => {
                s.send_to(b, *to).await.unwrap();
            }
            Conn::Stream(s, _) => s.write_all(b).await.unwrap(),
        }
    }

    /// The next packet (one datagram, or one framed message), or None within `d`.
    async fn recv_within(&mut self, d: Duration) -> Option<Vec<u8>> {
        match &mut self.conn {
            Conn::Udp(s, _) => {
                let mut buf = vec![0u8; 70_000];
                match tokio::time::timeout(d, s.recv_from(&mut buf)).await {
                    Ok(Ok((n, _))) => Some(buf[..n].to_vec()),
                    _ => None,
                }
            }
            Conn::Stream(s, buf) => {
                let deadline = tokio::time::Instant::now() + d;
                loop {
                    if buf.len() >= 4 {
                        let len = u16::from_be_bytes([buf[2], buf[3]]) as usize;
                        let total = if buf[0] >= 0x40 {
                            4 + len.div_ceil(4) * 4
                        } else {
                            20 + len
                        };
                        if buf.len() >= total {
                            return Some(buf.drain(..total).collect());
                        }
                    }
                    let mut chunk = [0u8; 4096];
                    match tokio::time::timeout_at(deadline, s.read(&mut chunk)).await {
                        Ok(Ok(0)) | Ok(Err(_)) | Err(_) => return None,
                        Ok(Ok(n)) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
            }
        }
    }

    async fn recv(&mut self) -> Vec<u8> {
        self.recv_within(WAIT).await.expect("an answer in time")
    }

    fn key(&self) -> MessageIntegrityCredentials {
        LongTermKeyCredentials::new(self.user.clone(), self.pass.clone(), self.realm.clone()).into()
    }

    /// A request of `method` with `attrs`, signed unless `sign` is false.
    fn request(
        &self,
        method: Method,
        attrs: &[&dyn stun_types::prelude::AttributeWrite],
        sign: bool,
    ) -> Vec<u8> {
        let mut m = Message::builder_request(method, MessageWriteVec::new());
        for a in attrs {
            m.add_attribute(*a).unwrap();
        }
        if sign {
            m.add_attribute(&Username::new(&self.user).unwrap())
                .unwrap();
            m.add_attribute(&Realm::new(&self.realm).unwrap()).unwrap();
            m.add_attribute(&Nonce::new(&self.nonce).unwrap()).unwrap();
            m.add_message_integrity(&self.key(), IntegrityAlgorithm::Sha1)
                .unwrap();
        }
        m.add_fingerprint().unwrap();
        m.finish()
    }

    /// Sends and returns the answer (checked to be a response of the same transaction).
    async fn call(&mut self, req: Vec<u8>) -> Vec<u8> {
        let tid = Message::from_bytes(&req).unwrap().transaction_id();
        self.send_raw(&req).await;
        loop {
            let r = self.recv().await;
            if let Ok(m) = Message::from_bytes(&r) {
                if m.is_response() && m.transaction_id() == tid {
                    return r;
                }
            }
        }
    }

    /// Learns realm and nonce from the 401 of an unsigned Allocate.
    async fn challenge(&mut self) {
        let req = self.request(ALLOCATE, &[&RequestedTransport::new(17)], false);
        let r = self.call(req).await;
        let m = Message::from_bytes(&r).unwrap();
        assert_eq!(code(&r), Some(401), "unauthenticated Allocate");
        self.realm = m.attribute::<Realm>().unwrap().realm().to_owned();
        self.nonce = m.attribute::<Nonce>().unwrap().nonce().to_owned();
        assert!(!self.nonce.is_empty());
    }

    /// Allocate with the client's credentials; the answer.
    async fn allocate_raw(&mut self) -> Vec<u8> {
        if self.nonce.is_empty() {
            self.challenge().await;
        }
        let req = self.request(ALLOCATE, &[&RequestedTransport::new(17)], true);
        self.call(req).await
    }

    /// A successful Allocate: the relayed address.
    async fn allocate(&mut self) -> SocketAddr {
        let r = self.allocate_raw().await;
        assert_eq!(code(&r), None, "allocation refused");
        let m = Message::from_bytes(&r).unwrap();
        assert!(m.has_class(MessageClass::Success));
        m.validate_integrity(&self.key())
            .expect("the answer is signed with our key");
        assert_eq!(m.attribute::<Lifetime>().unwrap().seconds(), 600);
        m.attribute::<XorMappedAddress>()
            .expect("XOR-MAPPED-ADDRESS");
        m.attribute::<XorRelayedAddress>()
            .unwrap()
            .addr(m.transaction_id())
    }

    async fn permission(&mut self, peer: SocketAddr) -> Option<u16> {
        let req = {
            let mut m = Message::builder_request(CREATE_PERMISSION, MessageWriteVec::new());
            // The builder picks its own transaction id: the attribute must use it.
            let t = m.transaction_id();
            m.add_attribute(&XorPeerAddress::new(peer, t)).unwrap();
            self.sign(m)
        };
        code(&self.call(req).await)
    }

    async fn channel_bind(&mut self, num: u16, peer: SocketAddr) -> Option<u16> {
        let req = {
            let mut m = Message::builder_request(CHANNEL_BIND, MessageWriteVec::new());
            let t = m.transaction_id();
            m.add_attribute(&ChannelNumber::new(num)).unwrap();
            m.add_attribute(&XorPeerAddress::new(peer, t)).unwrap();
            self.sign(m)
        };
        code(&self.call(req).await)
    }

    async fn refresh(&mut self, lifetime: u32) -> Vec<u8> {
        let req = self.request(REFRESH, &[&Lifetime::new(lifetime)], true);
        self.call(req).await
    }

    fn sign(&self, mut m: MessageWriteVec) -> Vec<u8> {
        m.add_attribute(&Username::new(&self.user).unwrap())
            .unwrap();
        m.add_attribute(&Realm::new(&self.realm).unwrap()).unwrap();
        m.add_attribute(&Nonce::new(&self.nonce).unwrap()).unwrap();
        m.add_message_integrity(&self.key(), IntegrityAlgorithm::Sha1)
            .unwrap();
        m.finish()
    }

    async fn send_indication(&mut self, peer: SocketAddr, data: &[u8]) {
        let mut m = Message::builder_indication(SEND, MessageWriteVec::new());
        let t = m.transaction_id();
        m.add_attribute(&XorPeerAddress::new(peer, t)).unwrap();
        m.add_attribute(&Data::new(data)).unwrap();
        let b = m.finish();
        self.send_raw(&b).await;
    }

    async fn channel_data(&mut self, num: u16, data: &[u8]) {
        let mut b = num.to_be_bytes().to_vec();
        b.extend_from_slice(&(data.len() as u16).to_be_bytes());
        b.extend_from_slice(data);
        if matches!(self.conn, Conn::Stream(..)) {
            while b.len() % 4 != 0 {
                b.push(0);
            }
        }
        self.send_raw(&b).await;
    }
}

/// The error code of an answer (None for a success).
fn code(r: &[u8]) -> Option<u16> {
    let m = Message::from_bytes(r).expect("a STUN answer");
    if m.has_class(MessageClass::Error) {
        Some(m.attribute::<ErrorCode>().expect("ERROR-CODE").code())
    } else {
        None
    }
}

async fn peer() -> (UdpSocket, SocketAddr) {
    let s = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let a = s.local_addr().unwrap();
    (s, a)
}

async fn peer_recv(s: &UdpSocket) -> Option<(Vec<u8>, SocketAddr)> {
    let mut buf = [0u8; 4096];
    match tokio::time::timeout(Duration::from_millis(1500), s.recv_from(&mut buf)).await {
        Ok(Ok((n, from))) => Some((buf[..n].to_vec(), from)),
        _ => None,
    }
}

#[tokio::test]
async fn allocate_needs_valid_fresh_credentials() {
    let relay = Relay::start(|_| {}).await;
    // Both clients stay connected until the count below (a TCP allocation ends with its
    // connection, so dropping the TCP client early would race the assertion).
    let mut clients = Vec::new();
    for via in [Via::Udp, Via::Tcp, Via::Tls] {
        // No credentials: 401 with REALM and NONCE (checked in challenge()).
        let mut c = Client::over(&relay, via).await;
        c.challenge().await;
        assert_eq!(c.realm, "switchboard");
        // Wrong password: MESSAGE-INTEGRITY does not verify.
        c.pass = "not-the-password".into();
        assert_eq!(code(&c.allocate_raw().await), Some(401), "bad integrity");
        // Expired REST credentials (right password for that username).
        (c.user, c.pass) = creds_for("alice", now() - 10);
        assert_eq!(code(&c.allocate_raw().await), Some(401), "expired");
        // Not the REST form.
        c.user = "alice".into();
        assert_eq!(code(&c.allocate_raw().await), Some(401), "no expiry");
        // Another realm.
        (c.user, c.pass) = creds_for("alice", now() + 60);
        let realm = std::mem::replace(&mut c.realm, "elsewhere".into());
        assert_eq!(code(&c.allocate_raw().await), Some(401), "wrong realm");
        c.realm = realm;
        // Signed but missing NONCE: 400.
        let req = {
            let mut m = Message::builder_request(ALLOCATE, MessageWriteVec::new());
            m.add_attribute(&RequestedTransport::new(17)).unwrap();
            m.add_attribute(&Username::new(&c.user).unwrap()).unwrap();
            m.add_message_integrity(&c.key(), IntegrityAlgorithm::Sha1)
                .unwrap();
            m.finish()
        };
        assert_eq!(code(&c.call(req).await), Some(400));
        // Good credentials: an allocation on the relay address.
        let relayed = c.allocate().await;
        assert_eq!(relayed.ip().to_string(), "127.0.0.1");
        assert!((40000..=48000).contains(&relayed.port()));
        // A second Allocate on the same 5-tuple (new transaction): 437.
        assert_eq!(code(&c.allocate_raw().await), Some(437));
        // Another user on the same 5-tuple: 441.
        (c.user, c.pass) = creds_for("mallory", now() + 60);
        assert_eq!(code(&c.refresh(600).await), Some(441));
        clients.push(c);
    }
    assert_eq!(relay.turn().allocations(), 3);
    drop(clients);
}

#[tokio::test]
async fn stale_and_forged_nonces_get_438_with_a_fresh_one() {
    let relay = Relay::start(|t| t.nonce_lifetime = 1).await;
    let mut c = Client::udp(&relay).await;
    c.challenge().await;
    c.nonce = format!("{:016x}{:016x}", now() + 500, 12345u64); // not ours
    let r = c.allocate_raw().await;
    assert_eq!(code(&r), Some(438));
    let m = Message::from_bytes(&r).unwrap();
    let fresh = m.attribute::<Nonce>().unwrap().nonce().to_owned();
    assert!(m.attribute::<Realm>().is_ok());
    // Expired: a real nonce, two seconds later.
    c.nonce = fresh;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let r = c.allocate_raw().await;
    assert_eq!(code(&r), Some(438), "stale");
    c.nonce = Message::from_bytes(&r)
        .unwrap()
        .attribute::<Nonce>()
        .unwrap()
        .nonce()
        .to_owned();
    c.allocate().await;
}

#[tokio::test]
async fn refresh_sets_the_lifetime_and_zero_deletes() {
    let relay = Relay::start(|_| {}).await;
    let mut c = Client::udp(&relay).await;
    c.allocate().await;
    assert_eq!(relay.turn().allocations(), 1);
    let r = c.refresh(120).await;
    assert_eq!(code(&r), None);
    let m = Message::from_bytes(&r).unwrap();
    assert_eq!(m.attribute::<Lifetime>().unwrap().seconds(), 120);
    let r = c.refresh(100_000).await;
    assert_eq!(
        Message::from_bytes(&r)
            .unwrap()
            .attribute::<Lifetime>()
            .unwrap()
            .seconds(),
        3600,
        "capped at the maximum"
    );
    let r = c.refresh(0).await;
    assert_eq!(code(&r), None);
    assert_eq!(
        Message::from_bytes(&r)
            .unwrap()
            .attribute::<Lifetime>()
            .unwrap()
            .seconds(),
        0
    );
    assert_eq!(relay.turn().allocations(), 0);
    assert_eq!(code(&c.refresh(600).await), Some(437), "gone");
    let (_p, pa) = peer().await;
    assert_eq!(c.permission(pa).await, Some(437));
    // A new allocation on the same 5-tuple is possible again.
    c.allocate().await;
}

async fn send_and_data_round_trip(via: Via) {
    let relay = Relay::start(|t| t.allow_loopback_peers = true).await;
    let mut c = Client::over(&relay, via).await;
    let relayed = c.allocate().await;
    let (p, pa) = peer().await;
    // No permission yet: nothing reaches the peer.
    c.send_indication(pa, b"too early").await;
    assert!(peer_recv(&p).await.is_none());
    assert_eq!(c.permission(pa).await, None);
    c.send_indication(pa, b"hello peer").await;
    let (got, from) = peer_recv(&p).await.expect("relayed to the peer");
    assert_eq!(got, b"hello peer");
    assert_eq!(from, relayed, "from the relayed address");
    // The peer answers: a Data indication.
    p.send_to(b"hello client", relayed).await.unwrap();
    let d = c.recv().await;
    let m = Message::from_bytes(&d).unwrap();
    assert!(m.has_method(DATA) && m.has_class(MessageClass::Indication));
    assert_eq!(
        m.attribute::<XorPeerAddress>()
            .unwrap()
            .addr(m.transaction_id()),
        pa
    );
    assert_eq!(m.attribute::<Data>().unwrap().data(), b"hello client");
    // Permissions are per IP address: a stranger on another address is not relayed.
    let q = UdpSocket::bind("127.0.0.2:0").await.unwrap();
    q.send_to(b"spam", relayed).await.unwrap();
    assert!(c.recv_within(Duration::from_millis(500)).await.is_none());
    let t = relay.turn();
    assert_eq!(t.relayed_count(0).0, 1);
    assert_eq!(t.relayed_count(1), (1, 12));
}

#[tokio::test]
async fn send_and_data_indications_round_trip_over_udp() {
    send_and_data_round_trip(Via::Udp).await;
}

#[tokio::test]
async fn send_and_data_indications_round_trip_over_tcp() {
    send_and_data_round_trip(Via::Tcp).await;
}

#[tokio::test]
async fn send_and_data_indications_round_trip_over_tls_on_the_web_listener() {
    send_and_data_round_trip(Via::Tls).await;
}

async fn channel_round_trip(via: Via) {
    let relay = Relay::start(|t| t.allow_loopback_peers = true).await;
    let mut c = Client::over(&relay, via).await;
    let relayed = c.allocate().await;
    let (p, pa) = peer().await;
    c.channel_data(0x4001, b"unbound").await;
    assert!(peer_recv(&p).await.is_none());
    assert_eq!(c.channel_bind(0x3fff, pa).await, Some(400), "not a channel");
    assert_eq!(c.channel_bind(0x8000, pa).await, Some(400), "not a channel");
    // The last of RFC 5766's range is a channel (coturn's client may pick it).
    let (_q, qa) = peer().await;
    assert_eq!(c.channel_bind(0x7fff, qa).await, None, "0x7FFF");
    assert_eq!(c.channel_bind(0x4001, pa).await, None);
    assert_eq!(c.channel_bind(0x4001, pa).await, None, "refresh");
    let (_o, other) = peer().await;
    assert_eq!(c.channel_bind(0x4001, other).await, Some(400), "taken");
    assert_eq!(c.channel_bind(0x4002, pa).await, Some(400), "peer bound");
    for payload in [&b"abc"[..], b"four", b"a longer payload of 33 bytes....."] {
        c.channel_data(0x4001, payload).await;
        let (got, from) = peer_recv(&p).await.expect("relayed");
        assert_eq!(got, payload);
        assert_eq!(from, relayed);
        p.send_to(payload, relayed).await.unwrap();
        let d = c.recv().await;
        assert_eq!(&d[0..2], &[0x40, 0x01]);
        let len = u16::from_be_bytes([d[2], d[3]]) as usize;
        assert_eq!(&d[4..4 + len], payload);
        if via != Via::Udp {
            assert_eq!(d.len() % 4, 0, "padded on a stream");
        }
    }
}

#[tokio::test]
async fn channel_bind_and_channel_data_round_trip_over_udp() {
    channel_round_trip(Via::Udp).await;
}

#[tokio::test]
async fn channel_bind_and_channel_data_round_trip_over_tcp() {
    channel_round_trip(Via::Tcp).await;
}

#[tokio::test]
async fn channel_bind_and_channel_data_round_trip_over_tls_on_the_web_listener() {
    channel_round_trip(Via::Tls).await;
}

const REFUSED: &[&str] = &[
    "127.0.0.1:9",
    "0.0.0.0:9",
    "10.1.2.3:9",
    "172.16.0.1:9",
    "192.168.1.1:9",
    "100.64.0.1:9",
    "169.254.169.254:80",
    "224.0.0.1:9",
    "255.255.255.255:9",
    "192.0.2.1:9",
    "198.18.0.1:9",
    "240.0.0.1:9",
    "[::1]:9",
    "[::]:9",
    "[::ffff:127.0.0.1]:9",
    "[::ffff:10.0.0.1]:9",
    "[::ffff:0.0.0.0]:9",
    "[::127.0.0.1]:9",
    "[64:ff9b::7f00:1]:9",
    "[fe80::1]:9",
    "[fc00::1]:9",
    "[fd00::1]:9",
    "[ff02::1]:9",
    "[2001:db8::1]:9",
];

async fn refusals(via: Via) {
    let relay = Relay::start(|_| {}).await;
    let mut c = Client::over(&relay, via).await;
    c.allocate().await;
    for p in REFUSED {
        let pa: SocketAddr = p.parse().unwrap();
        assert_eq!(c.permission(pa).await, Some(403), "CreatePermission {p}");
        assert_eq!(
            c.channel_bind(0x4010, pa).await,
            Some(403),
            "ChannelBind {p}"
        );
    }
    let t = relay.turn();
    let counted: u64 = (0..8).map(|i| t.refused_count(i)).sum();
    assert_eq!(counted, 2 * REFUSED.len() as u64);
    // Send indications to refused peers are dropped and counted.
    c.send_indication("127.0.0.1:9".parse().unwrap(), b"x")
        .await;
    c.send_indication("[::ffff:127.0.0.1]:9".parse().unwrap(), b"x")
        .await;
    c.send_indication("0.0.0.0:9".parse().unwrap(), b"x").await;
    tokio::time::timeout(WAIT, async {
        while (0..8).map(|i| t.refused_count(i)).sum::<u64>() < counted + 3 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("Send refusals counted");
    assert_eq!(t.relayed_count(0).0, 0, "nothing relayed");
    // /metrics shows them by reason, and the allocation.
    let (_, body) = http_get(relay.srv.addr, "/metrics").await;
    for line in [
        "switchboard_turn_allocations 1",
        "switchboard_turn_allocations_created_total 1",
        "switchboard_turn_relayed_packets_total{direction=\"to_peer\"} 0",
    ] {
        assert!(body.contains(line), "{line} in\n{body}");
    }
    let loopback = body
        .lines()
        .find(|l| l.starts_with("switchboard_turn_peers_refused_total{reason=\"loopback\"}"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse::<u64>().ok());
    assert!(loopback >= Some(4), "{body}");
    // A public address is fine (no packet is sent by a permission).
    assert_eq!(c.permission("8.8.8.8:53".parse().unwrap()).await, None);
    // An IPv6 public peer on an IPv4 relay: family mismatch.
    assert_eq!(
        c.permission("[2606:4700::1111]:53".parse().unwrap()).await,
        Some(443)
    );
    // ChannelBind checks the same way: the other family is 443, a refused address 403
    // whatever its family.
    assert_eq!(
        c.channel_bind(0x4001, "[2606:4700::1111]:53".parse().unwrap())
            .await,
        Some(443)
    );
    assert_eq!(
        c.channel_bind(0x4001, "[::1]:53".parse().unwrap()).await,
        Some(403)
    );
}

#[tokio::test]
async fn refused_peers_get_403_over_udp() {
    refusals(Via::Udp).await;
}

#[tokio::test]
async fn refused_peers_get_403_over_tcp() {
    refusals(Via::Tcp).await;
}

#[tokio::test]
async fn refused_peers_get_403_over_tls() {
    refusals(Via::Tls).await;
}

#[tokio::test]
async fn the_loopback_switch_admits_loopback_and_nothing_else() {
    let relay = Relay::start(|t| t.allow_loopback_peers = true).await;
    for via in [Via::Udp, Via::Tcp] {
        let mut c = Client::over(&relay, via).await;
        c.allocate().await;
        assert_eq!(c.permission("127.0.0.1:9".parse().unwrap()).await, None);
        for p in [
            "0.0.0.0:9",
            "10.0.0.1:9",
            "[fe80::1]:9",
            "[::ffff:0.0.0.0]:9",
        ] {
            assert_eq!(c.permission(p.parse().unwrap()).await, Some(403), "{p}");
        }
    }
}

#[tokio::test]
async fn malformed_and_oversized_input_is_answered_400_or_dropped() {
    let relay = Relay::start(|t| t.allow_loopback_peers = true).await;
    let mut c = Client::udp(&relay).await;
    for junk in [
        &b""[..],
        b"x",
        b"GET / HTTP/1.1\r\n\r\n",
        &[0u8; 19],
        &[0xff; 100],
        &[0x40, 0x01, 0xff, 0xff, 1, 2, 3],
    ] {
        c.send_raw(junk).await;
    }
    // An Allocate whose attribute runs past the end: 400.
    let mut bad = c.request(ALLOCATE, &[&RequestedTransport::new(17)], false);
    bad[3] += 8;
    bad.extend_from_slice(&[0x00, 0x06, 0x00, 0x40, 0, 0, 0, 0]);
    c.send_raw(&bad).await;
    let r = c.recv().await;
    assert_eq!(code(&r), Some(400));
    // Oversized datagrams.
    c.send_raw(&vec![0x40; 65_000]).await;
    let mut big = vec![0u8; 60_000];
    big[..8].copy_from_slice(&[0x00, 0x03, 0xEA, 0x4C, 0x21, 0x12, 0xA4, 0x42]);
    c.send_raw(&big).await;
    // An unknown method: 400.
    let r = c.call(c.request(Method::new(0x0055), &[], false)).await;
    assert_eq!(code(&r), Some(400));
    // Binding is still STUN on the same socket.
    let r = c.call(c.request(BINDING, &[], false)).await;
    let m = Message::from_bytes(&r).unwrap();
    assert!(m.attribute::<XorMappedAddress>().is_ok());
    // Over TCP: a stream that is not TURN is closed; an oversized frame header waits.
    let mut t = TcpStream::connect(relay.tcp).await.unwrap();
    t.write_all(&[0xC0; 64]).await.unwrap();
    let mut buf = [0u8; 16];
    let n = tokio::time::timeout(WAIT, t.read(&mut buf)).await.unwrap();
    assert!(matches!(n, Ok(0) | Err(_)), "closed");
    let mut tc = Client::tcp(&relay).await;
    tc.send_raw(&[0x40, 0x01, 0xff, 0xff]).await;
    tc.send_raw(&[7u8; 1000]).await;
    // Still serving, both ways.
    let mut c2 = Client::udp(&relay).await;
    c2.allocate().await;
    let mut c3 = Client::tcp(&relay).await;
    c3.allocate().await;
    // Over TLS on the web listener: bytes that look like STUN but frame nothing (a length
    // that is not a multiple of 4) close that connection; the listener goes on serving TURN.
    let (mut s, _) = crate::https::tls_connect(relay.tls, &[&relay.cert]).await;
    s.write_all(&[0x00, 0x01, 0x00, 0x07, 1, 2, 3, 4, 5, 6, 7])
        .await
        .unwrap();
    let n = tokio::time::timeout(WAIT, s.read(&mut buf)).await.unwrap();
    assert!(matches!(n, Ok(0) | Err(_)), "closed");
    let mut c4 = Client::tls(&relay).await;
    c4.allocate().await;
}

#[tokio::test]
async fn quotas_answer_486() {
    let relay = Relay::start(|t| {
        t.user_quota = 1;
        t.total_quota = 2;
    })
    .await;
    let mut a1 = Client::udp(&relay).await;
    a1.allocate().await;
    let mut a2 = Client::udp(&relay).await;
    assert_eq!(code(&a2.allocate_raw().await), Some(486), "alice's quota");
    let mut b = Client::tcp(&relay).await;
    (b.user, b.pass) = creds_for("bob", now() + 60);
    b.allocate().await;
    let mut c = Client::udp(&relay).await;
    (c.user, c.pass) = creds_for("carol", now() + 60);
    assert_eq!(code(&c.allocate_raw().await), Some(486), "total");
    // Freed when an allocation goes: deleted, or its TCP connection closes.
    assert_eq!(code(&a1.refresh(0).await), None);
    assert_eq!(code(&a2.allocate_raw().await), None);
    drop(b);
    tokio::time::timeout(WAIT, async {
        while relay.turn().allocations() > 1 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the TCP allocation went with its connection");
    assert_eq!(code(&c.allocate_raw().await), None);
}

#[tokio::test]
async fn ice_servers_get_turn_uris_for_udp_and_tcp() {
    let relay = Relay::start(|_| {}).await;
    let r = relay.srv.running.as_ref().unwrap();
    // The chat service reads the router's config: the relay's URIs were added at start.
    let uris = &r.router.config.calls.ice_uris;
    assert_eq!(
        uris,
        &vec![
            format!("stun:127.0.0.1:{}", relay.udp.port()),
            format!("turn:127.0.0.1:{}?transport=udp", relay.udp.port()),
            format!("turn:127.0.0.1:{}?transport=tcp", relay.tcp.port()),
        ]
    );
}

/// A numbered payload of `len` bytes (at least 4): the number first, then filler.
fn numbered(n: u32, len: usize) -> Vec<u8> {
    let mut p = n.to_be_bytes().to_vec();
    p.resize(len.max(4), (n % 251) as u8);
    p
}

/// The payload a relayed packet to a client carries: ChannelData or a Data indication.
fn client_payload(pkt: &[u8]) -> Vec<u8> {
    if pkt[0] >= 0x40 {
        let len = u16::from_be_bytes([pkt[2], pkt[3]]) as usize;
        return pkt[4..4 + len].to_vec();
    }
    let m = Message::from_bytes(pkt).expect("a Data indication");
    assert!(m.has_method(DATA) && m.has_class(MessageClass::Indication));
    m.attribute::<Data>().unwrap().data().to_vec()
}

/// Bursts of datagrams through several allocations at once, both ways, arrive whole and in
/// order: what the relay batches (one `recvmmsg` → per relay socket `sendmmsg`; every relay
/// socket → one client queue → `sendmmsg`) must keep each flow's order and lose nothing.
/// With `equal` sizes, runs to one destination go out as GSO sends.
async fn bursts_keep_order(channels: bool, equal: bool) {
    const CLIENTS: usize = 3;
    const BURSTS: u32 = 12;
    const PER_BURST: u32 = 40;
    let relay = Relay::start(|t| {
        t.allow_loopback_peers = true;
        t.max_bps = 0;
    })
    .await;
    let mut flows = Vec::new();
    for _ in 0..CLIENTS {
        let mut c = Client::udp(&relay).await;
        let relayed = c.allocate().await;
        let (p, pa) = peer().await;
        if channels {
            assert_eq!(c.channel_bind(0x4000, pa).await, None);
        } else {
            assert_eq!(c.permission(pa).await, None);
        }
        flows.push((c, relayed, p, pa));
    }
    // Sizes vary so that a reordering or a mix-up of slots shows (or are equal: the numbers
    // show it then).
    let size = |n: u32| {
        if equal {
            160
        } else {
            4 + (n as usize * 37) % 900
        }
    };
    for burst in 0..BURSTS {
        let first = burst * PER_BURST;
        // Client to peer: every client's burst, interleaved datagram by datagram.
        for n in first..first + PER_BURST {
            for (c, _, _, pa) in flows.iter_mut() {
                if channels {
                    c.channel_data(0x4000, &numbered(n, size(n))).await;
                } else {
                    c.send_indication(*pa, &numbered(n, size(n))).await;
                }
            }
        }
        for (i, (_, relayed, p, _)) in flows.iter().enumerate() {
            for n in first..first + PER_BURST {
                let (got, from) = peer_recv(p)
                    .await
                    .unwrap_or_else(|| panic!("flow {i}: datagram {n} to the peer lost"));
                assert_eq!(from, *relayed);
                assert_eq!(got, numbered(n, size(n)), "flow {i}: to the peer in order");
            }
        }
        // Peer to client: the peers' bursts, interleaved.
        for n in first..first + PER_BURST {
            for (_, relayed, p, _) in &flows {
                p.send_to(&numbered(n, size(n)), relayed).await.unwrap();
            }
        }
        for (i, (c, _, _, _)) in flows.iter_mut().enumerate() {
            for n in first..first + PER_BURST {
                let pkt = c
                    .recv_within(Duration::from_secs(3))
                    .await
                    .unwrap_or_else(|| panic!("flow {i}: datagram {n} to the client lost"));
                if channels {
                    assert_eq!(&pkt[0..2], &[0x40, 0x00]);
                }
                assert_eq!(
                    client_payload(&pkt),
                    numbered(n, size(n)),
                    "flow {i}: to the client in order"
                );
            }
        }
    }
    let total = u64::from(BURSTS * PER_BURST) * CLIENTS as u64;
    let bytes: u64 = (0..BURSTS * PER_BURST).map(|n| size(n) as u64).sum::<u64>() * CLIENTS as u64;
    let t = relay.turn();
    assert_eq!(t.relayed_count(0), (total, bytes), "to peers");
    assert_eq!(t.relayed_count(1), (total, bytes), "to clients");
    assert_eq!(t.dropped_count(), 0);
}

#[tokio::test]
async fn bursts_of_channel_data_keep_their_order_both_ways() {
    bursts_keep_order(true, false).await;
}

#[tokio::test]
async fn bursts_of_equal_channel_data_keep_their_order_both_ways() {
    bursts_keep_order(true, true).await;
}

#[tokio::test]
async fn bursts_of_send_and_data_indications_keep_their_order_both_ways() {
    bursts_keep_order(false, false).await;
    bursts_keep_order(false, true).await;
}

/// RFC 8489 §6.3: a request with a comprehension-required attribute the relay does not
/// understand gets 420 (Unknown Attribute) listing it, once authenticated; one that need not be
/// understood is ignored; an indication with one is dropped.
#[tokio::test]
async fn unknown_comprehension_required_attributes_get_420() {
    use stun_types::attribute::{AttributeType, RawAttribute, UnknownAttributes};
    let relay = Relay::start(|t| t.allow_loopback_peers = true).await;
    let mut c = Client::udp(&relay).await;
    let required = RawAttribute::new(AttributeType::new(0x7F00), &[1, 2, 3, 4]);
    let optional = RawAttribute::new(AttributeType::new(0x8F00), &[1, 2, 3, 4]);
    let dont_fragment = RawAttribute::new(AttributeType::new(0x001A), &[]);
    let udp = RequestedTransport::new(17);
    // Not authenticated yet: the challenge comes first.
    let r = c.call(c.request(ALLOCATE, &[&udp, &required], false)).await;
    assert_eq!(code(&r), Some(401));
    c.challenge().await;
    let listed = |r: &[u8]| {
        let m = Message::from_bytes(r).unwrap();
        let u = m
            .attribute::<UnknownAttributes>()
            .expect("UNKNOWN-ATTRIBUTES");
        (0..=0xFFFFu16)
            .filter(|t| u.has_attribute(AttributeType::new(*t)))
            .collect::<Vec<u16>>()
    };
    let r = c
        .call(c.request(ALLOCATE, &[&udp, &optional, &required], true))
        .await;
    assert_eq!(code(&r), Some(420));
    assert_eq!(listed(&r), [0x7F00]);
    Message::from_bytes(&r)
        .unwrap()
        .validate_integrity(&c.key())
        .expect("the 420 is signed");
    // The relay does not set DF: DONT-FRAGMENT is not understood (RFC 8656 §7.2).
    let r = c
        .call(c.request(ALLOCATE, &[&udp, &dont_fragment], true))
        .await;
    assert_eq!(code(&r), Some(420));
    assert_eq!(listed(&r), [0x001A]);
    assert_eq!(relay.turn().allocations(), 0, "nothing allocated");
    // Comprehension-optional ones are ignored.
    let r = c.call(c.request(ALLOCATE, &[&udp, &optional], true)).await;
    assert_eq!(code(&r), None, "allocated");
    let r = c.call(c.request(REFRESH, &[&required], true)).await;
    assert_eq!(code(&r), Some(420));
    // A Send indication with one is dropped; without, it is relayed.
    let (p, pa) = peer().await;
    assert_eq!(c.permission(pa).await, None);
    let mut m = Message::builder_indication(SEND, MessageWriteVec::new());
    let t = m.transaction_id();
    m.add_attribute(&XorPeerAddress::new(pa, t)).unwrap();
    m.add_attribute(&Data::new(b"not understood")).unwrap();
    m.add_attribute(&required).unwrap();
    c.send_raw(&m.finish()).await;
    assert!(peer_recv(&p).await.is_none(), "dropped");
    c.send_indication(pa, b"understood").await;
    assert_eq!(peer_recv(&p).await.unwrap().0, b"understood");
    // Binding on the same socket: 420 too, unsigned.
    let r = c.call(c.request(BINDING, &[&required], false)).await;
    assert_eq!(code(&r), Some(420));
    assert_eq!(listed(&r), [0x7F00]);
}
