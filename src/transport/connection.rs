//! One connection — WebSocket after the HTTP upgrade, or RawSocket after its handshake: one task
//! that reads frames (through the transport's `FrameCodec`), hands complete messages to the WAMP
//! session (or echoes them), and drains the connection's outbox.
//!
//! The task waits only on cancel-safe readiness (`readable`, `writable`, the outbox's notify),
//! and reads and writes without blocking, so a peer that stops reading never stalls the read
//! side and a frame is never half-read across a cancelled future. The read buffer exists only
//! while a frame is incomplete: an idle connection holds none.

use super::connections::Connections;
use super::frames::{FrameCodec, FrameError, FrameEvent, Parsed};
use super::socket::Socket;
use crate::metrics::Counters;
use crate::outbox::{close_code, Outbox};
use crate::session::{Flow, Session};
use bytes::{Buf, Bytes, BytesMut};
use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Sleep;

/// What the connection does with complete messages.
pub enum Handler {
    Wamp(Session),
    Echo,
}

/// How long a closing handshake may take before the socket is dropped.
const CLOSE_GRACE: Duration = Duration::from_secs(2);
/// Frames gathered into one vectored write.
const MAX_IOVECS: usize = 64;
/// Read chunk when the frame size is not known yet.
const READ_CHUNK: usize = 4096;

#[derive(PartialEq, Eq)]
enum Closing {
    Open,
    /// We sent a close frame and wait for the peer's (or the grace period).
    Sent,
    /// The peer closed; once our reply is written we are done.
    Replied,
}

struct Writer {
    pending: VecDeque<Bytes>,
    /// The front frame is partly on the wire and must be finished before anything else.
    front_started: bool,
}

impl Writer {
    /// Writes as much as the socket takes now. Ok(true) when everything pending is written.
    /// `last`: nothing follows but the shutdown (see `Socket::try_write_last`).
    fn flush(
        &mut self,
        stream: &impl Socket,
        outbox: &Outbox,
        counters: &Counters,
        last: bool,
    ) -> io::Result<bool> {
        while !self.pending.is_empty() {
            // Up to 64 frames per write, gathered on the stack (this runs for every write).
            let mut slices = [IoSlice::new(&[]); MAX_IOVECS];
            let mut count = 0;
            for (slot, frame) in slices.iter_mut().zip(self.pending.iter()) {
                *slot = IoSlice::new(frame);
                count += 1;
            }
            let written = if last {
                stream.try_write_last(&slices[..count])
            } else {
                stream.try_write_vectored(&slices[..count])
            };
            match written {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(mut n) => {
                    outbox.written(n);
                    counters.writes.fetch_add(1, Ordering::Relaxed);
                    Counters::add(&counters.bytes_out, n as u64);
                    while n > 0 {
                        let Some(front) = self.pending.front_mut() else {
                            break;
                        };
                        if n >= front.len() {
                            n -= front.len();
                            self.pending.pop_front();
                            self.front_started = false;
                            counters.messages_out.fetch_add(1, Ordering::Relaxed);
                        } else {
                            front.advance(n);
                            self.front_started = true;
                            n = 0;
                        }
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) => return Err(e),
            }
        }
        Ok(true)
    }

    /// Drops queued frames (keeping a frame already partly written, so framing stays intact);
    /// returns how many.
    fn discard(&mut self) -> u64 {
        let keep = if self.front_started {
            self.pending.pop_front()
        } else {
            None
        };
        let n = self.pending.len() as u64;
        self.pending.clear();
        if let Some(f) = keep {
            self.pending.push_back(f);
        }
        n
    }
}

/// The session is over once a close starts: it leaves its realm at once, not after the
/// closing handshake (a killed or slow peer must not keep its subscriptions for the grace period).
fn end_session(handler: &mut Handler) {
    if let Handler::Wamp(session) = handler {
        session.on_transport_closed();
    }
}

fn is_waiting(handler: &Handler) -> bool {
    matches!(handler, Handler::Wamp(s) if s.is_waiting())
}

/// Waits for the session's pending authenticator/authorizer call (cancel-safe).
async fn resume(handler: &mut Handler) -> Flow {
    match handler {
        Handler::Wamp(session) => session.resume().await,
        Handler::Echo => std::future::pending().await,
    }
}

async fn sleep_opt(s: &mut Option<Pin<Box<Sleep>>>) {
    match s {
        Some(s) => s.await,
        None => std::future::pending().await,
    }
}

/// Runs a connection to the end.
///
/// Not an `async fn`: rustc keeps an `async fn`'s arguments twice in the future (as captured
/// arguments and as the body's locals), which costs every idle connection about 300 bytes; an
/// `async move` block that uses its captures in place keeps them once.
#[allow(clippy::manual_async_fn)] // on purpose: see above
pub fn serve<S: Socket, C: FrameCodec>(
    mut stream: S,
    leftover: Bytes,
    mut reader: C,
    mut handler: Handler,
    outbox: Arc<Outbox>,
    conns: Arc<Connections>,
    counters: Arc<Counters>,
) -> impl std::future::Future<Output = ()> {
    async move {
        let reg = conns.register(
            outbox.clone(),
            reader.ping(),
            matches!(handler, Handler::Wamp(_)),
        );
        Counters::add(&counters.bytes_in, leftover.len() as u64);
        let mut rbuf = BytesMut::from(&leftover[..]);
        // `leftover` is a view into hyper's whole handshake read buffer: release it now, or every
        // idle connection keeps that buffer for its lifetime.
        drop(leftover);
        let mut need = READ_CHUNK;
        let mut writer = Writer {
            pending: VecDeque::new(),
            front_started: false,
        };
        let mut closing = Closing::Open;
        let mut close_timer: Option<Pin<Box<Sleep>>> = None;
        let write_delay = conns.limits().write_delay;
        let mut batch_timer: Option<Pin<Box<Sleep>>> = None;
        let mut batch_fired = false;
        // Frames the writer discarded at a close that does not flush.
        let mut discarded = 0;

        'conn: loop {
            // 1. Everything complete in the read buffer (unless the session waits: messages are
            //    handled in order, so the rest stays buffered until it resumes).
            while !is_waiting(&handler) {
                let event = match reader.parse(&mut rbuf) {
                    Ok(Parsed::Event(e)) => e,
                    Ok(Parsed::NeedMore(n)) => {
                        need = n;
                        break;
                    }
                    Err(e) => {
                        if closing == Closing::Open {
                            let code = match e {
                                FrameError::Protocol(_) => close_code::PROTOCOL_ERROR,
                                FrameError::TooBig(_) => close_code::TOO_BIG,
                                FrameError::InvalidUtf8 => close_code::INVALID_DATA,
                            };
                            // Failing the connection (RFC 6455 §7.1.7): what was already answered
                            // goes out, then our close frame, then we drop TCP without waiting.
                            tracing::debug!(error = %e, "failing the connection");
                            outbox.take(&mut writer.pending);
                            writer
                                .pending
                                .extend(reader.close(Some(code), &e.to_string()));
                            closing = Closing::Replied;
                            close_timer = Some(Box::pin(tokio::time::sleep(CLOSE_GRACE)));
                            end_session(&mut handler);
                        }
                        rbuf.clear();
                        break;
                    }
                };
                if closing != Closing::Open {
                    // After our close frame, the peer's close ends the connection; after we replied to
                    // the peer's close, anything more (even a second close) is ignored.
                    if closing == Closing::Sent && matches!(event, FrameEvent::Close { .. }) {
                        break 'conn;
                    }
                    continue;
                }
                match event {
                    FrameEvent::Message { text, data } => match &mut handler {
                        Handler::Wamp(session) => {
                            let flow = session.handle(&data);
                            reg.set_waiting_for_hello(session.is_waiting_for_hello());
                            if flow == Flow::Close && !outbox.is_closing() {
                                break 'conn;
                            }
                        }
                        Handler::Echo => {
                            let _ = outbox.push(reader.echo(text, &data));
                        }
                    },
                    FrameEvent::Ping(payload) => {
                        let _ = outbox.push(reader.pong(&payload));
                    }
                    FrameEvent::Pong => {}
                    FrameEvent::Close { code, .. } => {
                        // Queued replies go first, then our close frame echoing the peer's code.
                        outbox.take(&mut writer.pending);
                        writer.pending.extend(reader.close(code, ""));
                        closing = Closing::Replied;
                        close_timer = Some(Box::pin(tokio::time::sleep(CLOSE_GRACE)));
                        end_session(&mut handler);
                    }
                }
            }

            // 2. Frames the router queued, and a close it asked for. With a write delay, frames
            //    arriving at an idle writer wait up to the delay so several go out in one write.
            let mut hold = false;
            if !write_delay.is_zero() && closing == Closing::Open && !outbox.is_closing() {
                if batch_fired {
                    batch_timer = None;
                    batch_fired = false;
                } else if batch_timer.is_some() {
                    hold = true;
                } else if writer.pending.is_empty() && outbox.has_frames() {
                    batch_timer = Some(Box::pin(tokio::time::sleep(write_delay)));
                    hold = true;
                }
            }
            if closing == Closing::Open && !hold {
                if let Some(req) = outbox.take(&mut writer.pending) {
                    if !req.flush_first {
                        discarded += writer.discard();
                    }
                    tracing::debug!(code = req.code, reason = %req.reason, "closing connection");
                    // With a close frame we wait for the peer's; without one (RawSocket) we are
                    // done once what is queued is written.
                    match reader.close(Some(req.code), &req.reason) {
                        Some(frame) => {
                            writer.pending.push_back(frame);
                            closing = Closing::Sent;
                        }
                        None => closing = Closing::Replied,
                    }
                    close_timer = Some(Box::pin(tokio::time::sleep(CLOSE_GRACE)));
                    end_session(&mut handler);
                }
            }

            // 3. Write what the socket takes.
            let last = closing == Closing::Replied;
            match writer.flush(&stream, &outbox, &counters, last) {
                Ok(true) if closing == Closing::Replied => break,
                Ok(_) => {}
                Err(_) => break,
            }

            // 4. Idle connections keep no read buffer.
            if rbuf.is_empty() && rbuf.capacity() > 0 {
                rbuf = BytesMut::new();
            }

            let waiting = closing == Closing::Open && is_waiting(&handler);
            tokio::select! {
                flow = resume(&mut handler), if waiting => {
                    if let Handler::Wamp(session) = &handler {
                        reg.set_waiting_for_hello(session.is_waiting_for_hello());
                    }
                    if flow == Flow::Close && !outbox.is_closing() {
                        break;
                    }
                }
                r = stream.readable(), if !waiting => {
                    if r.is_err() {
                        break;
                    }
                    rbuf.reserve(need.max(READ_CHUNK));
                    match stream.try_read_buf(&mut rbuf) {
                        Ok(0) => break,
                        Ok(n) => {
                            Counters::add(&counters.bytes_in, n as u64);
                            reg.touch();
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                        Err(_) => break,
                    }
                }
                r = stream.writable(), if !writer.pending.is_empty() || stream.has_buffered_output() => {
                    if r.is_err() {
                        break;
                    }
                }
                _ = outbox.notified(), if closing == Closing::Open => {}
                _ = sleep_opt(&mut close_timer) => break,
                _ = sleep_opt(&mut batch_timer) => batch_fired = true,
            }
        }

        end_session(&mut handler);
        // What was never written: discarded, refused, or still queued now.
        outbox.take(&mut writer.pending);
        let (dropped, cut_off) = outbox.losses();
        Counters::add(
            &counters.frames_dropped,
            dropped + discarded + writer.pending.len() as u64,
        );
        if cut_off {
            Counters::add(&counters.slow_consumers, 1);
        }
        let _ = tokio::time::timeout(Duration::from_millis(200), stream.shutdown()).await;
        drop(reg);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::frames::WsReader;

    /// The connection loop's future is most of what an idle session costs (one per connection,
    /// for its whole life). A local held across an await, or an argument stored twice, shows
    /// here first: it was about 1.3 KiB when arguments were stored twice.
    #[tokio::test]
    async fn the_connection_future_stays_small() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let stream = tokio::net::TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let conns = Connections::new(crate::config::Limits::default());
        let fut = serve(
            stream,
            Bytes::new(),
            WsReader::new(1024),
            Handler::Echo,
            Arc::new(Outbox::new(1024)),
            conns,
            Arc::new(Counters::default()),
        );
        let size = std::mem::size_of_val(&fut);
        assert!(size <= 1100, "the connection future is {size} bytes");
    }
}
