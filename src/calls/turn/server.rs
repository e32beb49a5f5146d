//! The allocation table and the handling of what clients send: STUN requests and
//! indications (parsed and written with `stun-types`, TURN attributes from `turn-types`) and
//! ChannelData (parsed by hand: four bytes of header, no allocation on that path).
//!
//! Everything here is synchronous; locks are short and never held across an await. The
//! table lock is taken once per client packet to find the allocation; the allocation's own
//! lock guards its permissions, channels and token bucket.

use super::auth::Auth;
use super::batch::Outbound;
use super::TurnConfig;
use crate::calls::peer_filter::{self, Denied};
use crate::metrics::{Metrics, TurnCounts};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use stun_types::attribute::{
    AttributeType, ErrorCode, MessageIntegrity, MessageIntegritySha256, Nonce, Realm, Software,
    UnknownAttributes, Username, XorMappedAddress,
};
use stun_types::message::{
    IntegrityAlgorithm, IntegrityKey, Message, MessageClass, MessageWrite, MessageWriteExt,
    MessageWriteVec, BINDING,
};
use stun_types::prelude::{AttributeStaticType, AttributeWrite};
use stun_types::AddressFamily;
use turn_types::attribute::{
    ChannelNumber, Data, EvenPort, Lifetime, RequestedAddressFamily, RequestedTransport,
    ReservationToken, XorPeerAddress, XorRelayedAddress,
};
use turn_types::message::{ALLOCATE, CHANNEL_BIND, CREATE_PERMISSION, REFRESH, SEND};

const PERMISSION_LIFETIME: Duration = Duration::from_secs(300);
const CHANNEL_LIFETIME: Duration = Duration::from_secs(600);
/// Permissions and channels one allocation may hold (a call needs a handful).
const MAX_PER_ALLOCATION: usize = 64;

/// How a client reaches the server.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Transport {
    Udp,
    Tcp,
    /// TCP with TLS (`turns:`), on a TLS web listener.
    Tls,
}

/// The way back to a client.
#[derive(Clone, Debug)]
pub enum Sink {
    /// The listening UDP socket's queue, sent in batches (`batch::Outbound`).
    Udp(Arc<Outbound>),
    /// The writer task of the client's TCP connection.
    Tcp(tokio::sync::mpsc::Sender<Vec<u8>>),
}

/// A token bucket of bytes (one second's worth of capacity).
#[derive(Debug)]
struct Bucket {
    rate: u64,
    tokens: u64,
    last: Instant,
}

impl Bucket {
    fn new(rate: u64, now: Instant) -> Bucket {
        Bucket {
            rate,
            tokens: rate,
            last: now,
        }
    }

    fn take(&mut self, n: usize, now: Instant) -> bool {
        if self.rate == 0 {
            return true;
        }
        let elapsed = now.saturating_duration_since(self.last);
        if elapsed >= Duration::from_millis(1) {
            let add = (elapsed.as_micros() as u64).saturating_mul(self.rate) / 1_000_000;
            self.tokens = self.tokens.saturating_add(add).min(self.rate);
            self.last = now;
        }
        let n = n as u64;
        if self.tokens >= n {
            self.tokens -= n;
            true
        } else {
            false
        }
    }
}

#[derive(Debug)]
struct Channel {
    num: u16,
    peer: SocketAddr,
    expires: Instant,
}

#[derive(Debug)]
struct AllocState {
    expires: Instant,
    perms: Vec<(IpAddr, Instant)>,
    channels: Vec<Channel>,
    bucket: Bucket,
    /// The Allocate that made it: a retransmission gets the same success.
    allocate_tid: u128,
    lifetime: u32,
}

impl AllocState {
    fn permitted(&self, ip: IpAddr, now: Instant) -> bool {
        self.perms.iter().any(|(p, e)| *p == ip && *e > now)
    }

    fn permit(&mut self, ip: IpAddr, now: Instant) -> bool {
        if let Some(p) = self.perms.iter_mut().find(|(p, _)| *p == ip) {
            p.1 = now + PERMISSION_LIFETIME;
            return true;
        }
        if self.perms.len() >= MAX_PER_ALLOCATION {
            return false;
        }
        self.perms.push((ip, now + PERMISSION_LIFETIME));
        true
    }

    fn prune(&mut self, now: Instant) {
        self.perms.retain(|(_, e)| *e > now);
        self.channels.retain(|c| c.expires > now);
    }
}

/// One allocation: a relay socket for one client 5-tuple.
#[derive(Debug)]
pub struct Allocation {
    pub client: SocketAddr,
    pub transport: Transport,
    pub sink: Sink,
    /// The relay socket (sends go straight to the kernel, see `send_to_peer`).
    pub relay: tokio::net::UdpSocket,
    /// The relayed address as advertised (the external IP if configured).
    pub relayed: SocketAddr,
    username: String,
    userid: String,
    key: IntegrityKey,
    st: Mutex<AllocState>,
    task: Mutex<Option<tokio::task::AbortHandle>>,
}

/// What handling a client's packet asks of the caller.
#[derive(Debug)]
pub enum Handled {
    Nothing,
    /// Send this answer back to the client.
    Answer(Vec<u8>),
    /// Send the packet's bytes in this range from the allocation's relay socket to the peer
    /// (checked and paid for already; count it as relayed once sent).
    Relay(Arc<Allocation>, SocketAddr, std::ops::Range<usize>),
}

/// What to do with a packet a peer sent to an allocation's relay socket.
pub enum FromPeer {
    Drop,
    /// Frame as ChannelData on this channel.
    Channel(u16),
    /// Frame as a Data indication.
    Indication,
}

impl Allocation {
    /// A peer's datagram of `len` bytes, received at `now`: dropped unless the peer has a
    /// permission and the bucket has room.
    pub fn from_peer(&self, peer: SocketAddr, len: usize, now: Instant) -> FromPeer {
        let mut st = self.st.lock();
        if !st.permitted(peer.ip(), now) || !st.bucket.take(len, now) {
            return FromPeer::Drop;
        }
        match st
            .channels
            .iter()
            .find(|c| c.peer == peer && c.expires > now)
        {
            Some(c) => FromPeer::Channel(c.num),
            None => FromPeer::Indication,
        }
    }

    pub fn set_task(&self, h: tokio::task::AbortHandle) {
        *self.task.lock() = Some(h);
    }
}

#[derive(Default)]
struct Table {
    by_client: HashMap<(Transport, SocketAddr), Arc<Allocation>>,
    per_user: HashMap<String, u32>,
    /// Ports kept for a later Allocate with RESERVATION-TOKEN (EVEN-PORT with R: the RTCP
    /// port next to an RTP one), 30 s each.
    reserved: HashMap<u64, (std::net::UdpSocket, Instant)>,
}

const RESERVATION_LIFETIME: Duration = Duration::from_secs(30);

/// The relay's state.
pub struct Server {
    cfg: TurnConfig,
    auth: Auth,
    metrics: Arc<Metrics>,
    /// Where relay sockets bind.
    relay_ip: IpAddr,
    /// What XOR-RELAYED-ADDRESS says.
    advertised_ip: IpAddr,
    table: Mutex<Table>,
    /// Starts a relay socket's task (set by `io`; a seam so the table stays free of I/O).
    spawn: Box<dyn Fn(Arc<Server>, Arc<Allocation>) + Send + Sync>,
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Refusal codes of Allocate for the `switchboard_turn_allocations_refused` metric.
#[derive(Clone, Copy)]
pub enum AllocRefusal {
    Unauthorized = 0,
    Quota = 1,
    Capacity = 2,
}

impl Server {
    pub fn new(
        cfg: TurnConfig,
        secret: &str,
        metrics: Arc<Metrics>,
        relay_ip: IpAddr,
        spawn: Box<dyn Fn(Arc<Server>, Arc<Allocation>) + Send + Sync>,
    ) -> Server {
        let advertised_ip = cfg.external_ip.unwrap_or(relay_ip);
        Server {
            auth: Auth::new(secret, &cfg.realm, u64::from(cfg.nonce_lifetime.max(1))),
            cfg,
            metrics,
            relay_ip,
            advertised_ip,
            table: Mutex::new(Table::default()),
            spawn,
        }
    }

    fn counts(&self) -> &TurnCounts {
        &self.metrics.turn
    }

    pub fn allocations(&self) -> usize {
        self.table.lock().by_client.len()
    }

    pub fn has_allocation(&self, transport: Transport, from: SocketAddr) -> bool {
        self.table.lock().by_client.contains_key(&(transport, from))
    }

    fn lookup(&self, transport: Transport, from: SocketAddr) -> Option<Arc<Allocation>> {
        self.table.lock().by_client.get(&(transport, from)).cloned()
    }

    /// Handles one packet from a client; the answer to send back, if any. Data for a peer is
    /// sent at once.
    pub fn on_client(
        self: &Arc<Self>,
        pkt: &[u8],
        transport: Transport,
        from: SocketAddr,
        sink: &Sink,
    ) -> Option<Vec<u8>> {
        match self.handle(pkt, transport, from, sink, Instant::now()) {
            Handled::Nothing => None,
            Handled::Answer(a) => Some(a),
            Handled::Relay(a, peer, range) => {
                if let Some(data) = pkt.get(range) {
                    self.send_to_peer(&a, data, peer);
                }
                None
            }
        }
    }

    /// Handles one packet from a client, received at `now`: what the caller is to do with it.
    /// Data for a peer has passed every check (channel or permission, peer filter, bucket)
    /// and is left to the caller to send, so that it can batch it.
    pub fn handle(
        self: &Arc<Self>,
        pkt: &[u8],
        transport: Transport,
        from: SocketAddr,
        sink: &Sink,
        now: Instant,
    ) -> Handled {
        match pkt.first() {
            Some(0x40..=0x7f) => self.channel_data(pkt, transport, from, now),
            Some(0x00..=0x3f) => self.on_stun(pkt, transport, from, sink, now),
            _ => Handled::Nothing,
        }
    }

    /// One datagram from an allocation's relay socket to a peer, now (the TCP clients' path;
    /// UDP clients' data is batched by `io`): one non-blocking `sendto` straight to the
    /// kernel — tokio's `try_send_to` would refuse until the reactor has seen the new socket
    /// writable, dropping the first packets after an Allocate. A full send buffer drops the
    /// packet (UDP).
    pub fn send_to_peer(&self, a: &Allocation, data: &[u8], peer: SocketAddr) {
        if socket2::SockRef::from(&a.relay)
            .send_to(data, &peer.into())
            .is_ok()
        {
            self.counts().relayed(0, data.len());
        } else {
            self.counts().dropped();
        }
    }

    /// ChannelData from a client: to the bound peer, if permitted (the hot path).
    fn channel_data(
        &self,
        pkt: &[u8],
        transport: Transport,
        from: SocketAddr,
        now: Instant,
    ) -> Handled {
        let (Some(h), Some(l)) = (pkt.get(0..2), pkt.get(2..4)) else {
            return Handled::Nothing;
        };
        let num = u16::from_be_bytes([h[0], h[1]]);
        let len = usize::from(u16::from_be_bytes([l[0], l[1]]));
        if pkt.len() < 4 + len {
            return Handled::Nothing;
        }
        let Some(a) = self.lookup(transport, from) else {
            return Handled::Nothing;
        };
        let peer = {
            let mut st = a.st.lock();
            let Some(peer) = st
                .channels
                .iter()
                .find(|c| c.num == num && c.expires > now)
                .map(|c| c.peer)
            else {
                return Handled::Nothing;
            };
            if !st.permitted(peer.ip(), now) || !st.bucket.take(len, now) {
                return Handled::Nothing;
            }
            peer
        };
        Handled::Relay(a, peer, 4..4 + len)
    }

    fn on_stun(
        self: &Arc<Self>,
        pkt: &[u8],
        transport: Transport,
        from: SocketAddr,
        sink: &Sink,
        now: Instant,
    ) -> Handled {
        let msg = match Message::from_bytes(pkt) {
            Ok(m) => m,
            Err(_) => return bad_request_raw(pkt).map_or(Handled::Nothing, Handled::Answer),
        };
        match msg.class() {
            MessageClass::Request => {}
            MessageClass::Indication if msg.has_method(SEND) => {
                // RFC 8489 §6.3.2: an indication with an attribute that must be understood
                // and is not is dropped.
                if crate::calls::stun::has_unknown_required(&msg) {
                    return Handled::Nothing;
                }
                return self.send_indication(&msg, transport, from, now);
            }
            _ => return Handled::Nothing,
        }
        let method = msg.method();
        if method == BINDING {
            return crate::calls::stun::respond(pkt, from)
                .map_or(Handled::Nothing, Handled::Answer);
        }
        let known = [ALLOCATE, REFRESH, CREATE_PERMISSION, CHANNEL_BIND];
        if !known.contains(&method) {
            return Handled::Answer(error(&msg, ErrorCode::BAD_REQUEST, None, &[]));
        }
        let unknown = crate::calls::stun::unknown_required(&msg);
        if !unknown.is_empty() {
            return Handled::Answer(self.unknown_attributes(&msg, transport, from, &unknown));
        }
        Handled::Answer(if method == ALLOCATE {
            self.allocate(&msg, transport, from, sink)
        } else if method == REFRESH {
            self.refresh(&msg, transport, from)
        } else if method == CREATE_PERMISSION {
            self.create_permission(&msg, transport, from)
        } else if method == CHANNEL_BIND {
            self.channel_bind(&msg, transport, from)
        } else {
            error(&msg, ErrorCode::BAD_REQUEST, None, &[])
        })
    }

    /// A request with comprehension-required attributes the relay does not understand: once
    /// the credentials check out (RFC 8489 §6.3: authentication first), 420 (Unknown Attribute)
    /// listing them in UNKNOWN-ATTRIBUTES, signed like any other answer.
    fn unknown_attributes(
        &self,
        msg: &Message,
        transport: Transport,
        from: SocketAddr,
        unknown: &[AttributeType],
    ) -> Vec<u8> {
        let existing = self.lookup(transport, from);
        match self.authenticate(msg, existing.as_deref()) {
            Ok(key) => error(
                msg,
                ErrorCode::UNKNOWN_ATTRIBUTE,
                Some(&key),
                &[&UnknownAttributes::new(unknown)],
            ),
            Err(refusal) => refusal,
        }
    }

    /// 401/438 with REALM and a fresh NONCE.
    fn challenge(&self, msg: &Message, code: u16) -> Vec<u8> {
        let nonce = self.auth.nonce(unix_now());
        match (Realm::new(self.auth.realm()), Nonce::new(&nonce)) {
            (Ok(r), Ok(n)) => error(msg, code, None, &[&r, &n]),
            _ => error(msg, code, None, &[]),
        }
    }

    /// The long-term credential check (RFC 8489 §9.2.4) of a request; the key to sign the
    /// answer with, or the refusal to send.
    fn authenticate(
        &self,
        msg: &Message,
        existing: Option<&Allocation>,
    ) -> Result<IntegrityKey, Vec<u8>> {
        if !msg.has_attribute(MessageIntegrity::TYPE)
            && !msg.has_attribute(MessageIntegritySha256::TYPE)
        {
            return Err(self.challenge(msg, ErrorCode::UNAUTHORIZED));
        }
        let (Ok(user), Ok(realm), Ok(nonce)) = (
            msg.attribute::<Username>(),
            msg.attribute::<Realm>(),
            msg.attribute::<Nonce>(),
        ) else {
            return Err(error(msg, ErrorCode::BAD_REQUEST, None, &[]));
        };
        let now = unix_now();
        if realm.realm() != self.auth.realm() {
            return Err(self.challenge(msg, ErrorCode::UNAUTHORIZED));
        }
        if !self.auth.nonce_fresh(nonce.nonce(), now) {
            return Err(self.challenge(msg, ErrorCode::STALE_NONCE));
        }
        let username = user.username();
        let key = match existing {
            Some(a) if a.username == username => a.key.clone(),
            _ => {
                // An allocation outlives its credentials (coturn too): expiry is checked when
                // allocating.
                if existing.is_none() && self.auth.check_username(username, now).is_err() {
                    return Err(self.challenge(msg, ErrorCode::UNAUTHORIZED));
                }
                self.auth.key(username)
            }
        };
        if msg.validate_integrity_with_key(&key).is_err() {
            return Err(self.challenge(msg, ErrorCode::UNAUTHORIZED));
        }
        if existing.is_some_and(|a| a.username != username) {
            return Err(error(msg, ErrorCode::WRONG_CREDENTIALS, Some(&key), &[]));
        }
        Ok(key)
    }

    /// What Refresh, CreatePermission and ChannelBind start with: the credentials, then the
    /// allocation of this 5-tuple (437 Allocation Mismatch without one).
    fn own_allocation(
        &self,
        msg: &Message,
        transport: Transport,
        from: SocketAddr,
    ) -> Result<(Arc<Allocation>, IntegrityKey), Vec<u8>> {
        let existing = self.lookup(transport, from);
        let key = self.authenticate(msg, existing.as_deref())?;
        match existing {
            Some(a) => Ok((a, key)),
            None => Err(error(msg, ErrorCode::ALLOCATION_MISMATCH, Some(&key), &[])),
        }
    }

    fn family_ok(&self, ip: IpAddr) -> bool {
        ip.is_ipv4() == self.relay_ip.is_ipv4()
    }

    /// Why the relay may not reach these peers, if it may not: 403 when the filter refuses
    /// any of them, whatever its family; else 443 when one is of the other address family.
    fn peers_refused(&self, peers: &[IpAddr]) -> Option<u16> {
        if peers.iter().any(|ip| self.peer_allowed(*ip).is_err()) {
            Some(ErrorCode::FORBIDDEN)
        } else if peers.iter().any(|ip| !self.family_ok(*ip)) {
            Some(ErrorCode::PEER_ADDRESS_FAMILY_MISMATCH)
        } else {
            None
        }
    }

    fn lifetime(&self, requested: Option<u32>) -> u32 {
        let max = self.cfg.max_lifetime.max(1);
        let default = self.cfg.default_lifetime.clamp(1, max);
        match requested {
            None => default,
            Some(r) => r.min(max).max(default),
        }
    }

    fn allocate(
        self: &Arc<Self>,
        msg: &Message,
        transport: Transport,
        from: SocketAddr,
        sink: &Sink,
    ) -> Vec<u8> {
        let existing = self.lookup(transport, from);
        let key = match self.authenticate(msg, existing.as_deref()) {
            Ok(k) => k,
            Err(r) => {
                if msg.has_attribute(MessageIntegrity::TYPE) {
                    self.counts().alloc_refused(AllocRefusal::Unauthorized);
                }
                return r;
            }
        };
        let tid = u128::from(msg.transaction_id());
        if let Some(a) = existing {
            let (same, lifetime) = {
                let st = a.st.lock();
                (st.allocate_tid == tid, st.lifetime)
            };
            if same {
                return self.allocate_success(msg, &a, lifetime, from, &key);
            }
            return error(msg, ErrorCode::ALLOCATION_MISMATCH, Some(&key), &[]);
        }
        match msg.attribute::<RequestedTransport>() {
            Ok(t) if t.protocol() == RequestedTransport::UDP => {}
            Ok(_) => {
                return error(
                    msg,
                    ErrorCode::UNSUPPORTED_TRANSPORT_PROTOCOL,
                    Some(&key),
                    &[],
                )
            }
            Err(_) => return error(msg, ErrorCode::BAD_REQUEST, Some(&key), &[]),
        }
        let even = msg.attribute::<EvenPort>().ok();
        let token = msg.attribute::<ReservationToken>().ok().map(|t| t.token());
        if even.is_some() && token.is_some() {
            return error(msg, ErrorCode::BAD_REQUEST, Some(&key), &[]);
        }
        if let Ok(f) = msg.attribute::<RequestedAddressFamily>() {
            let want_v4 = f.family() == AddressFamily::IPV4;
            if want_v4 != self.relay_ip.is_ipv4() {
                return error(
                    msg,
                    ErrorCode::ADDRESS_FAMILY_NOT_SUPPORTED,
                    Some(&key),
                    &[],
                );
            }
        }
        let username = msg
            .attribute::<Username>()
            .map(|u| u.username().to_owned())
            .unwrap_or_default();
        let userid = self
            .auth
            .check_username(&username, 0)
            .unwrap_or(&username)
            .to_owned();
        if !self.quota_left(&userid) {
            self.counts().alloc_refused(AllocRefusal::Quota);
            return error(msg, ErrorCode::ALLOCATION_QUOTA_REACHED, Some(&key), &[]);
        }
        let bound = match token {
            Some(t) => self.table.lock().reserved.remove(&t).and_then(|(s, _)| {
                s.set_nonblocking(true).ok()?;
                tokio::net::UdpSocket::from_std(s).ok().map(|s| (s, None))
            }),
            None => self.bind_relay(even.is_some(), even.is_some_and(|e| e.requested())),
        };
        let Some((relay, next)) = bound else {
            self.counts().alloc_refused(AllocRefusal::Capacity);
            return error(msg, ErrorCode::INSUFFICIENT_CAPACITY, Some(&key), &[]);
        };
        let reservation = next.and_then(|s| {
            let mut t = self.table.lock();
            if t.reserved.len() >= self.cfg.total_quota as usize {
                return None;
            }
            let token: u64 = rand::random();
            t.reserved
                .insert(token, (s, Instant::now() + RESERVATION_LIFETIME));
            Some(token)
        });
        let Ok(local) = relay.local_addr() else {
            return error(msg, ErrorCode::SERVER_ERROR, Some(&key), &[]);
        };
        let lifetime = self.lifetime(msg.attribute::<Lifetime>().ok().map(|l| l.seconds()));
        let now = Instant::now();
        let a = Arc::new(Allocation {
            client: from,
            transport,
            sink: sink.clone(),
            relay,
            relayed: SocketAddr::new(self.advertised_ip, local.port()),
            username,
            userid: userid.clone(),
            key: key.clone(),
            st: Mutex::new(AllocState {
                expires: now + Duration::from_secs(u64::from(lifetime)),
                perms: Vec::new(),
                channels: Vec::new(),
                bucket: Bucket::new(self.cfg.max_bps, now),
                allocate_tid: tid,
                lifetime,
            }),
            task: Mutex::new(None),
        });
        {
            let mut t = self.table.lock();
            let mine = t.per_user.get(&userid).copied().unwrap_or(0);
            if t.by_client.len() >= self.cfg.total_quota as usize || mine >= self.cfg.user_quota {
                drop(t);
                self.counts().alloc_refused(AllocRefusal::Quota);
                return error(msg, ErrorCode::ALLOCATION_QUOTA_REACHED, Some(&key), &[]);
            }
            t.per_user.insert(userid, mine + 1);
            t.by_client.insert((transport, from), a.clone());
        }
        self.counts().allocated();
        (self.spawn)(self.clone(), a.clone());
        tracing::debug!(client = %from, relayed = %a.relayed, lifetime, "turn: allocation");
        match reservation {
            Some(t) => {
                let tid = msg.transaction_id();
                success(
                    msg,
                    &key,
                    &[
                        &XorRelayedAddress::new(a.relayed, tid),
                        &Lifetime::new(lifetime),
                        &XorMappedAddress::new(from, tid),
                        &ReservationToken::new(t),
                    ],
                )
            }
            None => self.allocate_success(msg, &a, lifetime, from, &key),
        }
    }

    fn quota_left(&self, userid: &str) -> bool {
        let t = self.table.lock();
        t.by_client.len() < self.cfg.total_quota as usize
            && t.per_user.get(userid).copied().unwrap_or(0) < self.cfg.user_quota
    }

    fn allocate_success(
        &self,
        msg: &Message,
        a: &Allocation,
        lifetime: u32,
        from: SocketAddr,
        key: &IntegrityKey,
    ) -> Vec<u8> {
        let tid = msg.transaction_id();
        success(
            msg,
            key,
            &[
                &XorRelayedAddress::new(a.relayed, tid),
                &Lifetime::new(lifetime),
                &XorMappedAddress::new(from, tid),
            ],
        )
    }

    /// A UDP socket on a free port of the range, on the relay address (an even port if asked,
    /// and then with the next port bound too when `reserve_next`).
    fn bind_relay(
        &self,
        even: bool,
        reserve_next: bool,
    ) -> Option<(tokio::net::UdpSocket, Option<std::net::UdpSocket>)> {
        let (lo, hi) = (self.cfg.min_port, self.cfg.max_port.max(self.cfg.min_port));
        let span = u32::from(hi - lo) + 1;
        let start = rand::random_range(0..span);
        for i in 0..span.min(64) {
            let mut port = lo + ((start + i * 7919) % span) as u16;
            if even {
                port &= !1;
                if port < lo || (reserve_next && port >= hi) {
                    continue;
                }
            }
            let at = SocketAddr::new(self.relay_ip, port);
            let Ok(s) = super::io::udp_socket(at, super::io::RELAY_BUFFERS) else {
                continue;
            };
            let next = if reserve_next {
                match super::io::udp_socket(
                    SocketAddr::new(self.relay_ip, port + 1),
                    super::io::RELAY_BUFFERS,
                ) {
                    Ok(n) => Some(n),
                    Err(_) => continue,
                }
            } else {
                None
            };
            return tokio::net::UdpSocket::from_std(s).ok().map(|s| (s, next));
        }
        None
    }

    /// Removes an allocation (lifetime 0, expiry, a closed TCP connection).
    pub fn delete(&self, a: &Allocation) {
        let removed = {
            let mut t = self.table.lock();
            let removed = t.by_client.remove(&(a.transport, a.client)).is_some();
            if removed {
                if let Some(n) = t.per_user.get_mut(&a.userid) {
                    *n = n.saturating_sub(1);
                    if *n == 0 {
                        t.per_user.remove(&a.userid);
                    }
                }
            }
            removed
        };
        if removed {
            self.counts().released();
            if let Some(h) = a.task.lock().take() {
                h.abort();
            }
        }
    }

    /// Deletes the allocation of a client whose TCP connection closed.
    pub fn client_gone(&self, transport: Transport, from: SocketAddr) {
        if let Some(a) = self.lookup(transport, from) {
            self.delete(&a);
        }
    }

    /// Expires allocations, permissions and channels (the sweeper, every second or two).
    pub fn sweep(&self) {
        let now = Instant::now();
        let all: Vec<Arc<Allocation>> = {
            let mut t = self.table.lock();
            t.reserved.retain(|_, (_, e)| *e > now);
            t.by_client.values().cloned().collect()
        };
        for a in all {
            let expired = {
                let mut st = a.st.lock();
                st.prune(now);
                st.expires <= now
            };
            if expired {
                self.delete(&a);
            }
        }
    }

    fn refresh(&self, msg: &Message, transport: Transport, from: SocketAddr) -> Vec<u8> {
        let (a, key) = match self.own_allocation(msg, transport, from) {
            Ok(found) => found,
            Err(refusal) => return refusal,
        };
        let requested = msg.attribute::<Lifetime>().ok().map(|l| l.seconds());
        let lifetime = if requested == Some(0) {
            self.delete(&a);
            0
        } else {
            let max = self.cfg.max_lifetime.max(1);
            let lt = requested.unwrap_or(self.cfg.default_lifetime).clamp(1, max);
            let mut st = a.st.lock();
            st.expires = Instant::now() + Duration::from_secs(u64::from(lt));
            st.lifetime = lt;
            lt
        };
        success(msg, &key, &[&Lifetime::new(lifetime)])
    }

    /// The peer filter; a refusal is counted by reason.
    fn peer_allowed(&self, ip: IpAddr) -> Result<(), Denied> {
        peer_filter::check(ip, self.cfg.allow_loopback_peers).inspect_err(|d| {
            self.counts().refused(*d as usize);
        })
    }

    fn create_permission(&self, msg: &Message, transport: Transport, from: SocketAddr) -> Vec<u8> {
        let (a, key) = match self.own_allocation(msg, transport, from) {
            Ok(found) => found,
            Err(refusal) => return refusal,
        };
        let tid = msg.transaction_id();
        let mut peers: Vec<IpAddr> = Vec::new();
        for n in 0..MAX_PER_ALLOCATION {
            match msg.nth_attribute::<XorPeerAddress>(n) {
                Ok(p) => peers.push(p.addr(tid).ip()),
                Err(_) if msg.nth_raw_attribute(XorPeerAddress::TYPE, n).is_some() => {
                    return error(msg, ErrorCode::BAD_REQUEST, Some(&key), &[])
                }
                Err(_) => break,
            }
        }
        if peers.is_empty() {
            return error(msg, ErrorCode::BAD_REQUEST, Some(&key), &[]);
        }
        if let Some(code) = self.peers_refused(&peers) {
            return error(msg, code, Some(&key), &[]);
        }
        let now = Instant::now();
        let mut st = a.st.lock();
        for ip in peers {
            if !st.permit(ip, now) {
                drop(st);
                return error(msg, ErrorCode::INSUFFICIENT_CAPACITY, Some(&key), &[]);
            }
        }
        drop(st);
        success(msg, &key, &[])
    }

    fn channel_bind(&self, msg: &Message, transport: Transport, from: SocketAddr) -> Vec<u8> {
        let (a, key) = match self.own_allocation(msg, transport, from) {
            Ok(found) => found,
            Err(refusal) => return refusal,
        };
        let (Ok(num), Ok(peer)) = (
            msg.attribute::<ChannelNumber>(),
            msg.attribute::<XorPeerAddress>(),
        ) else {
            return error(msg, ErrorCode::BAD_REQUEST, Some(&key), &[]);
        };
        let num = num.channel();
        let peer = peer.addr(msg.transaction_id());
        // RFC 5766's range, 0x4000 through 0x7FFF (RFC 8656 narrowed it to 0x4FFF; coturn's
        // clients still pick from the old one).
        if !(0x4000..=0x7fff).contains(&num) {
            return error(msg, ErrorCode::BAD_REQUEST, Some(&key), &[]);
        }
        if let Some(code) = self.peers_refused(&[peer.ip()]) {
            return error(msg, code, Some(&key), &[]);
        }
        let now = Instant::now();
        let mut st = a.st.lock();
        st.prune(now);
        let by_num = st.channels.iter().position(|c| c.num == num);
        let by_peer = st.channels.iter().position(|c| c.peer == peer);
        match (by_num, by_peer) {
            (Some(i), Some(j)) if i == j => {
                if let Some(c) = st.channels.get_mut(i) {
                    c.expires = now + CHANNEL_LIFETIME;
                }
            }
            (None, None) if st.channels.len() < MAX_PER_ALLOCATION => st.channels.push(Channel {
                num,
                peer,
                expires: now + CHANNEL_LIFETIME,
            }),
            (None, None) => {
                drop(st);
                return error(msg, ErrorCode::INSUFFICIENT_CAPACITY, Some(&key), &[]);
            }
            _ => {
                drop(st);
                return error(msg, ErrorCode::BAD_REQUEST, Some(&key), &[]);
            }
        }
        let ok = st.permit(peer.ip(), now);
        drop(st);
        if !ok {
            return error(msg, ErrorCode::INSUFFICIENT_CAPACITY, Some(&key), &[]);
        }
        success(msg, &key, &[])
    }

    /// A Send indication: its DATA to its XOR-PEER-ADDRESS, if permitted (no answer ever).
    fn send_indication(
        &self,
        msg: &Message,
        transport: Transport,
        from: SocketAddr,
        now: Instant,
    ) -> Handled {
        let Some(a) = self.lookup(transport, from) else {
            return Handled::Nothing;
        };
        let (Ok(peer), Some((at, data))) = (
            msg.attribute::<XorPeerAddress>(),
            msg.raw_attribute_and_offset(Data::TYPE),
        ) else {
            return Handled::Nothing;
        };
        let peer = peer.addr(msg.transaction_id());
        if self.peer_allowed(peer.ip()).is_err() {
            return Handled::Nothing;
        }
        // The value follows the attribute's four-byte header.
        let range = at + 4..at + 4 + data.header.length() as usize;
        {
            let mut st = a.st.lock();
            if !st.permitted(peer.ip(), now) || !st.bucket.take(range.len(), now) {
                return Handled::Nothing;
            }
        }
        Handled::Relay(a, peer, range)
    }

    pub fn metrics(&self) -> &TurnCounts {
        self.counts()
    }
}

fn finish(mut b: MessageWriteVec, key: Option<&IntegrityKey>) -> Vec<u8> {
    if let Ok(s) = Software::new("switchboard") {
        let _ = b.add_attribute(&s);
    }
    if let Some(k) = key {
        let _ = b.add_message_integrity_with_key(k, IntegrityAlgorithm::Sha1);
    }
    let _ = b.add_fingerprint();
    b.finish()
}

fn success(msg: &Message, key: &IntegrityKey, attrs: &[&dyn AttributeWrite]) -> Vec<u8> {
    let mut b = Message::builder_success(msg, MessageWriteVec::with_capacity(128));
    for a in attrs {
        let _ = b.add_attribute(*a);
    }
    finish(b, Some(key))
}

fn error(
    msg: &Message,
    code: u16,
    key: Option<&IntegrityKey>,
    attrs: &[&dyn AttributeWrite],
) -> Vec<u8> {
    let mut b = Message::builder_error(msg, MessageWriteVec::with_capacity(128));
    if let Ok(e) = ErrorCode::builder(code).build() {
        let _ = b.add_attribute(&e);
    }
    for a in attrs {
        let _ = b.add_attribute(*a);
    }
    finish(b, key)
}

/// A 400 for a request whose header is sound but whose attributes do not parse (nothing
/// for anything else).
fn bad_request_raw(pkt: &[u8]) -> Option<Vec<u8>> {
    let head = pkt.get(..20)?;
    if head[4..8] != [0x21, 0x12, 0xA4, 0x42] || head[0] & 0xC0 != 0 {
        return None;
    }
    let ty = u16::from_be_bytes([head[0], head[1]]);
    if ty & 0x0110 != 0 {
        return None; // not a request
    }
    let ty = (ty | 0x0110).to_be_bytes();
    let reason = b"Bad Request\0"; // 11 bytes + 1 padding
    let mut out = Vec::with_capacity(20 + 4 + 16);
    out.extend_from_slice(&ty);
    out.extend_from_slice(&20u16.to_be_bytes());
    out.extend_from_slice(&head[4..20]);
    out.extend_from_slice(&[0x00, 0x09, 0x00, 15, 0, 0, 4, 0]);
    out.extend_from_slice(reason);
    Some(out)
}

/// Appends ChannelData (RFC 8656 §12.4) carrying `data` on channel `num`, padded to four
/// bytes when `pad` (over a stream, RFC 6062). `data` is at most 65535 bytes (a datagram).
pub fn push_channel_data(out: &mut Vec<u8>, num: u16, data: &[u8], pad: bool) {
    out.extend_from_slice(&num.to_be_bytes());
    out.extend_from_slice(&(data.len() as u16).to_be_bytes());
    out.extend_from_slice(data);
    if pad {
        out.resize(out.len() + (4 - data.len() % 4) % 4, 0);
    }
}

/// Appends a Data indication (RFC 8656 §11.4) from `peer` carrying `data` (at most 65535
/// bytes less the header): XOR-PEER-ADDRESS and DATA, nothing else.
pub fn push_data_indication(out: &mut Vec<u8>, data: &[u8], peer: SocketAddr, tid: [u8; 12]) {
    const COOKIE: [u8; 4] = [0x21, 0x12, 0xA4, 0x42];
    let padded = data.len().div_ceil(4) * 4;
    let addr_len: u16 = if peer.is_ipv4() { 8 } else { 20 };
    let body = 4 + addr_len + 4 + padded as u16;
    out.extend_from_slice(&0x0017u16.to_be_bytes());
    out.extend_from_slice(&body.to_be_bytes());
    out.extend_from_slice(&COOKIE);
    out.extend_from_slice(&tid);
    out.extend_from_slice(&0x0012u16.to_be_bytes());
    out.extend_from_slice(&addr_len.to_be_bytes());
    let port = (peer.port() ^ 0x2112).to_be_bytes();
    match peer.ip() {
        IpAddr::V4(v4) => {
            out.extend_from_slice(&[0, 1, port[0], port[1]]);
            let o = v4.octets();
            out.extend((0..4).map(|i| o[i] ^ COOKIE[i]));
        }
        IpAddr::V6(v6) => {
            out.extend_from_slice(&[0, 2, port[0], port[1]]);
            let o = v6.octets();
            let x = COOKIE.iter().chain(tid.iter());
            out.extend(o.iter().zip(x).map(|(b, k)| b ^ k));
        }
    }
    out.extend_from_slice(&0x0013u16.to_be_bytes());
    out.extend_from_slice(&(data.len() as u16).to_be_bytes());
    out.extend_from_slice(data);
    out.resize(out.len() + (padded - data.len()), 0);
}

/// The relay's counters as metrics labels see them.
pub fn refusal_labels() -> [&'static str; 8] {
    Denied::ALL.map(Denied::label)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_indications_parse() {
        for peer in ["203.0.113.5:4000", "[2001:db8::7]:5000"] {
            let peer: SocketAddr = peer.parse().unwrap();
            let mut buf = vec![9u8; 3]; // appended after what is there
            push_data_indication(&mut buf, b"hello", peer, [3; 12]);
            assert_eq!(buf.len() % 4, 3);
            let msg = Message::from_bytes(&buf[3..]).unwrap();
            assert!(msg.has_method(turn_types::message::DATA));
            assert!(msg.has_class(MessageClass::Indication));
            let p = msg.attribute::<XorPeerAddress>().unwrap();
            assert_eq!(p.addr(msg.transaction_id()), peer);
            assert_eq!(msg.attribute::<Data>().unwrap().data(), b"hello");
        }
    }

    #[test]
    fn malformed_requests_get_a_bare_400() {
        let mut pkt = vec![0x00, 0x03, 0x00, 0x08, 0x21, 0x12, 0xA4, 0x42];
        pkt.extend_from_slice(&[5; 12]);
        pkt.extend_from_slice(&[0x00, 0x19, 0x00, 0x40, 0, 0, 0, 0]); // attribute runs past the end
        let r = bad_request_raw(&pkt).unwrap();
        let m = Message::from_bytes(&r).unwrap();
        assert!(m.has_class(MessageClass::Error));
        assert_eq!(m.attribute::<ErrorCode>().unwrap().code(), 400);
        assert!(bad_request_raw(&pkt[..19]).is_none());
        let mut ind = pkt.clone();
        ind[1] = 0x16; // Send indication
        assert!(bad_request_raw(&ind).is_none());
    }

    #[test]
    fn buckets_refill() {
        let t0 = Instant::now();
        let mut b = Bucket::new(1000, t0);
        assert!(b.take(1000, t0));
        assert!(!b.take(1, t0));
        assert!(b.take(500, t0 + Duration::from_millis(500)));
        assert!(!b.take(100, t0 + Duration::from_millis(500)));
        let mut unlimited = Bucket::new(0, t0);
        assert!(unlimited.take(1 << 30, t0));
    }
}
