//! `chat`: N website visitors (visitor-token logins on the chat path) each open a thread,
//! subscribe to it and send durable chat messages through `switchboard.chat.send` — at a total
//! rate, or as fast as W outstanding sends per visitor allow. Reports acknowledged messages
//! per second, the send→acknowledgement latency (the message is durable when acknowledged) and
//! the send→receive latency (the EVENT on the thread topic).

use super::probe::{cpu_between, Probe, Sample};
use super::report::Latency;
use super::wampc::{parse_serializer, source_for, Client, Join};
use super::Common;
use crate::wamp::value::dict_get;
use crate::wamp::{Message, Payload, Value};
use std::collections::HashMap;
use std::time::{Duration, Instant};

#[derive(clap::Args, Debug, Clone)]
pub struct ChatArgs {
    #[command(flatten)]
    pub common: Common,
    /// Visitors (each its own session and thread).
    #[arg(short = 'n', long, default_value_t = 100)]
    pub users: usize,
    /// Total messages per second across all visitors (0: as fast as the outstanding window
    /// allows).
    #[arg(short = 'r', long, default_value_t = 1000)]
    pub rate: u64,
    /// Unacknowledged sends each visitor may have (with --rate 0).
    #[arg(short = 'w', long, default_value_t = 4)]
    pub outstanding: usize,
    /// Characters per message.
    #[arg(short = 'b', long, default_value_t = 100)]
    pub bytes: usize,
    /// Seconds of sending.
    #[arg(short = 't', long, default_value_t = 10)]
    pub duration: u64,
}

#[derive(Debug, serde::Serialize)]
pub struct ChatResult {
    pub scenario: &'static str,
    pub users: usize,
    pub target_rate: u64,
    pub sent: u64,
    pub acknowledged: u64,
    pub received: u64,
    pub errors: u64,
    pub seconds: f64,
    pub acknowledged_per_sec: f64,
    pub ack_latency: Latency,
    pub receive_latency: Latency,
    pub server_cpu_seconds: Option<f64>,
    pub messages_per_server_cpu_second: Option<f64>,
    pub server_before: Sample,
    pub server_after: Sample,
    pub first_error: Option<String>,
}

impl ChatResult {
    pub fn print(&self) {
        println!(
            "chat: {} visitors, target {}: {} sent, {} acknowledged ({:.0}/s), {} received, {} errors in {:.1} s",
            self.users,
            if self.target_rate == 0 { "as fast as possible".to_owned() } else { format!("{}/s", self.target_rate) },
            self.sent,
            self.acknowledged,
            self.acknowledged_per_sec,
            self.received,
            self.errors,
            self.seconds
        );
        println!("  send → durable ack: {}", self.ack_latency.line());
        println!("  send → received:    {}", self.receive_latency.line());
        if let (Some(c), Some(r)) = (self.server_cpu_seconds, self.messages_per_server_cpu_second) {
            println!("  server CPU {c:.2} s → {r:.0} acknowledged messages per server CPU-second");
        }
        if let Some(e) = &self.first_error {
            println!("  first error: {e}");
        }
    }
}

/// One visitor's figures.
#[derive(Default)]
struct Tally {
    sent: u64,
    acked: Vec<u64>,
    received: Vec<u64>,
    errors: u64,
    error: Option<String>,
}

fn call(request: u64, procedure: &str, args: Vec<Value>, kwargs: Vec<(String, Value)>) -> Message {
    Message::Call {
        request,
        options: vec![],
        procedure: procedure.into(),
        payload: Payload {
            args: Some(args),
            kwargs: (!kwargs.is_empty()).then_some(kwargs),
        },
    }
}

async fn visitor(
    url: String,
    realm: String,
    ser: crate::wamp::Serializer,
    i: usize,
    a: ChatArgs,
    start: Instant,
    deadline: Instant,
) -> Tally {
    let mut t = Tally::default();
    let run = async {
        let mut c = Client::connect(&url, ser, source_for(i, 20_000)).await?;
        let token = format!("bench-visitor-{i:06}-{:016x}", rand::random::<u64>());
        c.join(&Join {
            realm,
            authmethod: Some("ticket".into()),
            authid: None,
            secret: Some(token),
        })
        .await?;
        let thread = c.open_chat_thread(1).await?;
        c.subscribe(2, &format!("switchboard.chat.thread.{thread}"))
            .await?;
        let text = "x".repeat(a.bytes.max(1));
        // Sends are spread over the interval so the total rate is even.
        let interval =
            (a.rate > 0).then(|| Duration::from_secs_f64(a.users as f64 / a.rate as f64));
        let mut next_send = start
            + interval
                .map(|d| d.mul_f64(i as f64 / a.users as f64))
                .unwrap_or_default();
        let mut request = 10u64;
        let mut in_flight: HashMap<u64, Instant> = HashMap::new();
        let mut sent_at: HashMap<String, Instant> = HashMap::new();
        loop {
            let now = Instant::now();
            let sending = now < deadline;
            let may_send = sending
                && match interval {
                    Some(_) => now >= next_send,
                    None => in_flight.len() < a.outstanding.max(1),
                };
            if may_send {
                request += 1;
                let client_id = format!("{i}-{request}");
                c.send(&call(
                    request,
                    "switchboard.chat.send",
                    vec![Value::UInt(thread), Value::Str(text.clone())],
                    vec![("client_id".into(), Value::Str(client_id.clone()))],
                ))
                .await?;
                in_flight.insert(request, now);
                sent_at.insert(client_id, now);
                t.sent += 1;
                if let Some(d) = interval {
                    next_send += d;
                }
                continue;
            }
            if !sending && in_flight.is_empty() && sent_at.is_empty() {
                break;
            }
            let wait = match (sending, interval) {
                (true, Some(_)) => next_send.saturating_duration_since(now),
                _ => Duration::from_secs(10),
            };
            let m = match tokio::time::timeout(wait, c.recv()).await {
                Ok(m) => m?,
                Err(_) if sending => continue,
                Err(_) => {
                    return Err(format!(
                        "{} sends unacknowledged, {} messages not received after 10 s",
                        in_flight.len(),
                        sent_at.len()
                    ))
                }
            };
            match m {
                Message::Result { request, .. } => {
                    if let Some(s) = in_flight.remove(&request) {
                        t.acked.push(s.elapsed().as_micros() as u64);
                    }
                }
                Message::Error { request, error, .. } => {
                    if let Some(_s) = in_flight.remove(&request) {
                        t.errors += 1;
                        t.error.get_or_insert(error);
                    }
                }
                Message::Event { payload, .. } => {
                    let id = payload
                        .kwargs
                        .as_ref()
                        .and_then(|k| dict_get(k, "client_id"))
                        .and_then(Value::as_str)
                        .map(str::to_owned);
                    if let Some(s) = id.and_then(|id| sent_at.remove(&id)) {
                        t.received.push(s.elapsed().as_micros() as u64);
                    }
                }
                _ => {}
            }
            // An errored send is never received: stop waiting for it.
            if !sending && in_flight.is_empty() && sent_at.len() as u64 <= t.errors {
                break;
            }
        }
        c.close().await;
        Ok::<_, String>(())
    };
    if let Err(e) = run.await {
        t.error.get_or_insert(e);
        t.errors += 1;
    }
    t
}

pub async fn run(a: ChatArgs) -> Result<ChatResult, String> {
    let ser = parse_serializer(&a.common.serializer)?;
    let probe = Probe::new(a.common.pid, &a.common.url);
    let server_before = probe.sample().await;
    let start = Instant::now() + Duration::from_millis(300 + a.users as u64);
    let deadline = start + Duration::from_secs(a.duration);
    let tasks: Vec<_> = (0..a.users)
        .map(|i| {
            let (url, realm, args) = (a.common.url.clone(), a.common.realm.clone(), a.clone());
            tokio::spawn(visitor(url, realm, ser, i, args, start, deadline))
        })
        .collect();
    let (mut acked, mut received) = (Vec::new(), Vec::new());
    let (mut sent, mut errors, mut first_error) = (0u64, 0u64, None);
    for task in tasks {
        match task.await {
            Ok(t) => {
                sent += t.sent;
                errors += t.errors;
                acked.extend(t.acked);
                received.extend(t.received);
                if let Some(e) = t.error {
                    first_error.get_or_insert(e);
                }
            }
            Err(e) => {
                errors += 1;
                first_error.get_or_insert(e.to_string());
            }
        }
    }
    let seconds = start.elapsed().as_secs_f64().max(0.001);
    let server_after = probe.sample().await;
    let cpu = cpu_between(&server_before, &server_after);
    let acknowledged = acked.len() as u64;
    Ok(ChatResult {
        scenario: "chat",
        users: a.users,
        target_rate: a.rate,
        sent,
        acknowledged,
        received: received.len() as u64,
        errors,
        seconds,
        acknowledged_per_sec: acknowledged as f64 / seconds,
        ack_latency: Latency::of(&mut acked),
        receive_latency: Latency::of(&mut received),
        server_cpu_seconds: cpu,
        messages_per_server_cpu_second: cpu.filter(|c| *c > 0.0).map(|c| acknowledged as f64 / c),
        server_before,
        server_after,
        first_error,
    })
}
