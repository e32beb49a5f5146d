//! `connections`: many idle subscribed sessions, and what they cost the server.

use super::probe::{Probe, Sample};
use super::report::{fmt_bytes, Latency};
use super::wampc::{parse_serializer, source_for, Client};
use super::Common;
use crate::wamp::value::dict;
use crate::wamp::{Message, Payload, Value};
use futures_util::StreamExt;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};

#[derive(clap::Args, Debug, Clone)]
pub struct ConnectionsArgs {
    #[command(flatten)]
    pub common: Common,
    /// Number of sessions.
    #[arg(short = 'n', long, default_value_t = 1000)]
    pub sessions: usize,
    /// New connections per second.
    #[arg(long, default_value_t = 2000)]
    pub rate: u32,
    /// Seconds to hold the sessions once all are up.
    #[arg(long, default_value_t = 5)]
    pub hold: u64,
    /// After the first measurement, every session publishes one message of this many bytes,
    /// then memory is measured again (shows whether per-connection buffers shrink).
    #[arg(long, value_name = "BYTES")]
    pub message_bytes: Option<usize>,
    /// Connections per source address (127.0.0.1, .2, ...): one address has ~28k ports.
    #[arg(long, default_value_t = 20_000)]
    pub per_source: usize,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Phase {
    Hold,
    Publish,
    Stop,
}

enum Event {
    Joined(Duration),
    Failed(String),
    Published,
}

#[derive(Debug, serde::Serialize)]
pub struct ConnectionsResult {
    pub scenario: &'static str,
    pub requested: usize,
    pub established: usize,
    pub failed: usize,
    pub first_error: Option<String>,
    pub ramp_secs: f64,
    pub latency: Latency,
    pub server_before: Sample,
    pub server_held: Sample,
    pub rss_per_session: Option<f64>,
    pub message_bytes: Option<usize>,
    pub messages_acknowledged: usize,
    pub server_after_message: Option<Sample>,
    pub rss_per_session_after_message: Option<f64>,
}

impl ConnectionsResult {
    pub fn print(&self) {
        println!(
            "connections: {} requested, {} established, {} failed, ramp {:.1} s",
            self.requested, self.established, self.failed, self.ramp_secs
        );
        if let Some(e) = &self.first_error {
            println!("  first error: {e}");
        }
        println!("  connect → SUBSCRIBED latency: {}", self.latency.line());
        if let (Some(b), Some(h), Some(p)) = (
            self.server_before.rss_bytes,
            self.server_held.rss_bytes,
            self.rss_per_session,
        ) {
            println!(
                "  server RSS {} before, {} held → {} per session",
                fmt_bytes(b as f64),
                fmt_bytes(h as f64),
                fmt_bytes(p)
            );
        }
        if let (Some(s), Some(p)) = (
            self.server_after_message,
            self.rss_per_session_after_message,
        ) {
            println!(
                "  after each session sent one {}-byte message: {} → {} per session",
                self.message_bytes.unwrap_or(0),
                fmt_bytes(s.rss_bytes.unwrap_or(0) as f64),
                fmt_bytes(p)
            );
        }
    }
}

fn per_session(before: &Sample, after: &Sample, n: usize) -> Option<f64> {
    Some((after.rss_bytes? as f64 - before.rss_bytes? as f64) / n.max(1) as f64)
}

async fn one_session(
    i: usize,
    a: &ConnectionsArgs,
    events: &mpsc::UnboundedSender<Event>,
    mut phase: watch::Receiver<Phase>,
) -> Result<(), String> {
    let started = Instant::now();
    let ser = parse_serializer(&a.common.serializer)?;
    let mut c = Client::connect(&a.common.url, ser, source_for(i, a.per_source)).await?;
    c.join(&a.common.realm).await?;
    c.subscribe(1, &format!("bench.conn.t{i}")).await?;
    let _ = events.send(Event::Joined(started.elapsed()));
    let mut published = false;
    loop {
        let current = *phase.borrow_and_update();
        match current {
            Phase::Stop => break,
            Phase::Publish if !published => {
                published = true;
                let blob = bytes::Bytes::from(vec![0x5a; a.message_bytes.unwrap_or(0)]);
                c.send(&Message::Publish {
                    request: 2,
                    options: dict([("acknowledge", Value::Bool(true))]),
                    topic: "bench.noise".into(),
                    payload: Payload::args(vec![Value::Bytes(blob)]),
                })
                .await?;
                match c.recv().await? {
                    Message::Published { .. } => {
                        let _ = events.send(Event::Published);
                    }
                    other => return Err(format!("expected PUBLISHED, got {}", other.name())),
                }
            }
            _ => {}
        }
        tokio::select! {
            m = c.ws.next() => match m {
                None | Some(Err(_)) => return Err("connection lost while holding".into()),
                Some(Ok(tokio_tungstenite::tungstenite::Message::Close(f))) => return Err(format!("closed by the router while holding: {f:?}")),
                Some(Ok(_)) => {}
            },
            r = phase.changed() => if r.is_err() { break },
        }
    }
    c.close().await;
    Ok(())
}

pub async fn run(a: ConnectionsArgs) -> Result<ConnectionsResult, String> {
    parse_serializer(&a.common.serializer)?;
    let probe = Probe::new(a.common.pid, &a.common.url);
    let server_before = probe.sample().await;
    let (phase_tx, phase_rx) = watch::channel(Phase::Hold);
    let (ev_tx, mut ev_rx) = mpsc::unbounded_channel();
    let interval = Duration::from_secs_f64(1.0 / f64::from(a.rate.max(1)));
    let started = Instant::now();
    let spawner = {
        let a = a.clone();
        tokio::spawn(async move {
            let mut tasks = Vec::with_capacity(a.sessions);
            let mut tick = tokio::time::interval(interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            for i in 0..a.sessions {
                tick.tick().await;
                let a = a.clone();
                let ev = ev_tx.clone();
                let rx = phase_rx.clone();
                tasks.push(tokio::spawn(async move {
                    if let Err(e) = one_session(i, &a, &ev, rx).await {
                        let _ = ev.send(Event::Failed(e));
                    }
                }));
            }
            tasks
        })
    };
    let mut latencies = Vec::with_capacity(a.sessions);
    let mut failed = 0usize;
    let mut first_error = None;
    let progress = super::Progress::new("sessions", a.sessions as u64);
    while latencies.len() + failed < a.sessions {
        match ev_rx.recv().await {
            Some(Event::Joined(d)) => latencies.push(d.as_micros() as u64),
            Some(Event::Failed(e)) => {
                failed += 1;
                first_error.get_or_insert(e);
            }
            Some(Event::Published) => {}
            None => break,
        }
        progress.set(
            (latencies.len() + failed) as u64,
            &format!("{} up, {failed} failed", latencies.len()),
        );
    }
    progress.finish();
    let ramp_secs = started.elapsed().as_secs_f64();
    let tasks = spawner.await.map_err(|e| e.to_string())?;
    tokio::time::sleep(Duration::from_secs(a.hold)).await;
    let server_held = probe.sample().await;
    let established = latencies.len();
    let mut acks = 0;
    let mut server_after_message = None;
    if a.message_bytes.is_some() {
        let _ = phase_tx.send(Phase::Publish);
        let deadline = Instant::now() + Duration::from_secs(120);
        while acks < established && Instant::now() < deadline {
            match tokio::time::timeout(Duration::from_secs(10), ev_rx.recv()).await {
                Ok(Some(Event::Published)) => acks += 1,
                Ok(Some(Event::Failed(e))) => {
                    failed += 1;
                    first_error.get_or_insert(e);
                }
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => break,
            }
        }
        tokio::time::sleep(Duration::from_secs(a.hold)).await;
        server_after_message = Some(probe.sample().await);
    }
    let _ = phase_tx.send(Phase::Stop);
    for t in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(5), t).await;
    }
    Ok(ConnectionsResult {
        scenario: "connections",
        requested: a.sessions,
        established,
        failed,
        first_error,
        ramp_secs,
        latency: Latency::of(&mut latencies),
        rss_per_session: per_session(&server_before, &server_held, established),
        rss_per_session_after_message: server_after_message
            .as_ref()
            .and_then(|s| per_session(&server_before, s, established)),
        server_before,
        server_held,
        message_bytes: a.message_bytes,
        messages_acknowledged: acks,
        server_after_message,
    })
}
