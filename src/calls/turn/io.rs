//! The relay's sockets and tasks: the listening UDP socket (TURN and STUN Binding), the TCP
//! listener (STUN messages and ChannelData framed on the stream, RFC 6062 §4: ChannelData
//! padded to four bytes), one task per allocation reading its relay socket, and the sweeper.

use super::server::{data_indication, Allocation, FromPeer, Server, Sink, Transport, DATA_AT};
use super::TurnConfig;
use crate::metrics::Metrics;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};

/// The relay's sockets, bound before the router starts (so the `turn:` URIs carry the real
/// ports).
pub struct Bound {
    pub udp: UdpSocket,
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
    let udp = UdpSocket::from_std(udp_socket(cfg.listen, LISTEN_BUFFERS)?)?;
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
    let server = Arc::new(Server::new(
        cfg,
        secret,
        metrics,
        b.relay_ip,
        Box::new(move |srv, a| {
            let t = handle.spawn(relay(srv, a.clone()));
            a.set_task(t.abort_handle());
        }),
    ));
    // Sockets move to the relay's runtime (re-registered with its reactor there).
    let udp = b.udp.into_std()?;
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
                    _ = serve_udp(s.clone(), udp) => {}
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

fn std_addr(a: &nix::sys::socket::SockaddrStorage) -> Option<SocketAddr> {
    if let Some(v4) = a.as_sockaddr_in() {
        return Some(SocketAddr::V4((*v4).into()));
    }
    a.as_sockaddr_in6().map(|v6| SocketAddr::V6((*v6).into()))
}

/// The listening UDP socket: up to `BATCH` datagrams per `recvmmsg`, each handled in place
/// (ChannelData goes out at once on its relay socket). The headers `recvmmsg` fills are not
/// `Send`: this future runs on the relay thread's `block_on`, never spawned.
async fn serve_udp(server: Arc<Server>, sock: Arc<UdpSocket>) {
    use nix::sys::socket::{recvmmsg, MsgFlags, MultiHeaders, SockaddrStorage};
    use std::io::IoSliceMut;
    use std::os::fd::AsRawFd;
    let sink = Sink::Udp(sock.clone());
    let fd = sock.as_raw_fd();
    let mut slots = vec![0u8; BATCH * SLOT];
    let mut headers = MultiHeaders::<SockaddrStorage>::preallocate(BATCH, None);
    let mut metas: [(usize, Option<SocketAddr>); BATCH] = [(0, None); BATCH];
    loop {
        if sock.readable().await.is_err() {
            continue;
        }
        let got = sock.try_io(tokio::io::Interest::READABLE, || {
            let mut chunks = slots.chunks_exact_mut(SLOT);
            let mut iovs: [[IoSliceMut<'_>; 1]; BATCH] =
                std::array::from_fn(|_| [IoSliceMut::new(chunks.next().unwrap_or_default())]);
            let res = recvmmsg(
                fd,
                &mut headers,
                iovs.iter_mut(),
                MsgFlags::MSG_DONTWAIT,
                None,
            )
            .map_err(std::io::Error::from)?;
            let mut n = 0;
            for (m, r) in metas.iter_mut().zip(res) {
                let whole = !r.flags.contains(MsgFlags::MSG_TRUNC);
                *m = (
                    if whole { r.bytes } else { 0 },
                    r.address.as_ref().and_then(std_addr),
                );
                n += 1;
            }
            Ok(n)
        });
        let n = match got {
            Ok(n) => n,
            // WouldBlock (readiness was stale) or an ICMP error surfacing (ECONNREFUSED).
            Err(_) => continue,
        };
        for (i, (len, from)) in metas.iter().take(n).enumerate() {
            let (Some(from), Some(pkt)) = (from, slots.get(i * SLOT..i * SLOT + len)) else {
                continue;
            };
            if *len == 0 {
                continue;
            }
            if let Some(answer) = server.on_client(pkt, Transport::Udp, *from, &sink) {
                let _ = sock.send_to(&answer, *from).await;
            }
        }
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
    let (mut rd, mut wr) = s.into_split();
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<u8>>(512);
    let writer = tokio::spawn(async move {
        while let Some(b) = rx.recv().await {
            if wr.write_all(&b).await.is_err() {
                break;
            }
        }
    });
    let sink = Sink::Tcp(tx.clone());
    let mut buf: Vec<u8> = Vec::with_capacity(4096);
    let mut chunk = [0u8; 16 * 1024];
    'conn: loop {
        // A connection without an allocation gets a minute of silence; one with an
        // allocation lives as long as the allocation is refreshed.
        let idle = if server.has_allocation(Transport::Tcp, from) {
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
                .and_then(|f| server.on_client(f, Transport::Tcp, from, &sink));
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
    server.client_gone(Transport::Tcp, from);
    drop(sink);
    drop(tx);
    let _ = writer.await;
}

/// Datagrams from peers up to this size are relayed; a fuller buffer may be a truncated
/// datagram and is dropped. WebRTC media stays under the path MTU (~1200–1500 bytes).
const RELAY_BUF: usize = 4096;

/// Reads an allocation's relay socket: each datagram from a permitted peer goes to the client
/// as ChannelData (if a channel is bound) or a Data indication, framed in place in one buffer.
async fn relay(server: Arc<Server>, a: Arc<Allocation>) {
    let mut buf = vec![0u8; DATA_AT + RELAY_BUF + 4];
    let stream = a.sink.is_stream();
    let mut seq: u64 = 0;
    let salt: [u8; 4] = rand::random();
    loop {
        let (n, peer) = match a
            .relay
            .recv_from(
                buf.get_mut(DATA_AT..DATA_AT + RELAY_BUF)
                    .unwrap_or_default(),
            )
            .await
        {
            Ok(x) => x,
            Err(_) => continue,
        };
        if n >= RELAY_BUF {
            continue;
        }
        let range = match a.from_peer(peer, n) {
            FromPeer::Drop => continue,
            FromPeer::Channel(num) => {
                let start = DATA_AT - 4;
                if let Some(h) = buf.get_mut(start..DATA_AT) {
                    h[0..2].copy_from_slice(&num.to_be_bytes());
                    h[2..4].copy_from_slice(&(n as u16).to_be_bytes());
                }
                let mut end = DATA_AT + n;
                if stream {
                    let padded = DATA_AT + n.div_ceil(4) * 4;
                    for b in buf.get_mut(end..padded).unwrap_or_default() {
                        *b = 0;
                    }
                    end = padded;
                }
                start..end
            }
            FromPeer::Indication => {
                seq = seq.wrapping_add(1);
                let mut tid = [0u8; 12];
                tid[..4].copy_from_slice(&salt);
                tid[4..].copy_from_slice(&seq.to_be_bytes());
                match data_indication(&mut buf, n, peer, tid) {
                    Some(r) => r,
                    None => continue,
                }
            }
        };
        let Some(frame) = buf.get(range) else {
            continue;
        };
        // Over UDP a full send buffer is waited for (this allocation only); a TCP client's
        // queue drops instead (a client that does not read must not hold the relay).
        let sent = match &a.sink {
            Sink::Udp(s) => s.send_to(frame, a.client).await.is_ok(),
            tcp => tcp.send(a.client, frame),
        };
        if sent {
            server.metrics().relayed(1, n);
        } else {
            server.metrics().dropped();
        }
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
