//! `churn`: connect, subscribe + publish (acknowledged; pipelined), disconnect (the WebSocket
//! closing handshake, the router ending TCP) — in a loop,
//! from several workers at once; cycles per second and whether the server's memory grows (a leak check).

use super::probe::{cpu_between, Probe, Sample};
use super::report::{fmt_bytes, Latency};
use super::wampc::{parse_serializer, source_for, Client, Join};
use super::Common;
use crate::wamp::value::dict;
use crate::wamp::{Message, Payload, Value};
use std::time::{Duration, Instant};

#[derive(clap::Args, Debug, Clone)]
pub struct ChurnArgs {
    #[command(flatten)]
    pub common: Common,
    /// Concurrent workers, each running cycles back to back.
    #[arg(short = 'c', long, default_value_t = 32)]
    pub concurrency: usize,
    /// Seconds of churning (the first third is warm-up for the memory check).
    #[arg(short = 't', long, default_value_t = 9)]
    pub duration: u64,
}

#[derive(Debug, serde::Serialize)]
pub struct ChurnResult {
    pub scenario: &'static str,
    pub concurrency: usize,
    pub cycles: u64,
    pub failed: u64,
    pub seconds: f64,
    pub cycles_per_sec: f64,
    pub cycle_latency: Latency,
    pub server_after_warmup: Sample,
    pub server_end: Sample,
    pub rss_growth_after_warmup: Option<i64>,
    /// The server's CPU time over the whole run (from its /proc or `/api/status`).
    pub server_cpu_seconds: Option<f64>,
    pub cycles_per_server_cpu_second: Option<f64>,
    /// This load tool's own CPU time: near `seconds` × cores means the tool, not the server,
    /// set the pace.
    pub load_tool_cpu_seconds: Option<f64>,
    pub first_error: Option<String>,
}

impl ChurnResult {
    pub fn print(&self) {
        println!(
            "churn: {} workers, {} cycles in {:.1} s ({:.0}/s), {} failed",
            self.concurrency, self.cycles, self.seconds, self.cycles_per_sec, self.failed
        );
        println!("  cycle latency: {}", self.cycle_latency.line());
        if let Some(g) = self.rss_growth_after_warmup {
            println!("  server RSS growth after warm-up: {}", fmt_bytes(g as f64));
        }
        if let (Some(c), Some(r)) = (self.server_cpu_seconds, self.cycles_per_server_cpu_second) {
            println!("  server CPU {c:.2} s → {r:.0} cycles per server CPU-second");
        }
        if let Some(c) = self.load_tool_cpu_seconds {
            println!("  load tool CPU {c:.2} s");
        }
        if let Some(e) = &self.first_error {
            println!("  first error: {e}");
        }
    }
}

async fn cycle(
    url: &str,
    realm: &Join,
    ser: crate::wamp::Serializer,
    n: usize,
) -> Result<(), String> {
    let mut c = Client::connect_batching(url, ser, source_for(n % 200_000, 20_000)).await?;
    c.join(realm).await?;
    // SUBSCRIBE and the acknowledged PUBLISH go out in one write, as from a client that does
    // both when it joins.
    c.feed(&Message::Subscribe {
        request: 1,
        options: vec![],
        topic: "bench.churn".into(),
    })
    .await?;
    c.send(&Message::Publish {
        request: 2,
        options: dict([("acknowledge", Value::Bool(true))]),
        topic: "bench.churn.x".into(),
        payload: Payload::args(vec![Value::UInt(n as u64)]),
    })
    .await?;
    let (mut subscribed, mut published) = (false, false);
    while !(subscribed && published) {
        match c.recv().await? {
            Message::Subscribed { request: 1, .. } => subscribed = true,
            Message::Published { request: 2, .. } => published = true,
            Message::Event { .. } => {}
            other => {
                return Err(format!(
                    "expected SUBSCRIBED and PUBLISHED, got {}",
                    other.name()
                ))
            }
        }
    }
    c.close().await;
    Ok(())
}

pub async fn run(a: ChurnArgs) -> Result<ChurnResult, String> {
    let ser = parse_serializer(&a.common.serializer)?;
    let probe = Probe::new(a.common.pid, &a.common.url);
    let server_start = probe.sample().await;
    let tool_cpu_start = crate::procfs::cpu_seconds(std::process::id());
    let started = Instant::now();
    let warmup = started + Duration::from_secs_f64(a.duration as f64 / 3.0);
    let deadline = started + Duration::from_secs(a.duration);
    let mut workers = Vec::new();
    for w in 0..a.concurrency {
        let (url, realm) = (a.common.url.clone(), a.common.join_spec());
        let stride = a.concurrency;
        workers.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut failed = 0u64;
            let mut first_error = None;
            let mut n = w;
            while Instant::now() < deadline {
                let t = Instant::now();
                match tokio::time::timeout(Duration::from_secs(10), cycle(&url, &realm, ser, n))
                    .await
                {
                    Ok(Ok(())) => lat.push(t.elapsed().as_micros() as u64),
                    Ok(Err(e)) => {
                        failed += 1;
                        first_error.get_or_insert(e);
                    }
                    Err(_) => {
                        failed += 1;
                        first_error.get_or_insert("cycle took more than 10 s".to_string());
                    }
                }
                n += stride;
            }
            (lat, failed, first_error)
        }));
    }
    tokio::time::sleep_until(warmup.into()).await;
    let server_after_warmup = probe.sample().await;
    let mut lat = Vec::new();
    let mut failed = 0;
    let mut first_error = None;
    for w in workers {
        if let Ok((l, f, e)) = w.await {
            lat.extend(l);
            failed += f;
            if let Some(e) = e {
                first_error.get_or_insert(e);
            }
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    // Give the server a moment to finish closing the last connections before measuring.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let server_end = probe.sample().await;
    let cycles = lat.len() as u64;
    let server_cpu = cpu_between(&server_start, &server_end);
    let load_tool_cpu_seconds = crate::procfs::cpu_seconds(std::process::id())
        .zip(tool_cpu_start)
        .map(|(end, start)| end - start);
    Ok(ChurnResult {
        scenario: "churn",
        concurrency: a.concurrency,
        cycles,
        failed,
        seconds,
        cycles_per_sec: cycles as f64 / seconds,
        cycle_latency: Latency::of(&mut lat),
        rss_growth_after_warmup: match (server_after_warmup.rss_bytes, server_end.rss_bytes) {
            (Some(a), Some(b)) => Some(b as i64 - a as i64),
            _ => None,
        },
        server_after_warmup,
        server_end,
        server_cpu_seconds: server_cpu,
        cycles_per_server_cpu_second: server_cpu.filter(|c| *c > 0.0).map(|c| cycles as f64 / c),
        load_tool_cpu_seconds,
        first_error,
    })
}
