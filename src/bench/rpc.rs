//! `rpc`: callees (one, or several on a shared registration) and C callers keeping W calls
//! outstanding each; calls per second and latency.

use super::probe::{cpu_between, Probe, Sample};
use super::report::Latency;
use super::wampc::{parse_serializer, source_for, Client, Join};
use super::Common;
use crate::wamp::{Message, Payload, Value};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(clap::Args, Debug, Clone)]
pub struct RpcArgs {
    #[command(flatten)]
    pub common: Common,
    /// Callees; more than one share the registration (invoke roundrobin).
    #[arg(short = 'k', long, default_value_t = 1)]
    pub callees: usize,
    /// Calling sessions.
    #[arg(short = 'c', long, default_value_t = 10)]
    pub callers: usize,
    /// Calls each caller keeps outstanding.
    #[arg(short = 'w', long, default_value_t = 10)]
    pub outstanding: usize,
    /// Payload bytes per call (echoed back by the callee).
    #[arg(short = 'b', long, default_value_t = 16)]
    pub bytes: usize,
    /// Seconds of calling.
    #[arg(short = 't', long, default_value_t = 10)]
    pub duration: u64,
}

#[derive(Debug, serde::Serialize)]
pub struct RpcResult {
    pub scenario: &'static str,
    pub callees: usize,
    pub callers: usize,
    pub outstanding: usize,
    pub calls: u64,
    pub errors: u64,
    pub seconds: f64,
    pub calls_per_sec: f64,
    pub latency: Latency,
    pub server_cpu_seconds: Option<f64>,
    pub calls_per_server_cpu_second: Option<f64>,
    /// This load tool's own CPU time over the same span (see `churn`).
    pub load_tool_cpu_seconds: Option<f64>,
    pub server_before: Sample,
    pub server_after: Sample,
    pub first_error: Option<String>,
}

impl RpcResult {
    pub fn print(&self) {
        println!(
            "rpc: {} callees, {} callers × {} outstanding: {} calls in {:.1} s ({:.0}/s), {} errors",
            self.callees, self.callers, self.outstanding, self.calls, self.seconds, self.calls_per_sec, self.errors
        );
        println!("  call latency: {}", self.latency.line());
        if let (Some(c), Some(r)) = (self.server_cpu_seconds, self.calls_per_server_cpu_second) {
            println!("  server CPU {c:.2} s → {r:.0} calls per server CPU-second");
        }
        if let Some(c) = self.load_tool_cpu_seconds {
            println!("  load tool CPU {c:.2} s");
        }
        if let Some(e) = &self.first_error {
            println!("  first error: {e}");
        }
    }
}

const PROCEDURE: &str = "bench.rpc.echo";

async fn callee(
    url: &str,
    realm: &Join,
    ser: crate::wamp::Serializer,
    i: usize,
    ready: tokio::sync::oneshot::Sender<Result<(), String>>,
    stop: Arc<AtomicBool>,
) {
    let setup = async {
        let mut c = Client::connect_batching(url, ser, source_for(i, 20_000)).await?;
        c.join(realm).await?;
        c.register(1, PROCEDURE, "roundrobin").await?;
        Ok::<_, String>(c)
    }
    .await;
    let mut c = match setup {
        Ok(c) => {
            let _ = ready.send(Ok(()));
            c
        }
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    'serve: while !stop.load(Ordering::Relaxed) {
        let m = tokio::select! {
            m = c.recv() => m,
            _ = tokio::time::sleep(Duration::from_millis(200)) => continue,
        };
        // Answer every invocation that is already here, then write the answers at once.
        let mut next = Some(m);
        while let Some(m) = next.take() {
            match m {
                Ok(Message::Invocation {
                    request, payload, ..
                }) => {
                    let answer = Message::Yield {
                        request,
                        options: vec![],
                        payload,
                    };
                    if c.feed(&answer).await.is_err() {
                        break 'serve;
                    }
                }
                Ok(_) => {}
                Err(_) => break 'serve,
            }
            next = c.try_recv();
        }
        if c.flush().await.is_err() {
            break;
        }
    }
    c.close().await;
}

async fn caller(
    url: &str,
    realm: &Join,
    ser: crate::wamp::Serializer,
    i: usize,
    outstanding: usize,
    bytes: usize,
    deadline: Instant,
) -> Result<(Vec<u64>, u64), (Vec<u64>, u64, String)> {
    let mut lat = Vec::new();
    let mut errors = 0u64;
    let mut c = match Client::connect_batching(url, ser, source_for(i, 20_000)).await {
        Ok(c) => c,
        Err(e) => return Err((lat, errors, e)),
    };
    if let Err(e) = c.join(realm).await {
        return Err((lat, errors, e));
    }
    let payload = Payload::args(vec![Value::Str("x".repeat(bytes))]);
    let mut in_flight: HashMap<u64, Instant> = HashMap::new();
    let mut next = 0u64;
    let call = |request: u64| Message::Call {
        request,
        options: vec![],
        procedure: PROCEDURE.into(),
        payload: payload.clone(),
    };
    for _ in 0..outstanding {
        next += 1;
        in_flight.insert(next, Instant::now());
        if let Err(e) = c.feed(&call(next)).await {
            return Err((lat, errors, e));
        }
    }
    if let Err(e) = c.flush().await {
        return Err((lat, errors, e));
    }
    while !in_flight.is_empty() {
        let first = match tokio::time::timeout(Duration::from_secs(10), c.recv()).await {
            Ok(m) => m,
            Err(_) => {
                return Err((
                    lat,
                    errors,
                    format!("{} calls unanswered for 10 s", in_flight.len()),
                ))
            }
        };
        // Every answer that is already here makes room for a new call; the new calls go out
        // in one write.
        let mut arrived = Some(first);
        while let Some(m) = arrived.take() {
            let request = match m {
                Ok(Message::Result { request, .. }) => Some(request),
                Ok(Message::Error { request, .. }) => {
                    errors += 1;
                    Some(request)
                }
                Ok(_) => None,
                Err(e) => return Err((lat, errors, e)),
            };
            if let Some(t) = request.and_then(|r| in_flight.remove(&r)) {
                lat.push(t.elapsed().as_micros() as u64);
                if Instant::now() < deadline {
                    next += 1;
                    in_flight.insert(next, Instant::now());
                    if let Err(e) = c.feed(&call(next)).await {
                        return Err((lat, errors, e));
                    }
                }
            }
            arrived = c.try_recv();
        }
        if let Err(e) = c.flush().await {
            return Err((lat, errors, e));
        }
    }
    c.close().await;
    Ok((lat, errors))
}

pub async fn run(a: RpcArgs) -> Result<RpcResult, String> {
    let ser = parse_serializer(&a.common.serializer)?;
    let probe = Probe::new(a.common.pid, &a.common.url);
    let stop = Arc::new(AtomicBool::new(false));
    let mut callee_tasks = Vec::new();
    for i in 0..a.callees.max(1) {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let (url, realm, stop) = (a.common.url.clone(), a.common.join_spec(), stop.clone());
        callee_tasks.push(tokio::spawn(async move {
            callee(&url, &realm, ser, i, tx, stop).await
        }));
        rx.await.map_err(|_| "callee task ended".to_string())??;
    }
    let server_before = probe.sample().await;
    let tool_cpu_start = crate::procfs::cpu_seconds(std::process::id());
    let started = Instant::now();
    let deadline = started + Duration::from_secs(a.duration);
    let mut callers = Vec::new();
    for i in 0..a.callers {
        let (url, realm) = (a.common.url.clone(), a.common.join_spec());
        let (w, b) = (a.outstanding, a.bytes);
        callers.push(tokio::spawn(async move {
            caller(&url, &realm, ser, a.callees + i, w, b, deadline).await
        }));
    }
    let mut lat = Vec::new();
    let mut errors = 0;
    let mut first_error = None;
    for c in callers {
        match c.await {
            Ok(Ok((l, e))) => {
                lat.extend(l);
                errors += e;
            }
            Ok(Err((l, e, msg))) => {
                lat.extend(l);
                errors += e;
                first_error.get_or_insert(msg);
            }
            Err(e) => {
                first_error.get_or_insert(e.to_string());
            }
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    let server_after = probe.sample().await;
    let load_tool_cpu_seconds = crate::procfs::cpu_seconds(std::process::id())
        .zip(tool_cpu_start)
        .map(|(end, start)| end - start);
    stop.store(true, Ordering::Relaxed);
    for t in callee_tasks {
        let _ = tokio::time::timeout(Duration::from_secs(2), t).await;
    }
    let calls = lat.len() as u64;
    let cpu = cpu_between(&server_before, &server_after);
    Ok(RpcResult {
        scenario: "rpc",
        callees: a.callees.max(1),
        callers: a.callers,
        outstanding: a.outstanding,
        calls,
        errors,
        seconds,
        calls_per_sec: calls as f64 / seconds,
        latency: Latency::of(&mut lat),
        server_cpu_seconds: cpu,
        calls_per_server_cpu_second: cpu.filter(|c| *c > 0.0).map(|c| calls as f64 / c),
        load_tool_cpu_seconds,
        server_before,
        server_after,
        first_error,
    })
}
