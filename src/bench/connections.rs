//! `connections`: many idle subscribed sessions, and what they cost the server.

use super::probe::{Probe, Sample};
use super::report::{fmt_bytes, Latency};
use super::wampc::{parse_serializer, source_for, Client};
use super::Common;
use crate::wamp::value::dict;
use crate::wamp::{Message, Payload, Value};
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
    /// Connections per process; more sessions are spread over worker processes
    /// (default: what this process's open-file limit allows).
    #[arg(long)]
    pub per_process: Option<usize>,
    /// Each session is a chat visitor (on the chat path, e.g. `--url ws://HOST/chat`): it logs
    /// in with its own visitor token, opens its thread and subscribes to it — what an idle
    /// website visitor with the widget open costs.
    #[arg(long)]
    pub chat: bool,
    /// Internal: run as a worker process for sessions starting at this index.
    #[arg(long, hide = true)]
    pub worker_slice: Option<usize>,
    /// The program to start as worker processes (default: this one).
    #[arg(long, hide = true)]
    pub worker_exe: Option<std::path::PathBuf>,
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
    /// Client processes that held the sessions (more than one past the open-file limit).
    pub processes: usize,
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
    if a.chat {
        let token = format!("bench-idle-visitor-{i:08}-{:08x}", rand::random::<u32>());
        c.join(&crate::bench::wampc::Join {
            realm: a.common.realm.clone(),
            authmethod: Some("ticket".into()),
            authid: None,
            secret: Some(token),
        })
        .await?;
        let thread = c.open_chat_thread(2).await?;
        c.subscribe(1, &format!("switchboard.chat.thread.{thread}"))
            .await?;
    } else {
        c.join(&a.common.join_spec()).await?;
        c.subscribe(1, &format!("bench.conn.t{i}")).await?;
    }
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
            m = c.recv() => if let Err(e) = m {
                return Err(format!("connection lost while holding: {e}"));
            },
            r = phase.changed() => if r.is_err() { break },
        }
    }
    c.close().await;
    Ok(())
}

/// What a ramp of sessions produced.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct Ramp {
    latencies: Vec<u64>,
    failed: usize,
    first_error: Option<String>,
}

/// Outcome of the publish phase.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct Publishing {
    acks: usize,
    failed: usize,
    first_error: Option<String>,
}

/// Sessions held by this process.
struct LocalFleet {
    phase: watch::Sender<Phase>,
    events: mpsc::UnboundedReceiver<Event>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl LocalFleet {
    /// Opens sessions `start .. start + count` at the configured rate.
    async fn ramp(
        a: &ConnectionsArgs,
        start: usize,
        count: usize,
        show_progress: bool,
    ) -> (LocalFleet, Ramp) {
        let (phase_tx, phase_rx) = watch::channel(Phase::Hold);
        let (ev_tx, mut ev_rx) = mpsc::unbounded_channel();
        let interval = Duration::from_secs_f64(1.0 / f64::from(a.rate.max(1)));
        let spawner = {
            let a = a.clone();
            tokio::spawn(async move {
                let mut tasks = Vec::with_capacity(count);
                let mut tick = tokio::time::interval(interval);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
                for i in start..start + count {
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
        let mut ramp = Ramp::default();
        let progress = show_progress.then(|| super::Progress::new("sessions", count as u64));
        while ramp.latencies.len() + ramp.failed < count {
            match ev_rx.recv().await {
                Some(Event::Joined(d)) => ramp.latencies.push(d.as_micros() as u64),
                Some(Event::Failed(e)) => {
                    ramp.failed += 1;
                    ramp.first_error.get_or_insert(e);
                }
                Some(Event::Published) => {}
                None => break,
            }
            if let Some(p) = &progress {
                p.set(
                    (ramp.latencies.len() + ramp.failed) as u64,
                    &format!("{} up, {} failed", ramp.latencies.len(), ramp.failed),
                );
            }
        }
        if let Some(p) = &progress {
            p.finish();
        }
        let tasks = spawner.await.unwrap_or_default();
        (
            LocalFleet {
                phase: phase_tx,
                events: ev_rx,
                tasks,
            },
            ramp,
        )
    }

    /// Every session publishes its one message; waits for the acknowledgements.
    async fn publish(&mut self, expected: usize) -> Publishing {
        let _ = self.phase.send(Phase::Publish);
        let mut out = Publishing::default();
        let deadline = Instant::now() + Duration::from_secs(120);
        while out.acks + out.failed < expected && Instant::now() < deadline {
            match tokio::time::timeout(Duration::from_secs(10), self.events.recv()).await {
                Ok(Some(Event::Published)) => out.acks += 1,
                Ok(Some(Event::Failed(e))) => {
                    out.failed += 1;
                    out.first_error.get_or_insert(e);
                }
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => break,
            }
        }
        out
    }

    async fn stop(self) {
        let _ = self.phase.send(Phase::Stop);
        for t in self.tasks {
            let _ = tokio::time::timeout(Duration::from_secs(5), t).await;
        }
    }
}

/// Worker-process mode: ramp a slice, report, then obey `publish` / `stop` lines on stdin.
pub async fn worker(a: ConnectionsArgs, start: usize) -> Result<(), String> {
    use tokio::io::AsyncBufReadExt;
    let (mut fleet, ramp) = LocalFleet::ramp(&a, start, a.sessions, false).await;
    let established = ramp.latencies.len();
    println!(
        "READY {}",
        serde_json::to_string(&ramp).map_err(|e| e.to_string())?
    );
    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        match line.trim() {
            "publish" => {
                let p = fleet.publish(established).await;
                println!(
                    "PUBLISHED {}",
                    serde_json::to_string(&p).map_err(|e| e.to_string())?
                );
            }
            _ => break,
        }
    }
    fleet.stop().await;
    Ok(())
}

/// Sessions spread over worker processes (this binary, `--worker-slice`).
struct ProcessFleet {
    children: Vec<(
        tokio::process::Child,
        tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>,
    )>,
}

impl ProcessFleet {
    async fn ramp(a: &ConnectionsArgs, per_process: usize) -> Result<(ProcessFleet, Ramp), String> {
        use tokio::io::AsyncBufReadExt;
        let exe = match &a.worker_exe {
            Some(p) => p.clone(),
            None => {
                std::env::current_exe().map_err(|e| format!("cannot find this program: {e}"))?
            }
        };
        let k = a.sessions.div_ceil(per_process);
        eprintln!(
            "switchboard bench: {} sessions over {k} worker processes ({per_process} each at most)",
            a.sessions
        );
        let mut children = Vec::new();
        let mut start = 0;
        for w in 0..k {
            let count = per_process.min(a.sessions - start);
            let mut cmd = tokio::process::Command::new(&exe);
            cmd.args([
                "bench",
                "connections",
                "--url",
                &a.common.url,
                "--realm",
                &a.common.realm,
                "--serializer",
                &a.common.serializer,
            ])
            .args([
                "-n",
                &count.to_string(),
                "--rate",
                &(a.rate / k as u32).max(1).to_string(),
            ])
            .args([
                "--per-source",
                &a.per_source.to_string(),
                "--worker-slice",
                &start.to_string(),
            ])
            .args(["--max-secs", &a.common.max_secs.to_string()])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true);
            if let Some(b) = a.message_bytes {
                cmd.args(["--message-bytes", &b.to_string()]);
            }
            if let (Some(m), Some(id)) = (&a.common.authmethod, &a.common.authid) {
                cmd.args(["--authmethod", m, "--authid", id]);
            }
            // The secret goes through the environment, never the command line.
            if let Some(secret) = &a.common.secret {
                cmd.env("SWITCHBOARD_BENCH_SECRET", secret);
            }
            let mut child = cmd
                .spawn()
                .map_err(|e| format!("cannot start worker {w}: {e}"))?;
            let stdout = child.stdout.take().ok_or("worker has no stdout")?;
            children.push((child, tokio::io::BufReader::new(stdout).lines()));
            start += count;
        }
        let mut ramp = Ramp::default();
        for (_, lines) in children.iter_mut() {
            let r: Ramp = read_report(lines, "READY").await?;
            ramp.latencies.extend(r.latencies);
            ramp.failed += r.failed;
            if let Some(e) = r.first_error {
                ramp.first_error.get_or_insert(e);
            }
        }
        Ok((ProcessFleet { children }, ramp))
    }

    async fn publish(&mut self) -> Result<Publishing, String> {
        use tokio::io::AsyncWriteExt;
        for (child, _) in self.children.iter_mut() {
            if let Some(stdin) = child.stdin.as_mut() {
                stdin
                    .write_all(b"publish\n")
                    .await
                    .map_err(|e| e.to_string())?;
            }
        }
        let mut out = Publishing::default();
        for (_, lines) in self.children.iter_mut() {
            let p: Publishing = read_report(lines, "PUBLISHED").await?;
            out.acks += p.acks;
            out.failed += p.failed;
            if let Some(e) = p.first_error {
                out.first_error.get_or_insert(e);
            }
        }
        Ok(out)
    }

    async fn stop(self) {
        for (mut child, _) in self.children {
            drop(child.stdin.take());
            let _ = tokio::time::timeout(Duration::from_secs(15), child.wait()).await;
        }
    }
}

async fn read_report<T: serde::de::DeserializeOwned>(
    lines: &mut tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>,
    tag: &str,
) -> Result<T, String> {
    loop {
        match lines.next_line().await {
            Ok(Some(line)) => {
                if let Some(json) = line.strip_prefix(tag).map(str::trim) {
                    return serde_json::from_str(json)
                        .map_err(|e| format!("bad worker report: {e}"));
                }
            }
            Ok(None) => return Err(format!("a worker process ended before reporting {tag}")),
            Err(e) => return Err(e.to_string()),
        }
    }
}

enum Fleet {
    Local(LocalFleet),
    Processes(ProcessFleet),
}

/// How many connections one process can hold: its open-file limit less some headroom.
fn per_process_capacity() -> usize {
    match rlimit::getrlimit(rlimit::Resource::NOFILE) {
        Ok((soft, _)) => (soft as usize).saturating_sub(200).max(100),
        Err(_) => 1000,
    }
}

pub async fn run(a: ConnectionsArgs) -> Result<ConnectionsResult, String> {
    parse_serializer(&a.common.serializer)?;
    let probe = Probe::new(a.common.pid, &a.common.url);
    let server_before = probe.sample().await;
    let started = Instant::now();
    let per_process = a.per_process.unwrap_or_else(per_process_capacity).max(1);
    let (mut fleet, mut ramp) = if a.sessions > per_process {
        let (f, r) = ProcessFleet::ramp(&a, per_process).await?;
        (Fleet::Processes(f), r)
    } else {
        let (f, r) = LocalFleet::ramp(&a, 0, a.sessions, true).await;
        (Fleet::Local(f), r)
    };
    let ramp_secs = started.elapsed().as_secs_f64();
    let processes = match &fleet {
        Fleet::Local(_) => 1,
        Fleet::Processes(f) => f.children.len(),
    };
    tokio::time::sleep(Duration::from_secs(a.hold)).await;
    let server_held = probe.sample().await;
    let established = ramp.latencies.len();
    let mut publishing = Publishing::default();
    let mut server_after_message = None;
    if a.message_bytes.is_some() {
        publishing = match &mut fleet {
            Fleet::Local(f) => f.publish(established).await,
            Fleet::Processes(f) => f.publish().await?,
        };
        tokio::time::sleep(Duration::from_secs(a.hold)).await;
        server_after_message = Some(probe.sample().await);
    }
    match fleet {
        Fleet::Local(f) => f.stop().await,
        Fleet::Processes(f) => f.stop().await,
    }
    let first_error = ramp.first_error.take().or(publishing.first_error.take());
    Ok(ConnectionsResult {
        scenario: "connections",
        requested: a.sessions,
        processes,
        established,
        failed: ramp.failed + publishing.failed,
        first_error,
        ramp_secs,
        latency: Latency::of(&mut ramp.latencies),
        rss_per_session: per_session(&server_before, &server_held, established),
        rss_per_session_after_message: server_after_message
            .as_ref()
            .and_then(|s| per_session(&server_before, s, established)),
        server_before,
        server_held,
        message_bytes: a.message_bytes,
        messages_acknowledged: publishing.acks,
        server_after_message,
    })
}
