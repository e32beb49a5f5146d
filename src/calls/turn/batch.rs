//! Outgoing datagrams sent in batches with `sendmmsg`.
//!
//! The relay thread first handles everything one `recvmmsg` (or one turn of its reactor)
//! brought in, and sends afterwards: what goes out of one socket is sent in order, up to
//! [`SEND_BATCH`] datagrams per system call.
//!
//! - Client to peer: the datagrams of one `recvmmsg` on the listening socket are grouped by
//!   relay socket and each group goes out with one call ([`send_in_order`]).
//! - Peer to client: every relay socket's datagrams, framed as ChannelData or Data
//!   indications, and the relay's answers to requests, are queued in one [`Outbound`] for the
//!   listening socket, flushed by one task once the relay tasks woken in the same turn have run
//!   (or at once when [`SEND_BATCH`] are waiting).
//!
//! Consecutive datagrams to one destination of one size (the last may be shorter) go out as
//! one GSO send (`UDP_SEGMENT`, see [`gso_run`]): the kernel walks its stack once for the run
//! and splits it into the same datagrams again. A kernel that refuses GSO gets the datagrams
//! one by one.
//!
//! A full socket buffer (`EAGAIN`) never blocks the relay thread: toward peers the rest of a
//! group is dropped (as a UDP router would); toward clients the rest stays queued, in order,
//! tried again after [`RETRY`] and capped ([`OUT_MAX_DATAGRAMS`], [`OUT_MAX_BYTES`]), beyond
//! which new datagrams are dropped. A datagram the kernel refuses for another reason is dropped
//! alone. Every drop of relayed data is counted (`switchboard_turn_dropped_packets_total`),
//! every datagram sent is counted as relayed once it is out.

use crate::metrics::{Metrics, TurnCounts};
use nix::sys::socket::{sendmmsg, sendto, ControlMessage, MsgFlags, MultiHeaders, SockaddrStorage};
use parking_lot::Mutex;
use std::cell::RefCell;
use std::io;
use std::io::IoSlice;
use std::net::{Ipv4Addr, SocketAddr};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Datagrams per `sendmmsg` call at most.
pub const SEND_BATCH: usize = 64;
/// Datagrams queued for clients while the listening socket's buffer is full, at most.
pub const OUT_MAX_DATAGRAMS: usize = 2048;
/// Bytes queued for clients while the listening socket's buffer is full, about at most.
pub const OUT_MAX_BYTES: usize = 2 << 20;
/// How long a full listening socket is left alone before the queue is tried again.
pub const RETRY: Duration = Duration::from_millis(1);

/// A datagram to send: payload and destination.
pub type Datagram<'a> = (&'a [u8], SocketAddr);

const NOWHERE: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0);

/// How a [`send_in_order`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sent {
    /// Datagrams dealt with, from the first: sent, or refused by the kernel (and dropped).
    pub done: usize,
    /// The socket's buffer was full (`EAGAIN`): the datagrams from `done` on were not sent.
    pub blocked: bool,
}

/// Sends `msgs` in order through `send` (which sends a prefix of what it is given and says how
/// many, as `sendmmsg` does), calling `outcome(index, sent)` once for each datagram dealt with.
/// After a partial send the rest is offered again; an error other than a full buffer belongs to
/// the first datagram not sent, which is dropped, and sending goes on after it.
pub fn send_in_order<'a>(
    msgs: &[Datagram<'a>],
    mut send: impl FnMut(&[Datagram<'a>]) -> io::Result<usize>,
    mut outcome: impl FnMut(usize, bool),
) -> Sent {
    let mut at = 0;
    while let Some(rest) = msgs.get(at..).filter(|r| !r.is_empty()) {
        match send(rest) {
            Ok(n) if n > 0 => {
                let n = n.min(rest.len());
                for i in at..at + n {
                    outcome(i, true);
                }
                at += n;
            }
            // Nothing taken is as good as a full buffer: never loop on it.
            Ok(_) => {
                return Sent {
                    done: at,
                    blocked: true,
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                ) =>
            {
                return Sent {
                    done: at,
                    blocked: true,
                }
            }
            Err(_) => {
                outcome(at, false);
                at += 1;
            }
        }
    }
    Sent {
        done: at,
        blocked: false,
    }
}

/// What a `sendmmsg` needs besides the datagrams, made once per thread (the headers are not
/// `Send`; the relay's sends all happen on its one thread).
struct Scratch {
    plain: MultiHeaders<SockaddrStorage>,
    /// With room for a `UDP_SEGMENT` control message each.
    gso: MultiHeaders<SockaddrStorage>,
    /// The destinations of the call being made.
    addrs: Vec<Option<SockaddrStorage>>,
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch {
        plain: MultiHeaders::preallocate(SEND_BATCH, None),
        gso: MultiHeaders::preallocate(SEND_BATCH, Some(nix::cmsg_space!(u16))),
        addrs: Vec::with_capacity(SEND_BATCH),
    });
}

/// Datagrams in one GSO send at most (the kernel's `UDP_MAX_SEGMENTS` is 64 on older kernels).
const GSO_MAX_SEGMENTS: usize = 64;
/// Payload bytes of one GSO send at most (one IP datagram, less its headers).
const GSO_MAX_BYTES: usize = 65_000;
/// GSO sends the kernel refused (other than for a full buffer: no `UDP_SEGMENT` before Linux
/// 4.18, no checksum offload, a segment over the path MTU…) after which GSO is not tried again.
const GSO_GIVE_UP: u32 = 16;
static GSO_FAILURES: AtomicU32 = AtomicU32::new(0);

/// How many datagrams from the first form a run that can go out as one GSO send (generic
/// segmentation offload, `UDP_SEGMENT`): the same destination, all of the first one's size but
/// the last, which may be shorter (not empty). 1 when there is no such run (0 for no datagram).
/// The kernel splits the run into the same datagrams again, at the latest before the wire, so
/// the peer sees no difference; the stack is walked once per run instead of once per datagram.
/// Bursts to one destination are how video frames travel; a run of two is already worth it.
pub fn gso_run(msgs: &[Datagram<'_>]) -> usize {
    if GSO_FAILURES.load(Ordering::Relaxed) >= GSO_GIVE_UP {
        return msgs.len().min(1);
    }
    run_length(msgs)
}

/// [`gso_run`] whether or not the kernel takes GSO sends.
fn run_length(msgs: &[Datagram<'_>]) -> usize {
    let Some(&(first, to)) = msgs.first() else {
        return 0;
    };
    let size = first.len();
    if size == 0 {
        return 1;
    }
    let (mut n, mut total) = (1, size);
    for &(d, t) in msgs.iter().skip(1) {
        if t != to
            || d.is_empty()
            || d.len() > size
            || n >= GSO_MAX_SEGMENTS
            || total + d.len() > GSO_MAX_BYTES
        {
            break;
        }
        n += 1;
        total += d.len();
        if d.len() < size {
            break; // a shorter one ends the run
        }
    }
    n
}

/// Sends datagrams from the start of `msgs` (at most [`SEND_BATCH`]) from the non-blocking UDP
/// socket `fd`, in order: a GSO run (see [`gso_run`]) and the runs of the same segment size
/// after it with one `sendmmsg` of GSO sends, else the datagrams up to the next run with one
/// `sendmmsg` (`sendto` for one). How many datagrams were sent, or the error of the first
/// (`WouldBlock` when the buffer is full). A GSO send the kernel refuses otherwise is made
/// again datagram by datagram.
pub fn send_datagrams(fd: RawFd, msgs: &[Datagram<'_>]) -> io::Result<usize> {
    let msgs = msgs.get(..msgs.len().min(SEND_BATCH)).unwrap_or_default();
    let run = gso_run(msgs);
    if run >= 2 {
        match send_gso(fd, msgs) {
            Err(e)
                if !matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                ) =>
            {
                if GSO_FAILURES.fetch_add(1, Ordering::Relaxed) + 1 == GSO_GIVE_UP {
                    tracing::info!(error = %e, "TURN: UDP GSO refused; datagrams go out one by one");
                }
                return send_each(fd, msgs.get(..run).unwrap_or_default());
            }
            r => return r,
        }
    }
    let mut end = 1;
    while end < msgs.len() && gso_run(msgs.get(end..).unwrap_or_default()) < 2 {
        end += 1;
    }
    send_each(fd, msgs.get(..end).unwrap_or_default())
}

/// The GSO runs at the start of `msgs` that share the first one's segment size, one GSO send
/// each, with one `sendmmsg`: how many datagrams were sent.
fn send_gso(fd: RawFd, msgs: &[Datagram<'_>]) -> io::Result<usize> {
    let size = msgs.first().map_or(0, |m| m.0.len());
    // (start, datagrams) of each run.
    let mut runs = [(0usize, 0usize); SEND_BATCH];
    let (mut k, mut at) = (0, 0);
    while let (Some(rest), Some(slot)) = (msgs.get(at..), runs.get_mut(k)) {
        let n = gso_run(rest);
        if n < 2 || rest.first().map_or(0, |m| m.0.len()) != size {
            break;
        }
        *slot = (at, n);
        k += 1;
        at += n;
    }
    let runs = runs.get(..k).unwrap_or_default();
    let iovs: [IoSlice<'_>; SEND_BATCH] =
        std::array::from_fn(|i| IoSlice::new(msgs.get(i).map_or(&[], |m| m.0)));
    let slices: [&[IoSlice<'_>]; SEND_BATCH] = std::array::from_fn(|i| {
        runs.get(i)
            .and_then(|&(start, n)| iovs.get(start..start + n))
            .unwrap_or_default()
    });
    let seg = size as u16;
    let sent = SCRATCH.with_borrow_mut(|s| {
        s.addrs.clear();
        s.addrs.extend(
            runs.iter()
                .map(|&(start, _)| msgs.get(start).map(|m| SockaddrStorage::from(m.1))),
        );
        sendmmsg(
            fd,
            &mut s.gso,
            slices.iter().take(k),
            &s.addrs,
            [ControlMessage::UdpGsoSegments(&seg)],
            MsgFlags::MSG_DONTWAIT,
        )
        .map(|r| r.count())
        .map_err(io::Error::from)
    })?;
    Ok(runs.iter().take(sent).map(|r| r.1).sum())
}

/// Up to [`SEND_BATCH`] of `msgs`, each its own datagram: one `sendto` for one, else one
/// `sendmmsg`.
fn send_each(fd: RawFd, msgs: &[Datagram<'_>]) -> io::Result<usize> {
    let msgs = msgs.get(..msgs.len().min(SEND_BATCH)).unwrap_or_default();
    match msgs {
        [] => Ok(0),
        [(data, to)] => sendto(
            fd,
            data,
            &SockaddrStorage::from(*to),
            MsgFlags::MSG_DONTWAIT,
        )
        .map(|_| 1)
        .map_err(io::Error::from),
        _ => {
            let iovs: [[IoSlice<'_>; 1]; SEND_BATCH] =
                std::array::from_fn(|i| [IoSlice::new(msgs.get(i).map_or(&[], |m| m.0))]);
            let none: [ControlMessage<'_>; 0] = [];
            SCRATCH.with_borrow_mut(|s| {
                s.addrs.clear();
                s.addrs
                    .extend(msgs.iter().map(|m| Some(SockaddrStorage::from(m.1))));
                sendmmsg(
                    fd,
                    &mut s.plain,
                    iovs.iter().take(msgs.len()),
                    &s.addrs,
                    none,
                    MsgFlags::MSG_DONTWAIT,
                )
                .map(|r| r.count())
                .map_err(io::Error::from)
            })
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Item {
    start: usize,
    end: usize,
    to: SocketAddr,
    /// Payload bytes to count as relayed once sent; `None` for the relay's own answers.
    relayed: Option<usize>,
}

/// Datagrams queued for one socket, in order, written back to back into one buffer (nothing
/// is allocated per datagram; the buffer keeps its size between batches).
#[derive(Debug)]
pub struct Batch {
    /// For the metrics: 0 to peers, 1 to clients.
    direction: usize,
    buf: Vec<u8>,
    items: Vec<Item>,
    max_items: usize,
    max_bytes: usize,
}

impl Batch {
    /// An empty batch (nothing allocated yet) holding at most `max_items` datagrams and, once
    /// `max_bytes` are queued, no more.
    pub fn new(direction: usize, max_items: usize, max_bytes: usize) -> Batch {
        Batch {
            direction,
            buf: Vec::new(),
            items: Vec::new(),
            max_items,
            max_bytes,
        }
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Queues one datagram for `to`, written by `write` at the end of the buffer it is given;
    /// `relayed`: its payload bytes, counted as relayed once it is sent (`None`: an answer).
    /// False, with nothing queued, when the batch is full.
    pub fn push(
        &mut self,
        to: SocketAddr,
        relayed: Option<usize>,
        write: impl FnOnce(&mut Vec<u8>),
    ) -> bool {
        if self.items.len() >= self.max_items || self.buf.len() >= self.max_bytes {
            return false;
        }
        let start = self.buf.len();
        write(&mut self.buf);
        self.items.push(Item {
            start,
            end: self.buf.len(),
            to,
            relayed,
        });
        true
    }

    /// Sends what is queued, in order, [`SEND_BATCH`] at a time through `send` (see
    /// [`send_in_order`]), counting each relayed datagram as relayed when sent or dropped when
    /// refused. On a full socket buffer the rest stays queued, in order, and this returns true.
    pub fn flush(
        &mut self,
        counts: &TurnCounts,
        mut send: impl FnMut(&[Datagram<'_>]) -> io::Result<usize>,
    ) -> bool {
        let (mut packets, mut bytes, mut dropped) = (0u64, 0u64, 0u64);
        let mut at = 0;
        let mut blocked = false;
        while at < self.items.len() {
            let chunk = self
                .items
                .get(at..self.items.len().min(at + SEND_BATCH))
                .unwrap_or_default();
            let mut msgs: [Datagram<'_>; SEND_BATCH] = [(&[], NOWHERE); SEND_BATCH];
            for (m, it) in msgs.iter_mut().zip(chunk) {
                *m = (self.buf.get(it.start..it.end).unwrap_or_default(), it.to);
            }
            let msgs = msgs.get(..chunk.len()).unwrap_or_default();
            let sent = send_in_order(msgs, &mut send, |i, ok| {
                match (ok, chunk.get(i).and_then(|it| it.relayed)) {
                    (true, Some(n)) => {
                        packets += 1;
                        bytes += n as u64;
                    }
                    (false, Some(_)) => dropped += 1,
                    (_, None) => {}
                }
            });
            at += sent.done;
            if sent.blocked {
                blocked = true;
                break;
            }
        }
        counts.relayed_many(self.direction, packets, bytes);
        counts.dropped_many(dropped);
        if at >= self.items.len() {
            self.items.clear();
            self.buf.clear();
            // A long stall may have grown the buffer: give most of it back.
            if self.buf.capacity() > 4 * SHRINK_TO {
                self.buf.shrink_to(SHRINK_TO);
                self.items.shrink_to(SEND_BATCH);
            }
        } else if at > 0 {
            // Keep the rest, in order, at the front.
            let from = self.items.get(at).map_or(0, |it| it.start);
            self.buf.drain(..from);
            self.items.drain(..at);
            for it in &mut self.items {
                it.start -= from;
                it.end -= from;
            }
        }
        blocked
    }
}

/// What a batch buffer shrinks back to after a stall.
const SHRINK_TO: usize = 256 << 10;

/// The datagrams waiting to go out of the listening UDP socket (to clients), shared by the
/// relay thread's tasks; see the module comment.
pub struct Outbound {
    sock: Arc<tokio::net::UdpSocket>,
    state: Mutex<OutState>,
    wake: tokio::sync::Notify,
    metrics: Arc<Metrics>,
}

struct OutState {
    batch: Batch,
    /// The socket's buffer was full at the last try: only the flush task tries again.
    blocked: bool,
}

impl std::fmt::Debug for Outbound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbound")
            .field("sock", &self.sock)
            .finish_non_exhaustive()
    }
}

impl Outbound {
    pub fn new(sock: Arc<tokio::net::UdpSocket>, metrics: Arc<Metrics>) -> Outbound {
        Outbound {
            sock,
            state: Mutex::new(OutState {
                batch: Batch::new(1, OUT_MAX_DATAGRAMS, OUT_MAX_BYTES),
                blocked: false,
            }),
            wake: tokio::sync::Notify::new(),
            metrics,
        }
    }

    /// Queues a datagram for the client `to` (see [`Batch::push`]); the flush task is woken for
    /// the first one, and a full [`SEND_BATCH`] is sent at once. False if it was dropped (the
    /// queue is full; counted if it is relayed data).
    pub fn push(
        &self,
        to: SocketAddr,
        relayed: Option<usize>,
        write: impl FnOnce(&mut Vec<u8>),
    ) -> bool {
        let mut st = self.state.lock();
        let first = st.batch.is_empty();
        if !st.batch.push(to, relayed, write) {
            drop(st);
            if relayed.is_some() {
                self.metrics.turn.dropped();
            }
            return false;
        }
        if st.batch.len() >= SEND_BATCH && !st.blocked {
            let fd = self.sock.as_raw_fd();
            st.blocked = st
                .batch
                .flush(&self.metrics.turn, |m| send_datagrams(fd, m));
            if st.blocked {
                self.wake.notify_one();
            }
        } else if first {
            self.wake.notify_one();
        }
        true
    }

    /// Sends what is queued; true if the socket's buffer is full and some is still waiting.
    pub fn flush(&self) -> bool {
        let fd = self.sock.as_raw_fd();
        let mut st = self.state.lock();
        let blocked = st
            .batch
            .flush(&self.metrics.turn, |m| send_datagrams(fd, m));
        st.blocked = blocked;
        blocked
    }

    /// Datagrams waiting.
    pub fn queued(&self) -> usize {
        self.state.lock().batch.len()
    }

    /// The flush task of the relay thread: sends whatever was queued once the tasks that
    /// queued it have run (it is woken by the first datagram and runs after them); while the
    /// socket's buffer is full it tries again every [`RETRY`], the queue growing up to its cap.
    pub async fn run(self: Arc<Self>) {
        loop {
            self.wake.notified().await;
            while self.flush() {
                tokio::time::sleep(RETRY).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([192, 0, 2, 1], port))
    }

    /// A socket stand-in: takes at most `take` datagrams per call (then the scripted results
    /// in turn), recording what it was given.
    struct Fake {
        script: Vec<io::Result<usize>>,
        sent: Vec<(Vec<u8>, SocketAddr)>,
        calls: usize,
    }

    impl Fake {
        /// The first byte of each datagram sent, in order (the tests number them so).
        fn order(&self) -> Vec<u8> {
            self.sent.iter().map(|(d, _)| d[0]).collect()
        }

        fn new(script: Vec<io::Result<usize>>) -> Fake {
            Fake {
                script,
                sent: vec![],
                calls: 0,
            }
        }

        /// Sends as scripted: `Ok(n)` takes n (at most what is offered), errors are returned;
        /// once the script is done, everything offered is taken.
        fn send(&mut self, msgs: &[Datagram<'_>]) -> io::Result<usize> {
            self.calls += 1;
            assert!(!msgs.is_empty() && msgs.len() <= SEND_BATCH);
            let r = if self.script.is_empty() {
                Ok(msgs.len())
            } else {
                self.script.remove(0)
            };
            if let Ok(n) = r {
                for m in msgs.iter().take(n) {
                    self.sent.push((m.0.to_vec(), m.1));
                }
                return Ok(n.min(msgs.len()));
            }
            r
        }
    }

    fn would_block() -> io::Error {
        io::Error::from(io::ErrorKind::WouldBlock)
    }

    fn refused() -> io::Error {
        io::Error::from_raw_os_error(1) // EPERM, e.g. a firewall rule
    }

    fn filled(n: usize) -> Batch {
        let mut b = Batch::new(1, 1000, 1 << 20);
        for i in 0..n {
            assert!(b.push(addr(i as u16), Some(3), |buf| buf
                .extend_from_slice(&[i as u8; 3])));
        }
        b
    }

    #[test]
    fn partial_sends_are_resumed_in_order() {
        let counts = TurnCounts::default();
        let mut b = filled(10);
        // sendmmsg sends 3, then 4, then the rest.
        let mut f = Fake::new(vec![Ok(3), Ok(4)]);
        assert!(!b.flush(&counts, |m| f.send(m)));
        assert_eq!(f.calls, 3);
        assert_eq!(f.order(), (0..10).collect::<Vec<u8>>());
        assert!(f
            .sent
            .iter()
            .enumerate()
            .all(|(i, (d, to))| d.len() == 3 && *to == addr(i as u16)));
        assert_eq!(counts.relayed_count(1), (10, 30));
        assert_eq!(counts.dropped_count(), 0);
        assert!(b.is_empty());
    }

    #[test]
    fn a_full_buffer_keeps_the_rest_queued_in_order() {
        let counts = TurnCounts::default();
        let mut b = filled(6);
        let mut f = Fake::new(vec![Ok(2), Err(would_block())]);
        assert!(b.flush(&counts, |m| f.send(m)), "blocked");
        assert_eq!(b.len(), 4);
        assert_eq!(counts.relayed_count(1), (2, 6));
        // More arrives meanwhile, after what waits.
        assert!(b.push(addr(99), Some(1), |buf| buf.push(99)));
        assert!(!b.flush(&counts, |m| f.send(m)));
        assert_eq!(f.order(), [0, 1, 2, 3, 4, 5, 99]);
        assert_eq!(f.sent[6].1, addr(99));
        assert_eq!(counts.relayed_count(1), (7, 19));
        assert_eq!(counts.dropped_count(), 0);
    }

    #[test]
    fn a_refused_datagram_is_dropped_alone() {
        let counts = TurnCounts::default();
        let mut b = filled(5);
        // Two go out, the third is refused (the error of the next call), then the rest.
        let mut f = Fake::new(vec![Ok(2), Err(refused())]);
        assert!(!b.flush(&counts, |m| f.send(m)));
        assert_eq!(f.order(), [0, 1, 3, 4]);
        assert_eq!(counts.relayed_count(1), (4, 12));
        assert_eq!(counts.dropped_count(), 1);
        assert!(b.is_empty());
    }

    #[test]
    fn nothing_taken_never_loops() {
        let counts = TurnCounts::default();
        let mut b = filled(3);
        let mut f = Fake::new(vec![Ok(0)]);
        assert!(b.flush(&counts, |m| f.send(m)));
        assert_eq!(f.calls, 1);
        assert_eq!(b.len(), 3);
    }

    #[test]
    fn large_batches_go_out_in_chunks_and_answers_are_not_counted() {
        let counts = TurnCounts::default();
        let mut b = Batch::new(0, 1000, 1 << 20);
        for i in 0..150u16 {
            let relayed = (i % 10 != 0).then_some(2);
            assert!(b.push(addr(i), relayed, |buf| buf
                .extend_from_slice(&i.to_be_bytes())));
        }
        let mut f = Fake::new(vec![]);
        assert!(!b.flush(&counts, |m| f.send(m)));
        assert_eq!(f.calls, 3, "64 + 64 + 22");
        let order: Vec<u16> = f
            .sent
            .iter()
            .map(|(d, _)| u16::from_be_bytes([d[0], d[1]]))
            .collect();
        assert_eq!(order, (0..150).collect::<Vec<u16>>());
        assert_eq!(counts.relayed_count(0), (135, 270));
    }

    #[test]
    fn a_full_batch_refuses_more() {
        let mut b = Batch::new(1, 2, 1 << 20);
        assert!(b.push(addr(1), Some(1), |buf| buf.push(1)));
        assert!(b.push(addr(2), Some(1), |buf| buf.push(2)));
        assert!(!b.push(addr(3), Some(1), |buf| buf.push(3)));
        let mut b = Batch::new(1, 100, 4);
        assert!(b.push(addr(1), Some(4), |buf| buf.extend_from_slice(&[1; 4])));
        assert!(!b.push(addr(2), Some(1), |buf| buf.push(2)));
    }

    #[test]
    fn send_in_order_reports_each_datagram() {
        let data = [[1u8], [2], [3], [4]];
        let msgs: Vec<Datagram<'_>> = data.iter().map(|d| (&d[..], addr(1))).collect();
        let mut script = vec![Ok(1), Err(refused()), Ok(1), Err(would_block())].into_iter();
        let mut seen = vec![];
        let sent = send_in_order(
            &msgs,
            |_| script.next().unwrap_or(Ok(0)),
            |i, ok| seen.push((i, ok)),
        );
        assert_eq!(
            sent,
            Sent {
                done: 3,
                blocked: true
            }
        );
        assert_eq!(seen, [(0, true), (1, false), (2, true)]);
    }

    #[test]
    fn gso_runs_are_one_destination_and_one_size_but_the_last() {
        let (a, b) = (addr(1), addr(2));
        let (big, small, empty) = (vec![0u8; 100], vec![0u8; 40], vec![]);
        let m = |v: &[(&Vec<u8>, SocketAddr)]| -> Vec<(Vec<u8>, SocketAddr)> {
            v.iter().map(|(d, t)| ((*d).clone(), *t)).collect()
        };
        let run = |v: Vec<(Vec<u8>, SocketAddr)>| {
            let msgs: Vec<Datagram<'_>> = v.iter().map(|(d, t)| (&d[..], *t)).collect();
            run_length(&msgs)
        };
        assert_eq!(run(vec![]), 0);
        assert_eq!(run(m(&[(&big, a)])), 1);
        assert_eq!(run(m(&[(&big, a), (&big, a), (&big, a), (&big, b)])), 3);
        assert_eq!(
            run(m(&[(&big, a), (&big, a), (&small, a), (&small, a)])),
            3,
            "a shorter one ends a run"
        );
        assert_eq!(run(m(&[(&small, a), (&big, a)])), 1, "no longer one after");
        assert_eq!(run(m(&[(&big, a), (&empty, a)])), 1);
        assert_eq!(run(m(&[(&empty, a), (&empty, a)])), 1);
        assert_eq!(run(vec![(big.clone(), a); 100]), 64, "64 segments at most");
        assert_eq!(
            run(vec![(vec![0u8; 1400], a); 60]),
            46,
            "65,000 bytes at most: 46 × 1400"
        );
    }

    /// Real GSO sends: runs of one size (and a shorter last) arrive as the datagrams they
    /// were, in order, mixed with datagrams that are no run.
    #[test]
    fn gso_runs_arrive_as_their_datagrams() {
        let rx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        rx.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let to = rx.local_addr().unwrap();
        let other = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let tx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        tx.set_nonblocking(true).unwrap();
        let sizes = [
            300, 300, 300, 120, 300, 50, 50, 50, 7, 1, 1200, 1200, 1200, 1200, 1199, 1199, 9,
        ];
        let mut payloads: Vec<Vec<u8>> = vec![];
        for (i, n) in sizes.iter().enumerate() {
            payloads.push((0..*n).map(|j| (i * 7 + j) as u8).collect());
        }
        payloads.extend((0..80).map(|i| vec![i as u8; 500])); // over 64 segments
                                                              // Every fifth datagram goes elsewhere, breaking runs.
        let msgs: Vec<Datagram<'_>> = payloads
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let dst = if i % 5 == 4 {
                    other.local_addr().unwrap()
                } else {
                    to
                };
                (&p[..], dst)
            })
            .collect();
        let mut ok = 0;
        let sent = send_in_order(
            &msgs,
            |m| send_datagrams(tx.as_raw_fd(), m),
            |_, sent| ok += usize::from(sent),
        );
        assert!(!sent.blocked);
        assert_eq!(ok, msgs.len());
        assert_eq!(GSO_FAILURES.load(Ordering::Relaxed), 0, "GSO sends taken");
        let mut buf = [0u8; 2048];
        for (p, _) in msgs.iter().filter(|m| m.1 == to) {
            let (n, from) = rx.recv_from(&mut buf).unwrap();
            assert_eq!(from, tx.local_addr().unwrap());
            assert_eq!(&buf[..n], *p);
        }
        other
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        for (p, _) in msgs.iter().filter(|m| m.1 != to) {
            let n = other.recv(&mut buf).unwrap();
            assert_eq!(&buf[..n], *p);
        }
    }

    /// The real system calls: a burst through `sendmmsg` arrives whole and in order.
    #[test]
    fn sendmmsg_sends_a_burst_in_order() {
        let rx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        rx.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let to = rx.local_addr().unwrap();
        let tx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        tx.set_nonblocking(true).unwrap();
        let payloads: Vec<Vec<u8>> = (0..100u8).map(|i| vec![i; 1 + i as usize]).collect();
        let msgs: Vec<Datagram<'_>> = payloads.iter().map(|p| (&p[..], to)).collect();
        let sent = send_in_order(
            &msgs,
            |m| send_datagrams(tx.as_raw_fd(), m),
            |_, ok| assert!(ok),
        );
        assert_eq!(
            sent,
            Sent {
                done: 100,
                blocked: false
            }
        );
        let mut buf = [0u8; 512];
        for i in 0..100u8 {
            let (n, from) = rx.recv_from(&mut buf).unwrap();
            assert_eq!(from, tx.local_addr().unwrap());
            assert_eq!(&buf[..n], &payloads[i as usize][..]);
        }
    }
}
