//! `Outbox`: one connection's bounded queue of ready-to-write frames.
//!
//! Everything a connection sends — replies, EVENTs fanned out by other sessions, pings, the
//! close frame — goes through its outbox, so the router never touches a socket and never waits.
//! `push` is synchronous and never blocks; when the frames queued or in the writer's hands
//! would exceed the byte limit, the outbox drops its queue and asks the connection to close as a
//! slow consumer. Memory per connection is therefore bounded by the limit, and a slow
//! subscriber cannot slow a publisher or other subscribers down.
//!
//! Invariant: `bytes` counts every frame pushed and not yet reported written.
//! `frames` counts every WAMP frame ever queued (not keep-alive pings): the meta API reports
//! it per session as `messages_out`. `dropped` counts the frames discarded or refused because
//! the connection was closing, for the connection to report when it ends.

use bytes::Bytes;
use parking_lot::Mutex;
use std::collections::VecDeque;
use tokio::sync::Notify;

/// Why and how a connection should be closed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CloseRequest {
    /// WebSocket close code (RawSocket connections just close).
    pub code: u16,
    pub reason: String,
    /// Send what is queued first (after ABORT or GOODBYE), or drop it (slow consumer, kill).
    pub flush_first: bool,
}

/// WebSocket close codes the router uses (RFC 6455 §7.4.1).
pub mod close_code {
    pub const NORMAL: u16 = 1000;
    pub const GOING_AWAY: u16 = 1001;
    pub const PROTOCOL_ERROR: u16 = 1002;
    pub const INVALID_DATA: u16 = 1007;
    pub const POLICY: u16 = 1008;
    pub const TOO_BIG: u16 = 1009;
    pub const INTERNAL: u16 = 1011;
    pub const TRY_AGAIN_LATER: u16 = 1013;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushError {
    /// The connection is closing; the frame was dropped.
    Closed,
    /// This frame overflowed the limit; the connection is now closing as a slow consumer.
    Overflow,
    /// The frame is larger than the peer accepts (RawSocket's negotiated maximum); it was not
    /// queued and the connection stays open.
    TooLarge,
}

struct State {
    queue: VecDeque<Bytes>,
    bytes: usize,
    /// Frames queued so far (`push`, not `push_ping`).
    frames: u64,
    /// Frames discarded from the queue by an overflow or a close that does not flush, plus
    /// frames (not pings) refused because the connection was closing.
    dropped: u64,
    /// The queue overflowed: the connection is closing as a slow consumer.
    cut_off: bool,
    close: Option<CloseRequest>,
}

pub struct Outbox {
    state: Mutex<State>,
    wake: Notify,
    limit: usize,
    /// Largest frame the peer accepts.
    max_frame: usize,
}

impl Outbox {
    pub fn new(limit: usize) -> Outbox {
        Self::with_max_frame(limit, usize::MAX)
    }

    /// An outbox whose peer accepts frames of at most `max_frame` bytes.
    pub fn with_max_frame(limit: usize, max_frame: usize) -> Outbox {
        Outbox {
            max_frame,
            state: Mutex::new(State {
                queue: VecDeque::new(),
                bytes: 0,
                frames: 0,
                dropped: 0,
                cut_off: false,
                close: None,
            }),
            wake: Notify::new(),
            limit,
        }
    }

    /// Queues a frame for the writer.
    pub fn push(&self, frame: Bytes) -> Result<(), PushError> {
        self.enqueue(frame, true)
    }

    /// Queues a keep-alive ping: like `push`, but not counted as a message.
    pub fn push_ping(&self, frame: Bytes) -> Result<(), PushError> {
        self.enqueue(frame, false)
    }

    /// Frames `push` accepted so far (including any later dropped by a close).
    pub fn frames(&self) -> u64 {
        self.state.lock().frames
    }

    /// Frames discarded or refused because the connection was closing, and whether it was
    /// cut off as a slow consumer.
    pub fn losses(&self) -> (u64, bool) {
        let st = self.state.lock();
        (st.dropped, st.cut_off)
    }

    fn enqueue(&self, frame: Bytes, counted: bool) -> Result<(), PushError> {
        if frame.len() > self.max_frame {
            return Err(PushError::TooLarge);
        }
        let mut st = self.state.lock();
        if st.close.is_some() {
            st.dropped += u64::from(counted);
            return Err(PushError::Closed);
        }
        if st.bytes + frame.len() > self.limit {
            st.dropped += st.queue.len() as u64 + 1;
            st.cut_off = true;
            st.queue = VecDeque::new();
            st.close = Some(CloseRequest {
                code: close_code::POLICY,
                reason: format!(
                    "slow consumer: more than {} bytes queued for this connection",
                    self.limit
                ),
                flush_first: false,
            });
            drop(st);
            self.wake.notify_one();
            return Err(PushError::Overflow);
        }
        st.bytes += frame.len();
        st.frames += u64::from(counted);
        st.queue.push_back(frame);
        drop(st);
        self.wake.notify_one();
        Ok(())
    }

    /// Asks the connection to close. The first request wins.
    pub fn close(&self, req: CloseRequest) {
        let mut st = self.state.lock();
        if st.close.is_none() {
            if !req.flush_first {
                st.dropped += st.queue.len() as u64;
                st.queue = VecDeque::new();
            }
            st.close = Some(req);
        }
        drop(st);
        self.wake.notify_one();
    }

    pub fn is_closing(&self) -> bool {
        self.state.lock().close.is_some()
    }

    /// Moves queued frames into the writer's hands and reports a pending close request.
    /// The frames still count against the limit until `written` is called.
    pub fn take(&self, into: &mut VecDeque<Bytes>) -> Option<CloseRequest> {
        let mut st = self.state.lock();
        if into.is_empty() {
            std::mem::swap(into, &mut st.queue);
        } else {
            into.extend(st.queue.drain(..));
        }
        st.close.clone()
    }

    /// The writer wrote `n` bytes of taken frames.
    pub fn written(&self, n: usize) {
        let mut st = self.state.lock();
        st.bytes = st.bytes.saturating_sub(n);
    }

    /// Whether frames wait in the queue (not yet taken by the writer).
    pub fn has_frames(&self) -> bool {
        !self.state.lock().queue.is_empty()
    }

    /// Waits until something was pushed or a close was requested since the last wait.
    pub async fn notified(&self) {
        self.wake.notified().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overflow_closes_and_drops_the_queue() {
        let o = Outbox::new(10);
        assert!(o.push(Bytes::from_static(b"12345")).is_ok());
        assert!(o.push(Bytes::from_static(b"12345")).is_ok());
        assert_eq!(o.push(Bytes::from_static(b"1")), Err(PushError::Overflow));
        assert_eq!(o.push(Bytes::from_static(b"1")), Err(PushError::Closed));
        let mut q = VecDeque::new();
        let close = o.take(&mut q).unwrap();
        assert!(q.is_empty());
        assert!(close.reason.contains("slow consumer"));
        assert!(!close.flush_first);
        assert_eq!(
            o.losses(),
            (4, true),
            "two queued, the overflowing one, one refused"
        );
        assert_eq!(
            o.push_ping(Bytes::from_static(b"p")),
            Err(PushError::Closed)
        );
        assert_eq!(o.losses(), (4, true), "refused pings are not counted");
    }

    #[test]
    fn written_frees_budget() {
        let o = Outbox::new(10);
        o.push(Bytes::from_static(b"1234567890")).unwrap();
        let mut q = VecDeque::new();
        assert!(o.take(&mut q).is_none());
        assert_eq!(q.len(), 1);
        assert_eq!(
            o.push(Bytes::from_static(b"1")),
            Err(PushError::Overflow),
            "taken frames still count"
        );
        let o = Outbox::new(10);
        o.push(Bytes::from_static(b"1234567890")).unwrap();
        o.take(&mut q);
        o.written(10);
        assert!(o.push(Bytes::from_static(b"1234567890")).is_ok());
    }

    #[test]
    fn counts_queued_frames_but_not_pings() {
        let o = Outbox::new(100);
        o.push(Bytes::from_static(b"a")).unwrap();
        o.push_ping(Bytes::from_static(b"p")).unwrap();
        o.push(Bytes::from_static(b"b")).unwrap();
        assert_eq!(o.frames(), 2);
        assert_eq!(
            o.push(Bytes::from(vec![0u8; 200])),
            Err(PushError::Overflow)
        );
        assert_eq!(o.frames(), 2, "a refused frame is not counted");
    }

    #[test]
    fn graceful_close_keeps_queued_frames() {
        let o = Outbox::new(100);
        o.push(Bytes::from_static(b"abort")).unwrap();
        o.close(CloseRequest {
            code: close_code::NORMAL,
            reason: String::new(),
            flush_first: true,
        });
        let mut q = VecDeque::new();
        assert!(o.take(&mut q).is_some());
        assert_eq!(q.len(), 1);
        assert_eq!(o.losses(), (0, false));
    }

    #[test]
    fn a_close_without_flush_counts_what_it_discards() {
        let o = Outbox::new(100);
        o.push(Bytes::from_static(b"a")).unwrap();
        o.push(Bytes::from_static(b"b")).unwrap();
        o.close(CloseRequest {
            code: close_code::POLICY,
            reason: String::new(),
            flush_first: false,
        });
        assert_eq!(o.losses(), (2, false), "not a slow consumer");
    }
}
