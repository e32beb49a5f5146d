//! `Connections`: the registry of open connections, and the one task that keeps them honest —
//! keep-alive pings, dropping peers that stop answering, and the HELLO deadline.
//!
//! One sweeper for all connections instead of a timer per connection keeps idle connections
//! cheap (no timer entry, no wakeups) — memory per idle session is a first-class figure.

use crate::config::Limits;
use crate::outbox::{close_code, CloseRequest, Outbox};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What the sweeper needs to know about one connection.
pub struct ConnShared {
    pub outbox: Arc<Outbox>,
    /// Milliseconds since the registry's epoch when the peer last sent anything.
    last_rx: AtomicU64,
    /// When an unanswered ping was sent (0: none outstanding).
    ping_sent: AtomicU64,
    /// When the connection started waiting for HELLO (0: a session is established).
    hello_wait_since: AtomicU64,
    /// The ping frame for this connection's framing.
    ping_frame: bytes::Bytes,
    closing: AtomicBool,
}

pub struct Connections {
    map: Mutex<HashMap<u64, Arc<ConnShared>>>,
    next_id: AtomicU64,
    epoch: Instant,
    limits: Limits,
    accepting: AtomicBool,
    /// The connection caps (taken at accept time, before any protocol).
    pub admissions: Arc<super::admission::Admissions>,
}

/// Removes the connection from the registry when the connection task ends, however it ends.
pub struct Registration {
    conns: Arc<Connections>,
    id: u64,
    pub shared: Arc<ConnShared>,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.conns.map.lock().remove(&self.id);
    }
}

impl Registration {
    /// The peer sent something: it is alive.
    pub fn touch(&self) {
        self.shared
            .last_rx
            .store(self.conns.now_ms(), Ordering::Relaxed);
        self.shared.ping_sent.store(0, Ordering::Relaxed);
    }

    /// Whether the connection is waiting for HELLO (the deadline applies) or has a session.
    pub fn set_waiting_for_hello(&self, waiting: bool) {
        let cur = self.shared.hello_wait_since.load(Ordering::Relaxed);
        if waiting && cur == 0 {
            self.shared
                .hello_wait_since
                .store(self.conns.now_ms().max(1), Ordering::Relaxed);
        } else if !waiting && cur != 0 {
            self.shared.hello_wait_since.store(0, Ordering::Relaxed);
        }
    }
}

impl Connections {
    pub fn new(limits: Limits) -> Arc<Connections> {
        Arc::new(Connections {
            map: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            epoch: Instant::now(),
            admissions: super::admission::Admissions::new(limits.connections.clone()),
            limits,
            accepting: AtomicBool::new(true),
        })
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    pub fn count(&self) -> usize {
        self.map.lock().len()
    }

    pub fn is_accepting(&self) -> bool {
        self.accepting.load(Ordering::Relaxed)
    }

    /// Registers a new connection. `wamp` connections get the HELLO deadline.
    pub fn register(
        self: &Arc<Self>,
        outbox: Arc<Outbox>,
        ping_frame: bytes::Bytes,
        wamp: bool,
    ) -> Registration {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let now = self.now_ms();
        let shared = Arc::new(ConnShared {
            outbox,
            last_rx: AtomicU64::new(now),
            ping_sent: AtomicU64::new(0),
            hello_wait_since: AtomicU64::new(if wamp { now.max(1) } else { 0 }),
            ping_frame,
            closing: AtomicBool::new(false),
        });
        self.map.lock().insert(id, shared.clone());
        Registration {
            conns: self.clone(),
            id,
            shared,
        }
    }

    /// One pass of the keep-alive and HELLO-deadline checks.
    pub fn sweep(&self) {
        let now = self.now_ms();
        let conns: Vec<Arc<ConnShared>> = self.map.lock().values().cloned().collect();
        let hello_ms = self.limits.hello_timeout.as_millis() as u64;
        let ping_ms = self.limits.ping_interval.map(|d| d.as_millis() as u64);
        let timeout_ms = self.limits.ping_timeout.as_millis() as u64;
        for c in conns {
            if c.closing.load(Ordering::Relaxed) {
                continue;
            }
            let since = c.hello_wait_since.load(Ordering::Relaxed);
            if since != 0 && now.saturating_sub(since) > hello_ms {
                c.closing.store(true, Ordering::Relaxed);
                c.outbox.close(CloseRequest {
                    code: close_code::POLICY,
                    reason: format!(
                        "no HELLO within {} s",
                        self.limits.hello_timeout.as_secs_f32()
                    ),
                    flush_first: false,
                });
                continue;
            }
            let Some(ping_ms) = ping_ms else { continue };
            let sent = c.ping_sent.load(Ordering::Relaxed);
            if sent != 0 {
                if now.saturating_sub(sent) > timeout_ms {
                    c.closing.store(true, Ordering::Relaxed);
                    c.outbox.close(CloseRequest {
                        code: close_code::GOING_AWAY,
                        reason: format!(
                            "keep-alive: no answer to ping within {} s",
                            self.limits.ping_timeout.as_secs_f32()
                        ),
                        flush_first: false,
                    });
                }
            } else if now.saturating_sub(c.last_rx.load(Ordering::Relaxed)) >= ping_ms {
                c.ping_sent.store(now.max(1), Ordering::Relaxed);
                let _ = c.outbox.push_ping(c.ping_frame.clone());
            }
        }
    }

    /// Runs the sweeper until the registry is dropped elsewhere (it holds only a weak ref).
    pub fn spawn_sweeper(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let weak = Arc::downgrade(self);
        let mut tick = Duration::from_millis(500);
        if let Some(p) = self.limits.ping_interval {
            tick = tick.min(p / 2).max(Duration::from_millis(20));
        }
        tokio::spawn(async move {
            let mut interval = tokio::time::interval(tick);
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                interval.tick().await;
                match weak.upgrade() {
                    Some(c) => c.sweep(),
                    None => return,
                }
            }
        })
    }

    /// Stops accepting new WebSocket and RawSocket sessions (`/readyz` says 503 from now on).
    pub fn stop_accepting(&self) {
        self.accepting.store(false, Ordering::Relaxed);
    }

    /// Stops accepting and asks every connection to close (shutdown).
    pub fn close_all(&self, code: u16, reason: &str) {
        self.stop_accepting();
        let conns: Vec<Arc<ConnShared>> = self.map.lock().values().cloned().collect();
        for c in conns {
            c.closing.store(true, Ordering::Relaxed);
            c.outbox.close(CloseRequest {
                code,
                reason: reason.to_owned(),
                flush_first: true,
            });
        }
    }

    /// Waits until every connection has ended or the deadline passes; true if all ended.
    pub async fn wait_empty(&self, deadline: Duration) -> bool {
        let end = Instant::now() + deadline;
        while Instant::now() < end {
            if self.count() == 0 {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.count() == 0
    }
}
