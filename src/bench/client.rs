//! The `connections` scenario: many idle subscribed sessions, and what they cost the server.

use super::report::{fmt_bytes, fmt_us, percentile};
use super::{rss_bytes, ConnectionsArgs};
use crate::wamp::value::dict;
use crate::wamp::{Message, Payload, Serializer, Value};
use futures_util::{SinkExt, StreamExt};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message as WsMessage;

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

fn parse_serializer(name: &str) -> Result<Serializer, String> {
    match name {
        "json" => Ok(Serializer::Json),
        "msgpack" => Ok(Serializer::MsgPack),
        "cbor" => Ok(Serializer::Cbor),
        other => Err(format!(
            "unknown serializer '{other}' (json, msgpack, cbor)"
        )),
    }
}

fn ws_message(ser: Serializer, m: &Message) -> Result<WsMessage, String> {
    let bytes = ser.encode(m).map_err(|e| e.to_string())?;
    Ok(if ser.is_text() {
        WsMessage::Text(String::from_utf8(bytes).map_err(|e| e.to_string())?.into())
    } else {
        WsMessage::Binary(bytes.into())
    })
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Reads until a WAMP message arrives (answering pings on the way).
async fn next_message(ws: &mut Ws, ser: Serializer) -> Result<Message, String> {
    loop {
        match ws.next().await {
            None => return Err("connection closed".into()),
            Some(Err(e)) => return Err(e.to_string()),
            Some(Ok(WsMessage::Text(t))) => {
                return ser.decode(t.as_bytes()).map_err(|e| e.to_string())
            }
            Some(Ok(WsMessage::Binary(b))) => return ser.decode(&b).map_err(|e| e.to_string()),
            Some(Ok(WsMessage::Close(c))) => return Err(format!("closed by the router: {c:?}")),
            Some(Ok(_)) => continue,
        }
    }
}

async fn one_session(
    i: usize,
    a: &ConnectionsArgs,
    ser: Serializer,
    events: &mpsc::UnboundedSender<Event>,
    mut phase: watch::Receiver<Phase>,
) -> Result<(), String> {
    let started = Instant::now();
    let mut req = a
        .common
        .url
        .as_str()
        .into_client_request()
        .map_err(|e| e.to_string())?;
    req.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        HeaderValue::from_static(ser.subprotocol()),
    );
    let config = WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(0);
    let (mut ws, _) = tokio_tungstenite::connect_async_with_config(req, Some(config), true)
        .await
        .map_err(|e| e.to_string())?;
    ws.send(ws_message(
        ser,
        &Message::Hello {
            realm: a.common.realm.clone(),
            details: dict([(
                "roles",
                Value::Dict(dict([
                    ("subscriber", Value::Dict(vec![])),
                    ("publisher", Value::Dict(vec![])),
                ])),
            )]),
        },
    )?)
    .await
    .map_err(|e| e.to_string())?;
    match next_message(&mut ws, ser).await? {
        Message::Welcome { .. } => {}
        other => return Err(format!("expected WELCOME, got {}", other.name())),
    }
    ws.send(ws_message(
        ser,
        &Message::Subscribe {
            request: 1,
            options: vec![],
            topic: format!("bench.conn.t{i}"),
        },
    )?)
    .await
    .map_err(|e| e.to_string())?;
    match next_message(&mut ws, ser).await? {
        Message::Subscribed { .. } => {}
        other => return Err(format!("expected SUBSCRIBED, got {}", other.name())),
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
                ws.send(ws_message(
                    ser,
                    &Message::Publish {
                        request: 2,
                        options: dict([("acknowledge", Value::Bool(true))]),
                        topic: "bench.noise".into(),
                        payload: Payload::args(vec![Value::Bytes(blob)]),
                    },
                )?)
                .await
                .map_err(|e| e.to_string())?;
                match next_message(&mut ws, ser).await? {
                    Message::Published { .. } => {
                        let _ = events.send(Event::Published);
                    }
                    other => return Err(format!("expected PUBLISHED, got {}", other.name())),
                }
            }
            _ => {}
        }
        tokio::select! {
            m = ws.next() => match m {
                None | Some(Err(_)) => return Err("connection lost while holding".into()),
                Some(Ok(WsMessage::Close(c))) => return Err(format!("closed by the router while holding: {c:?}")),
                Some(Ok(_)) => {}
            },
            r = phase.changed() => if r.is_err() { break },
        }
    }
    let _ = ws.close(None).await;
    Ok(())
}

#[derive(serde::Serialize)]
struct ConnectionsResult {
    scenario: &'static str,
    url: String,
    serializer: String,
    requested: usize,
    established: usize,
    failed: usize,
    first_error: Option<String>,
    ramp_secs: f64,
    welcome_latency_us: Latency,
    server_rss_before: Option<u64>,
    server_rss_held: Option<u64>,
    server_rss_per_session: Option<f64>,
    message_bytes: Option<usize>,
    server_rss_after_message: Option<u64>,
    server_rss_per_session_after_message: Option<f64>,
}

#[derive(serde::Serialize)]
struct Latency {
    p50: u64,
    p90: u64,
    p99: u64,
    max: u64,
}

pub async fn connections(a: ConnectionsArgs) -> Result<(), String> {
    let ser = parse_serializer(&a.common.serializer)?;
    let rss_before = a.common.pid.and_then(rss_bytes);
    let (phase_tx, phase_rx) = watch::channel(Phase::Hold);
    let (ev_tx, mut ev_rx) = mpsc::unbounded_channel();
    let interval = Duration::from_secs_f64(1.0 / f64::from(a.rate.max(1)));
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(a.sessions);
    let spawner = {
        let a = a.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            for i in 0..a.sessions {
                tick.tick().await;
                let a = a.clone();
                let ev = ev_tx.clone();
                let rx = phase_rx.clone();
                tasks.push(tokio::spawn(async move {
                    if let Err(e) = one_session(i, &a, ser, &ev, rx).await {
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
    let mut last_report = Instant::now();
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
        if last_report.elapsed() > Duration::from_secs(1) {
            eprintln!("  {} established, {} failed", latencies.len(), failed);
            last_report = Instant::now();
        }
    }
    let ramp = started.elapsed();
    let tasks = spawner.await.map_err(|e| e.to_string())?;
    tokio::time::sleep(Duration::from_secs(a.hold)).await;
    let rss_held = a.common.pid.and_then(rss_bytes);
    let established = latencies.len();
    let (mut rss_msg, mut per_msg) = (None, None);
    if a.message_bytes.is_some() {
        let _ = phase_tx.send(Phase::Publish);
        let mut acks = 0;
        let deadline = Instant::now() + Duration::from_secs(120);
        while acks < established && Instant::now() < deadline {
            match tokio::time::timeout(Duration::from_secs(5), ev_rx.recv()).await {
                Ok(Some(Event::Published)) => acks += 1,
                Ok(Some(Event::Failed(e))) => {
                    first_error.get_or_insert(e);
                }
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => break,
            }
        }
        tokio::time::sleep(Duration::from_secs(a.hold)).await;
        rss_msg = a.common.pid.and_then(rss_bytes);
        if let (Some(b), Some(m)) = (rss_before, rss_msg) {
            per_msg = Some((m as f64 - b as f64) / established.max(1) as f64);
        }
    }
    let _ = phase_tx.send(Phase::Stop);
    for t in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(5), t).await;
    }
    latencies.sort_unstable();
    let per = match (rss_before, rss_held) {
        (Some(b), Some(h)) => Some((h as f64 - b as f64) / established.max(1) as f64),
        _ => None,
    };
    let result = ConnectionsResult {
        scenario: "connections",
        url: a.common.url.clone(),
        serializer: a.common.serializer.clone(),
        requested: a.sessions,
        established,
        failed,
        first_error,
        ramp_secs: ramp.as_secs_f64(),
        welcome_latency_us: Latency {
            p50: percentile(&latencies, 50.0),
            p90: percentile(&latencies, 90.0),
            p99: percentile(&latencies, 99.0),
            max: latencies.last().copied().unwrap_or(0),
        },
        server_rss_before: rss_before,
        server_rss_held: rss_held,
        server_rss_per_session: per,
        message_bytes: a.message_bytes,
        server_rss_after_message: rss_msg,
        server_rss_per_session_after_message: per_msg,
    };
    println!(
        "connections: {} requested, {} established, {} failed in {:.1} s",
        result.requested,
        established,
        failed,
        ramp.as_secs_f64()
    );
    if let Some(e) = &result.first_error {
        println!("  first error: {e}");
    }
    let l = &result.welcome_latency_us;
    println!(
        "  connect→SUBSCRIBED latency: p50 {}  p90 {}  p99 {}  max {}",
        fmt_us(l.p50),
        fmt_us(l.p90),
        fmt_us(l.p99),
        fmt_us(l.max)
    );
    if let (Some(b), Some(h), Some(p)) = (rss_before, rss_held, per) {
        println!(
            "  server RSS: {} before, {} with sessions held → {} per session",
            fmt_bytes(b as f64),
            fmt_bytes(h as f64),
            fmt_bytes(p)
        );
    }
    if let (Some(m), Some(p)) = (rss_msg, per_msg) {
        println!(
            "  after each session sent one {}-byte message: {} → {} per session",
            a.message_bytes.unwrap_or(0),
            fmt_bytes(m as f64),
            fmt_bytes(p)
        );
    }
    if let Some(path) = &a.common.json {
        let text = serde_json::to_string_pretty(&result).map_err(|e| e.to_string())?;
        std::fs::write(path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    Ok(())
}
