//! `fanout`: S subscribers on one topic, P publishers at a total rate; events carry their send
//! time, so delivery latency, throughput and loss are measured end to end.

use super::probe::{cpu_between, Probe, Sample};
use super::report::{now_us, Latency};
use super::wampc::{parse_serializer, source_for, Client, Join};
use super::Common;
use crate::wamp::value::dict;
use crate::wamp::{Message, Payload, Value};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(clap::Args, Debug, Clone)]
pub struct FanoutArgs {
    #[command(flatten)]
    pub common: Common,
    /// Subscribers on the topic.
    #[arg(short = 's', long, default_value_t = 1000)]
    pub subscribers: usize,
    /// Publishing sessions.
    #[arg(short = 'p', long, default_value_t = 1)]
    pub publishers: usize,
    /// Publications per second in total (0: as fast as acknowledgements allow).
    #[arg(short = 'r', long, default_value_t = 100)]
    pub rate: u64,
    /// Payload bytes per event (a padding string next to the timestamp and sequence number).
    #[arg(short = 'b', long, default_value_t = 100)]
    pub bytes: usize,
    /// Seconds of publishing.
    #[arg(short = 't', long, default_value_t = 10)]
    pub duration: u64,
}

#[derive(Debug, serde::Serialize)]
pub struct FanoutResult {
    pub scenario: &'static str,
    pub subscribers: usize,
    pub subscribers_established: usize,
    pub subscribers_cut_off: usize,
    pub publishers: usize,
    pub published: u64,
    pub expected_deliveries: u64,
    pub delivered: u64,
    pub lost: u64,
    pub seconds: f64,
    pub publications_per_sec: f64,
    pub events_per_sec: f64,
    pub latency: Latency,
    pub server_cpu_seconds: Option<f64>,
    pub events_per_server_cpu_second: Option<f64>,
    pub server_before: Sample,
    pub server_after: Sample,
    pub first_error: Option<String>,
}

impl FanoutResult {
    pub fn print(&self) {
        println!(
            "fanout: {} subscribers ({} up, {} cut off), {} publishers, {} publications in {:.1} s ({:.0}/s)",
            self.subscribers, self.subscribers_established, self.subscribers_cut_off, self.publishers, self.published, self.seconds, self.publications_per_sec
        );
        println!(
            "  delivered {} of {} events ({:.0}/s), lost {}",
            self.delivered, self.expected_deliveries, self.events_per_sec, self.lost
        );
        println!("  delivery latency: {}", self.latency.line());
        if let (Some(c), Some(e)) = (self.server_cpu_seconds, self.events_per_server_cpu_second) {
            println!("  server CPU {c:.2} s → {e:.0} events per server CPU-second");
        }
        if let Some(e) = &self.first_error {
            println!("  first error: {e}");
        }
    }
}

const TOPIC: &str = "bench.fanout";

pub async fn run(a: FanoutArgs) -> Result<FanoutResult, String> {
    let ser = parse_serializer(&a.common.serializer)?;
    let probe = Probe::new(a.common.pid, &a.common.url);
    let stop = Arc::new(AtomicBool::new(false));
    let delivered = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(parking_lot::Mutex::new(None::<String>));
    let cut_off = Arc::new(AtomicU64::new(0));

    // Subscribers first; each reports when it is subscribed.
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::unbounded_channel::<bool>();
    let mut subs = Vec::with_capacity(a.subscribers);
    for i in 0..a.subscribers {
        let (url, realm) = (a.common.url.clone(), a.common.join_spec());
        let (stop, delivered, errors, cut_off, ready) = (
            stop.clone(),
            delivered.clone(),
            errors.clone(),
            cut_off.clone(),
            ready_tx.clone(),
        );
        subs.push(tokio::spawn(async move {
            let mut lat: Vec<u64> = Vec::new();
            let mut c = match async {
                let mut c = Client::connect(&url, ser, source_for(i, 20_000)).await?;
                c.join(&realm).await?;
                c.subscribe(1, TOPIC).await?;
                Ok::<_, String>(c)
            }
            .await
            {
                Ok(c) => c,
                Err(e) => {
                    errors.lock().get_or_insert(e);
                    let _ = ready.send(false);
                    return lat;
                }
            };
            let _ = ready.send(true);
            loop {
                let m = tokio::select! {
                    m = c.recv() => m,
                    _ = wait_flag(&stop) => break,
                };
                match m {
                    Ok(Message::Event { payload, .. }) => {
                        if let Some(ts) = payload
                            .args
                            .as_ref()
                            .and_then(|a| a.first())
                            .and_then(Value::as_u64)
                        {
                            lat.push(now_us().saturating_sub(ts));
                        }
                        delivered.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(_) => {}
                    Err(e) => {
                        if !stop.load(Ordering::Relaxed) {
                            cut_off.fetch_add(1, Ordering::Relaxed);
                            errors.lock().get_or_insert(format!("subscriber: {e}"));
                        }
                        break;
                    }
                }
            }
            c.close().await;
            lat
        }));
    }
    drop(ready_tx);
    let mut up = 0;
    let progress = super::Progress::new("subscribers", a.subscribers as u64);
    for n in 0..a.subscribers {
        match ready_rx.recv().await {
            Some(ok) => up += usize::from(ok),
            None => break,
        }
        progress.set(n as u64 + 1, &format!("{up} subscribed"));
    }
    progress.finish();

    let server_before = probe.sample().await;
    let started = Instant::now();
    let deadline = started + Duration::from_secs(a.duration);
    let per_pub_rate = a.rate as f64 / a.publishers.max(1) as f64;
    let mut pubs = Vec::new();
    for i in 0..a.publishers {
        let (url, realm, errors) = (a.common.url.clone(), a.common.join_spec(), errors.clone());
        let pad = "x".repeat(a.bytes.saturating_sub(24));
        pubs.push(tokio::spawn(async move {
            let r = publisher(&url, &realm, ser, i, per_pub_rate, &pad, deadline).await;
            match r {
                Ok(n) => n,
                Err((n, e)) => {
                    errors.lock().get_or_insert(format!("publisher: {e}"));
                    n
                }
            }
        }));
    }
    let mut published = 0;
    for p in pubs {
        published += p.await.unwrap_or(0);
    }
    let seconds = started.elapsed().as_secs_f64();
    // Let in-flight events arrive: stop when all are in, or nothing moved for 2 s (20 s at most).
    let expected = published * up as u64;
    let mut last = delivered.load(Ordering::Relaxed);
    let mut last_change = Instant::now();
    let drain_deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < drain_deadline && last_change.elapsed() < Duration::from_secs(2) {
        let now = delivered.load(Ordering::Relaxed);
        if now >= expected {
            break;
        }
        if now != last {
            last = now;
            last_change = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Throughput counts until the last delivery, not just the publishing window.
    let delivery_secs = last_change
        .duration_since(started)
        .as_secs_f64()
        .max(seconds);
    let server_after = probe.sample().await;
    stop.store(true, Ordering::Relaxed);
    let mut lat = Vec::new();
    for s in subs {
        if let Ok(l) = s.await {
            lat.extend(l);
        }
    }
    let delivered = delivered.load(Ordering::Relaxed);
    let cpu = cpu_between(&server_before, &server_after);
    let first_error = errors.lock().take();
    Ok(FanoutResult {
        scenario: "fanout",
        subscribers: a.subscribers,
        subscribers_established: up,
        subscribers_cut_off: cut_off.load(Ordering::Relaxed) as usize,
        publishers: a.publishers,
        published,
        expected_deliveries: expected,
        delivered,
        lost: expected.saturating_sub(delivered),
        seconds,
        publications_per_sec: published as f64 / seconds,
        events_per_sec: delivered as f64 / delivery_secs,
        latency: Latency::of(&mut lat),
        server_cpu_seconds: cpu,
        events_per_server_cpu_second: cpu.filter(|c| *c > 0.0).map(|c| delivered as f64 / c),
        server_before,
        server_after,
        first_error,
    })
}

async fn wait_flag(flag: &AtomicBool) {
    while !flag.load(Ordering::Relaxed) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Publishes until the deadline; returns how many were published.
async fn publisher(
    url: &str,
    realm: &Join,
    ser: crate::wamp::Serializer,
    i: usize,
    rate: f64,
    pad: &str,
    deadline: Instant,
) -> Result<u64, (u64, String)> {
    let mut c = Client::connect(url, ser, source_for(i, 20_000))
        .await
        .map_err(|e| (0, e))?;
    c.join(realm).await.map_err(|e| (0, e))?;
    let mut seq = 0u64;
    let mut request = 0u64;
    let publish = |seq: u64, request: u64, ack: bool| Message::Publish {
        request,
        options: if ack {
            dict([("acknowledge", Value::Bool(true))])
        } else {
            vec![]
        },
        topic: TOPIC.into(),
        payload: Payload::args(vec![
            Value::UInt(now_us()),
            Value::UInt(seq),
            Value::Str(pad.to_owned()),
        ]),
    };
    if rate <= 0.0 {
        // Closed loop: batches of 100, the last acknowledged, so the router sets the pace.
        while Instant::now() < deadline {
            for k in 0..100 {
                request += 1;
                seq += 1;
                c.feed(&publish(seq, request, k == 99))
                    .await
                    .map_err(|e| (seq, e))?;
            }
            c.flush().await.map_err(|e| (seq, e))?;
            loop {
                match c.recv().await.map_err(|e| (seq, e))? {
                    Message::Published { .. } => break,
                    Message::Error { error, .. } => {
                        return Err((seq, format!("publish refused: {error}")))
                    }
                    _ => {}
                }
            }
        }
        return Ok(seq);
    }
    let start = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    while Instant::now() < deadline {
        tick.tick().await;
        let due = (start.elapsed().as_secs_f64() * rate) as u64;
        if due <= seq {
            continue;
        }
        while seq < due {
            request += 1;
            seq += 1;
            c.feed(&publish(seq, request, false))
                .await
                .map_err(|e| (seq, e))?;
        }
        c.flush().await.map_err(|e| (seq, e))?;
    }
    c.close().await;
    Ok(seq)
}
