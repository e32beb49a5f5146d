//! The relay's sockets and tasks: the listening UDP socket (TURN and STUN Binding), the TCP
//! listener (STUN messages and ChannelData framed on the stream, RFC 6062 §4: ChannelData
//! padded to four bytes), one task per allocation reading its relay socket, and the sweeper.

use super::batch::{send_datagrams, send_in_order, Datagram, Outbound};
use super::server::{
    push_channel_data, push_data_indication, Allocation, FromPeer, Handled, Server, Sink, Transport,
};
use super::TurnConfig;
use crate::metrics::{Metrics, TurnCounts};
use std::cell::RefCell;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt, Interest};
use tokio::net::{TcpListener, TcpStream, UdpSocket};

/// The relay's sockets, bound before the router starts (so the `turn:` URIs carry the real
/// ports).
pub struct Bound {
    /// Non-blocking; registered with the relay thread's reactor when it starts.
    pub udp: std::net::UdpSocket,
    pub tcp: Option<TcpListener>,
    pub relay_ip: IpAddr,
}

impl Bound {
    pub fn udp_addr(&self) -> Option<SocketAddr> {
        self.udp.local_addr().ok()
    }

    pub fn tcp_addr(&self) -> Option<SocketAddr> {
        self.tcp.as_ref().and_then(|t| t.local_addr().ok())
    }

    /// The host for `turn:` URIs: configured, else the external IP, else the relay IP.
    pub fn host(&self, cfg: &TurnConfig) -> String {
        cfg.host
            .clone()
            .unwrap_or_else(|| cfg.external_ip.unwrap_or(self.relay_ip).to_string())
    }
}

/// The address of the default route, learnt from a connected UDP socket (nothing is sent).
fn default_route_ip() -> Option<IpAddr> {
    let s = std::net::UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).ok()?;
    s.connect((Ipv4Addr::new(192, 0, 2, 1), 9)).ok()?;
    s.local_addr().ok().map(|a| a.ip())
}

/// Kernel buffers of the listening UDP socket: every client's packets queue there, so a
/// scheduling hiccup of a few milliseconds must not overflow it (Linux caps the request at
/// `net.core.rmem_max`/`wmem_max`).
const LISTEN_BUFFERS: usize = 4 << 20;
/// Kernel buffers of one relay socket (one allocation's peers).
pub const RELAY_BUFFERS: usize = 512 << 10;

/// A non-blocking UDP socket on `at` with `buffers` bytes of kernel send and receive buffers.
pub fn udp_socket(at: SocketAddr, buffers: usize) -> std::io::Result<std::net::UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let s = Socket::new(Domain::for_address(at), Type::DGRAM, Some(Protocol::UDP))?;
    // Best effort: the defaults still work.
    let _ = s.set_recv_buffer_size(buffers);
    let _ = s.set_send_buffer_size(buffers);
    s.set_nonblocking(true)?;
    s.bind(&at.into())?;
    Ok(s.into())
}

pub async fn bind(cfg: &TurnConfig) -> std::io::Result<Bound> {
    let udp = udp_socket(cfg.listen, LISTEN_BUFFERS)?;
    let tcp_at = match cfg.tcp_listen {
        // Port 0 for both (tests): TCP takes the port UDP got, when free.
        Some(t) if t.port() == 0 && cfg.listen.port() == 0 => {
            let p = udp.local_addr()?.port();
            Some(SocketAddr::new(t.ip(), p))
        }
        other => other,
    };
    let tcp = match tcp_at {
        Some(a) => Some(match TcpListener::bind(a).await {
            Ok(l) => l,
            Err(_) if cfg.tcp_listen.is_some_and(|t| t.port() == 0) => {
                TcpListener::bind(SocketAddr::new(a.ip(), 0)).await?
            }
            Err(e) => return Err(e),
        }),
        None => None,
    };
    let relay_ip = match cfg.relay_ip {
        Some(ip) => ip,
        None if !cfg.listen.ip().is_unspecified() => cfg.listen.ip(),
        None => default_route_ip().unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST)),
    };
    Ok(Bound { udp, tcp, relay_ip })
}

/// A running relay: `tasks` holds one task of the caller's runtime whose abort stops the relay.
pub struct Running {
    pub server: Arc<Server>,
    pub tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// Starts the relay on a thread of its own with a single-threaded tokio runtime: every TURN
/// socket is served there, like one of coturn's relay threads, so a packet crosses no thread
/// boundary (with the multi-threaded runtime, waking the worker that owns a socket cost more
/// CPU than the relaying itself). Aborting the returned task stops the thread.
pub fn start(
    b: Bound,
    cfg: TurnConfig,
    secret: &str,
    metrics: Arc<Metrics>,
) -> std::io::Result<Running> {
    if cfg.allow_loopback_peers {
        tracing::warn!(
            "TURN: loopback peers are ALLOWED (allow_loopback_peers): for tests only, never in production"
        );
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let handle = rt.handle().clone();
    let udp = b.udp;
    let server = Arc::new(Server::new(
        cfg,
        secret,
        metrics.clone(),
        b.relay_ip,
        Box::new(move |srv, a| {
            let t = handle.spawn(relay(srv, a.clone()));
            a.set_task(t.abort_handle());
        }),
    ));
    // Sockets move to the relay's runtime (registered with its reactor there).
    let tcp = match b.tcp {
        Some(l) => Some(l.into_std()?),
        None => None,
    };
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let s = server.clone();
    std::thread::Builder::new()
        .name("turn".into())
        .spawn(move || {
            rt.block_on(async move {
                let udp = match UdpSocket::from_std(udp) {
                    Ok(u) => Arc::new(u),
                    Err(e) => {
                        tracing::error!(error = %e, "TURN: UDP socket");
                        return;
                    }
                };
                if let Some(l) = tcp.and_then(|l| TcpListener::from_std(l).ok()) {
                    tokio::spawn(serve_tcp(s.clone(), l));
                }
                let out = Arc::new(Outbound::new(udp.clone(), metrics));
                tokio::spawn(out.clone().run());
                let sweeper = async {
                    let mut tick = tokio::time::interval(Duration::from_secs(1));
                    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                    loop {
                        tick.tick().await;
                        s.sweep();
                    }
                };
                tokio::select! {
                    _ = stop_rx => {}
                    _ = sweeper => {}
                    _ = serve_udp(s.clone(), udp, out) => {}
                }
            });
            // Dropping the runtime cancels every relay and connection task.
            drop(rt);
        })?;
    let guard = tokio::spawn(async move {
        let _stop = stop_tx;
        std::future::pending::<()>().await
    });
    Ok(Running {
        server,
        tasks: vec![guard],
    })
}

/// Datagrams read from the listening socket per `recvmmsg` call, and the room for each (a
/// larger datagram is truncated by the kernel and dropped).
const BATCH: usize = 32;
const SLOT: usize = 4096;
/// Datagrams read from a relay socket per `recvmmsg` call (a burst of a video frame).
const RELAY_BATCH: usize = 16;

fn std_addr(a: &nix::sys::socket::SockaddrStorage) -> Option<SocketAddr> {
    if let Some(v4) = a.as_sockaddr_in() {
        return Some(SocketAddr::V4((*v4).into()));
    }
    a.as_sockaddr_in6().map(|v6| SocketAddr::V6((*v6).into()))
}

/// Room for up to `N` datagrams of [`SLOT`] bytes and one `recvmmsg` to fill it. The headers
/// are not `Send`: a `Receiver` lives on the relay thread (in `serve_udp`, or the one of the
/// thread that all relay tasks share), never across an await of a spawned task.
struct Receiver<const N: usize> {
    slots: Vec<u8>,
    headers: nix::sys::socket::MultiHeaders<nix::sys::socket::SockaddrStorage>,
    /// (length, sender) of each datagram of the last call; length 0: truncated or empty.
    got: [(usize, Option<SocketAddr>); N],
    n: usize,
}

impl<const N: usize> Receiver<N> {
    fn new() -> Receiver<N> {
        Receiver {
            slots: vec![0u8; N * SLOT],
            headers: nix::sys::socket::MultiHeaders::preallocate(N, None),
            got: [(0, None); N],
            n: 0,
        }
    }

    /// One non-blocking `recvmmsg` on `fd`: how many datagrams came. Fewer than `N` means the
    /// socket's queue is empty now.
    fn recv(&mut self, fd: RawFd) -> std::io::Result<usize> {
        use nix::sys::socket::{recvmmsg, MsgFlags};
        use std::io::IoSliceMut;
        self.n = 0;
        let mut chunks = self.slots.chunks_exact_mut(SLOT);
        let mut iovs: [[IoSliceMut<'_>; 1]; N] =
            std::array::from_fn(|_| [IoSliceMut::new(chunks.next().unwrap_or_default())]);
        let res = recvmmsg(
            fd,
            &mut self.headers,
            iovs.iter_mut(),
            MsgFlags::MSG_DONTWAIT,
            None,
        )
        .map_err(std::io::Error::from)?;
        for (g, r) in self.got.iter_mut().zip(res) {
            let whole = !r.flags.contains(MsgFlags::MSG_TRUNC);
            *g = (
                if whole { r.bytes } else { 0 },
                r.address.as_ref().and_then(std_addr),
            );
            self.n += 1;
        }
        Ok(self.n)
    }

    /// Reads what `sock` holds, up to `N` datagrams, when the reactor says it is readable: how
    /// many came (0 if none, or on an error). A short read means the socket's queue is empty:
    /// it ends as `WouldBlock` for tokio, which then waits for the next readiness event (the
    /// registration is edge-triggered, so a datagram arriving later wakes it) instead of
    /// asking the kernel once more only to hear `EAGAIN`.
    fn drain(&mut self, sock: &UdpSocket) -> usize {
        let fd = sock.as_raw_fd();
        let r = sock.try_io(Interest::READABLE, || match self.recv(fd) {
            Ok(n) if n < N => Err(std::io::ErrorKind::WouldBlock.into()),
            other => other,
        });
        r.unwrap_or(self.n)
    }

    /// The `i`th datagram of the last call and its sender (none if truncated or empty).
    fn get(&self, i: usize) -> Option<(&[u8], SocketAddr)> {
        if i >= self.n {
            return None;
        }
        let (len, from) = *self.got.get(i)?;
        let from = from.filter(|_| len > 0)?;
        Some((self.slots.get(i * SLOT..i * SLOT + len)?, from))
    }
}

/// A datagram of the last `recvmmsg` on the listening socket, checked, for a peer.
struct ToPeer {
    alloc: Arc<Allocation>,
    peer: SocketAddr,
    slot: usize,
    range: std::ops::Range<usize>,
}

/// The listening UDP socket: up to `BATCH` datagrams per `recvmmsg`, each handled in turn;
/// then the data for peers goes out, one `sendmmsg` per relay socket, and answers are queued
/// for the client flush task. This future runs on the relay thread's `block_on` (the
/// `Receiver` is not `Send`), never spawned.
async fn serve_udp(server: Arc<Server>, sock: Arc<UdpSocket>, out: Arc<Outbound>) {
    let sink = Sink::Udp(out.clone());
    let mut rx = Receiver::<BATCH>::new();
    let mut to_peers: Vec<ToPeer> = Vec::with_capacity(BATCH);
    loop {
        if sock.readable().await.is_err() {
            return;
        }
        // Nothing when readiness was stale, or an ICMP error surfaced (ECONNREFUSED).
        let n = rx.drain(&sock);
        let now = Instant::now();
        for i in 0..n {
            let Some((pkt, from)) = rx.get(i) else {
                continue;
            };
            match server.handle(pkt, Transport::Udp, from, &sink, now) {
                Handled::Nothing => {}
                Handled::Answer(a) => {
                    out.push(from, None, |b| b.extend_from_slice(&a));
                }
                Handled::Relay(alloc, peer, range) => to_peers.push(ToPeer {
                    alloc,
                    peer,
                    slot: i,
                    range,
                }),
            }
        }
        send_to_peers(&to_peers, &rx, server.metrics());
        to_peers.clear();
    }
}

/// Sends the datagrams of one `recvmmsg` bound for peers: those of one relay socket together,
/// in the order they came, with one `sendmmsg`. A relay socket whose buffer is full drops the
/// rest of its datagrams (UDP), counted.
fn send_to_peers(to_peers: &[ToPeer], rx: &Receiver<BATCH>, counts: &TurnCounts) {
    let mut done = [false; BATCH];
    for (i, first) in to_peers.iter().enumerate() {
        if done.get(i).copied().unwrap_or(true) {
            continue;
        }
        let mut msgs: [Datagram<'_>; BATCH] = [(&[], first.peer); BATCH];
        let mut k = 0;
        for (j, t) in to_peers.iter().enumerate().skip(i) {
            if !Arc::ptr_eq(&t.alloc, &first.alloc) || done.get(j).copied().unwrap_or(true) {
                continue;
            }
            let data = rx
                .get(t.slot)
                .and_then(|(pkt, _)| pkt.get(t.range.clone()))
                .unwrap_or_default();
            if let (Some(m), Some(d)) = (msgs.get_mut(k), done.get_mut(j)) {
                *m = (data, t.peer);
                *d = true;
                k += 1;
            }
        }
        let msgs = msgs.get(..k).unwrap_or_default();
        let fd = first.alloc.relay.as_raw_fd();
        let (mut packets, mut bytes, mut dropped) = (0u64, 0u64, 0u64);
        let sent = send_in_order(
            msgs,
            |m| send_datagrams(fd, m),
            |m, ok| {
                if ok {
                    packets += 1;
                    bytes += msgs.get(m).map_or(0, |d| d.0.len()) as u64;
                } else {
                    dropped += 1;
                }
            },
        );
        if sent.blocked {
            dropped += (k - sent.done) as u64;
        }
        counts.relayed_many(0, packets, bytes);
        counts.dropped_many(dropped);
    }
}

async fn serve_tcp(server: Arc<Server>, l: TcpListener) {
    loop {
        match l.accept().await {
            Ok((s, from)) => {
                let _ = s.set_nodelay(true);
                tokio::spawn(tcp_client(server.clone(), s, from));
            }
            Err(e) => {
                tracing::debug!(error = %e, "turn: tcp accept");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// The length of the first frame in `buf` (STUN message or padded ChannelData), if known;
/// `Err` if the stream is not TURN.
fn frame_len(buf: &[u8]) -> Result<Option<usize>, ()> {
    let (Some(&b0), Some(l)) = (buf.first(), buf.get(2..4)) else {
        return Ok(None);
    };
    let len = usize::from(u16::from_be_bytes([l[0], l[1]]));
    match b0 {
        0x00..=0x3f if len % 4 == 0 => Ok(Some(20 + len)),
        0x40..=0x7f => Ok(Some(4 + len.div_ceil(4) * 4)),
        _ => Err(()),
    }
}

/// One client over TCP: frames in, answers and relayed data out through a writer task (a
/// bounded queue; a client that does not read loses relayed data, not its connection).
async fn tcp_client(server: Arc<Server>, s: TcpStream, from: SocketAddr) {
    let (rd, wr) = s.into_split();
    stream_client(server, rd, wr, from, Transport::Tcp).await
}

/// One `turns:` client: a TLS stream from a web listener that began with a STUN message, its
/// first decrypted bytes put back in front. Served like a TCP client, on the caller's runtime
/// (the relay reaches it through its writer queue like any TCP client).
pub async fn tls_client<S>(server: Arc<Server>, s: S, from: SocketAddr)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + 'static,
{
    let (rd, wr) = tokio::io::split(s);
    stream_client(server, rd, wr, from, Transport::Tls).await
}

async fn stream_client<R, W>(
    server: Arc<Server>,
    mut rd: R,
    mut wr: W,
    from: SocketAddr,
    transport: Transport,
) where
    R: tokio::io::AsyncRead + Unpin,
    W: tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<u8>>(512);
    let writer = tokio::spawn(async move {
        while let Some(b) = rx.recv().await {
            if wr.write_all(&b).await.is_err() {
                break;
            }
        }
        // TCP: FIN; TLS: close_notify first.
        let _ = wr.shutdown().await;
    });
    let sink = Sink::Tcp(tx.clone());
    let mut buf: Vec<u8> = Vec::with_capacity(4096);
    let mut chunk = [0u8; 16 * 1024];
    'conn: loop {
        // A connection without an allocation gets a minute of silence; one with an
        // allocation lives as long as the allocation is refreshed.
        let idle = if server.has_allocation(transport, from) {
            Duration::from_secs(3600)
        } else {
            Duration::from_secs(60)
        };
        let n = match tokio::time::timeout(idle, rd.read(&mut chunk)).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => break,
            Ok(Ok(n)) => n,
        };
        buf.extend_from_slice(chunk.get(..n).unwrap_or_default());
        loop {
            let len = match frame_len(&buf) {
                Err(()) => break 'conn,
                Ok(None) => break,
                Ok(Some(l)) => l,
            };
            if buf.len() < len {
                break;
            }
            let answer = buf
                .get(..len)
                .and_then(|f| server.on_client(f, transport, from, &sink));
            buf.drain(..len);
            if let Some(a) = answer {
                if tx.send(a).await.is_err() {
                    break 'conn;
                }
            }
        }
        if buf.capacity() > 70_000 && buf.len() < 4096 {
            buf.shrink_to(4096);
        }
    }
    server.client_gone(transport, from);
    drop(sink);
    drop(tx);
    let _ = writer.await;
}

thread_local! {
    /// The relay tasks' receive buffer: they all run on the relay thread, one at a time, and
    /// use it only between two awaits (so an allocation holds no buffer of its own).
    static RELAY_RX: RefCell<Option<Box<Receiver<RELAY_BATCH>>>> = const { RefCell::new(None) };
}

/// Reads an allocation's relay socket: up to `RELAY_BATCH` datagrams per `recvmmsg` (peer
/// datagrams up to 4 KiB; WebRTC media stays under the path MTU), each from a permitted peer
/// framed as ChannelData (if a channel is bound) or a Data indication and queued for the
/// client: over UDP in the listening socket's [`Outbound`], sent by its flush task with
/// everything else this reactor turn brought; over TCP in the connection's writer queue.
async fn relay(server: Arc<Server>, a: Arc<Allocation>) {
    let mut seq: u64 = 0;
    let salt: [u8; 4] = rand::random();
    loop {
        if a.relay.readable().await.is_err() {
            return;
        }
        RELAY_RX.with_borrow_mut(|rx| {
            let rx = rx.get_or_insert_with(|| Box::new(Receiver::new()));
            let n = rx.drain(&a.relay);
            let now = Instant::now();
            for i in 0..n {
                let Some((data, peer)) = rx.get(i) else {
                    continue;
                };
                let how = a.from_peer(peer, data.len(), now);
                let mut tid = [0u8; 12];
                if matches!(how, FromPeer::Indication) {
                    seq = seq.wrapping_add(1);
                    tid[..4].copy_from_slice(&salt);
                    tid[4..].copy_from_slice(&seq.to_be_bytes());
                }
                let frame = |b: &mut Vec<u8>, pad: bool| match how {
                    FromPeer::Channel(num) => push_channel_data(b, num, data, pad),
                    _ => push_data_indication(b, data, peer, tid),
                };
                match (&how, &a.sink) {
                    (FromPeer::Drop, _) => {}
                    // Counted as relayed (or dropped) when the batch is sent.
                    (_, Sink::Udp(out)) => {
                        out.push(a.client, Some(data.len()), |b| frame(b, false));
                    }
                    // A TCP client's queue drops instead of waiting (a client that does not
                    // read must not hold the relay).
                    (_, Sink::Tcp(tx)) => {
                        let mut b = Vec::with_capacity(data.len() + 48);
                        frame(&mut b, true);
                        if tx.try_send(b).is_ok() {
                            server.metrics().relayed(1, data.len());
                        } else {
                            server.metrics().dropped();
                        }
                    }
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tcp_frames() {
        assert_eq!(frame_len(&[0x00, 0x01]), Ok(None));
        assert_eq!(frame_len(&[0x00, 0x01, 0x00, 0x08]), Ok(Some(28)));
        assert_eq!(frame_len(&[0x00, 0x01, 0x00, 0x07]), Err(()));
        assert_eq!(frame_len(&[0x40, 0x00, 0x00, 0x05]), Ok(Some(12)));
        assert_eq!(frame_len(&[0x40, 0x00, 0x00, 0x08]), Ok(Some(12)));
        assert_eq!(frame_len(&[0x80, 0x00, 0x00, 0x00]), Err(()));
    }
}
