//! Crash safety of the real binary: a mixed chat + event-history load, SIGKILL at a random
//! moment, restart — many rounds. After every restart the store opens cleanly; every
//! acknowledged chat message is there, once, at the sequence number its acknowledgement gave,
//! with no gaps (the chat service runs pipelined sends concurrently: the order it numbers them
//! in, and acknowledges them in, is its own, not necessarily the order they were sent); every acknowledged history event is
//! there, and what survived of a round's events is a prefix of what was published, in order.

use crate::support::*;
use futures_util::SinkExt;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::process::Command;
use std::time::{Duration, Instant};

const TOKEN: &str = "visitor-token-crash-aaaaaaaaaaaa";
const ROUNDS: usize = 24;
/// At most this many chat sends and publications per round (the kill comes first).
const MAX_SENDS: usize = 5000;
/// Below the 1,000 events a history topic keeps at most.
const MAX_PUBLISHES: usize = 900;
const WINDOW: usize = 16;

fn config(port: u16) -> String {
    format!(
        r#"{{
  "version": 2,
  "workers": [{{
    "type": "router",
    "realms": [{{"name": "realm1", "roles": [
      {{"name": "visitor"}},
      {{"name": "staff"}},
      {{"name": "backend", "permissions": [{{"uri": "", "match": "prefix", "allow": {{"call": true, "register": true, "publish": true, "subscribe": true}}}}]}}
    ],
    "store": {{"type": "memory", "event-history": [{{"uri": "com.crash", "limit": 100000}}]}}
    }}],
    "chat": {{"realm": "realm1", "staff_roles": ["staff"], "messages_per_minute": 1000000}},
    "transports": [{{"type": "web", "endpoint": {{"type": "tcp", "port": {port}, "interface": "127.0.0.1"}},
      "paths": {{
        "ws": {{"type": "websocket", "auth": {{"ticket": {{"type": "visitor"}}}}}},
        "raw": {{"type": "websocket", "auth": {{"anonymous": {{"type": "static", "role": "backend"}}}}}}
      }}}}]
  }}]
}}"#
    )
}

async fn visitor(port: u16) -> Client {
    let mut c = Client::connect(&format!("ws://127.0.0.1:{port}/ws"), Ser::Json).await;
    c.send(json!([1, "realm1", {"authmethods": ["ticket"], "roles": {"caller": {}, "subscriber": {}}}]))
        .await;
    assert_eq!(c.recv().await[0], 4);
    c.send(json!([5, TOKEN, {}])).await;
    assert_eq!(c.recv().await[0], 2);
    c
}

async fn backend(port: u16) -> Client {
    let mut c = Client::connect(&format!("ws://127.0.0.1:{port}/raw"), Ser::MsgPack).await;
    c.join("realm1").await;
    c
}

async fn call(c: &mut Client, procedure: &str, args: Value, kwargs: Value) -> Value {
    let r = c.request_id();
    c.send(json!([48, r, {}, procedure, args, kwargs])).await;
    loop {
        let m = c.recv().await;
        if m[0] == 36 {
            continue;
        }
        assert_eq!(m[0], 50, "RESULT for {procedure} expected, got {m}");
        return m[3].get(0).cloned().unwrap_or(Value::Null);
    }
}

/// Sends `make(request, i)` for i = 0.. with WINDOW in flight until the connection drops (or
/// `max`); returns request id → i for what was sent, and the answers with `ok_code` (request id,
/// first result argument).
async fn drive(
    c: &mut Client,
    max: usize,
    ok_code: u64,
    make: impl Fn(u64, usize) -> Value,
) -> (HashMap<u64, usize>, Vec<(u64, Value)>) {
    let mut sent = HashMap::new();
    let mut answers = Vec::new();
    let mut i = 0;
    while i < max {
        let mut in_flight = 0;
        for _ in 0..WINDOW.min(max - i) {
            let r = c.request_id();
            let m = c.ser.encode(&make(r, i));
            if c.ws.send(m).await.is_err() {
                return (sent, answers);
            }
            sent.insert(r, i);
            i += 1;
            in_flight += 1;
        }
        while in_flight > 0 {
            match c.next_within(Duration::from_secs(10)).await {
                Ok(m) if m[0] == ok_code => {
                    answers.push((m[1].as_u64().expect("request id"), m[3][0].clone()));
                    in_flight -= 1;
                }
                Ok(m) if m[0] == 36 => {}
                Ok(m) => panic!("unexpected answer {m}"),
                Err(_) => return (sent, answers),
            }
        }
    }
    (sent, answers)
}

/// Every message of the thread with seq > `after`, oldest first.
async fn messages_after(v: &mut Client, thread: &Value, mut after: u64) -> Vec<(u64, String)> {
    let mut out = Vec::new();
    loop {
        let page = call(
            v,
            "switchboard.chat.history",
            json!([thread]),
            json!({"after": after, "limit": 500}),
        )
        .await;
        let page = page.as_array().expect("list").clone();
        if page.is_empty() {
            return out;
        }
        for m in page {
            let seq = m["seq"].as_u64().expect("seq");
            after = after.max(seq);
            out.push((seq, m["text"].as_str().unwrap_or("").to_owned()));
        }
    }
}

/// Asserts `got` is a prefix of `sent` that includes every index in `acked`; returns its length.
fn check_prefix(
    what: &str,
    round: usize,
    sent: &[String],
    got: &[String],
    acked: &[usize],
) -> usize {
    assert!(
        got.len() <= sent.len() && got == &sent[..got.len()],
        "round {round}: {what} that survived are not a prefix of what was sent, in order: {} sent, {} acked, {} survived, first {:?}, last {:?}",
        sent.len(),
        acked.len(),
        got.len(),
        got.first(),
        got.last()
    );
    if let Some(&max) = acked.iter().max() {
        assert!(
            max < got.len(),
            "round {round}: {what} #{max} was acknowledged but is lost ({} survived)",
            got.len()
        );
    }
    got.len()
}

/// Asserts every message in `got` (seq, text) was sent this round, at most once, and every
/// acknowledged one (text, the seq its acknowledgement gave) is there at that seq.
fn check_acked(round: usize, sent: &[String], got: &[(u64, String)], acked: &[(String, u64)]) {
    let mut seen = std::collections::HashSet::new();
    for (_, t) in got {
        assert!(sent.contains(t), "round {round}: unexpected message {t:?}");
        assert!(seen.insert(t), "round {round}: {t:?} stored twice");
    }
    let at: HashMap<u64, &String> = got.iter().map(|(s, t)| (*s, t)).collect();
    for (text, seq) in acked {
        assert_eq!(
            at.get(seq).copied(),
            Some(text),
            "round {round}: acknowledged message {text:?} is not at seq {seq}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_sigkill_at_random_moments() {
    let began = Instant::now();
    let tmp = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let cfg = tmp.path().join("node.json");
    std::fs::write(&cfg, config(port)).expect("config");
    let data = tmp.path().join("data");

    let mut child = start_process(&cfg, &data);
    let mut v = visitor(port).await;
    let thread =
        call(&mut v, "switchboard.chat.open", json!([]), json!({})).await["thread"].clone();
    drop(v);
    let mut last_seq = 0u64;
    let mut kept_total = (0usize, 0usize);
    for round in 0..ROUNDS {
        let mut v = visitor(port).await;
        let mut p = backend(port).await;
        // Both clients keep WINDOW requests in flight until the server dies under them.
        let sent_texts: Vec<String> = (0..MAX_SENDS).map(|i| format!("r{round}-m{i}")).collect();
        let delay = Duration::from_millis(rand::random_range(20..400));
        let pid = child.0.id();
        let killer = tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            let _ = Command::new("kill")
                .arg("-KILL")
                .arg(pid.to_string())
                .status();
        });
        let th = thread.clone();
        let texts_ref = &sent_texts;
        let ((texts, chat_acks), (publications, pub_acks)) = tokio::join!(
            drive(
                &mut v,
                MAX_SENDS,
                50,
                |r, i| json!([48, r, {}, "switchboard.chat.send", [th, texts_ref[i]], {"client_id": format!("c{round}-{i}")}])
            ),
            drive(
                &mut p,
                MAX_PUBLISHES,
                17,
                |r, i| json!([16, r, {"acknowledge": true}, "com.crash", [round, i]])
            ),
        );
        killer.await.expect("killer");
        child.0.wait().expect("reaped");
        let sent_events = publications.len();
        let acked_msgs: Vec<(String, u64)> = chat_acks
            .iter()
            .filter_map(|(r, result)| {
                let i = *texts.get(r)?;
                Some((sent_texts[i].clone(), result["seq"].as_u64().expect("seq")))
            })
            .collect();
        let acked_pubs: Vec<usize> = pub_acks
            .iter()
            .filter_map(|(r, _)| publications.get(r).copied())
            .collect();

        child = start_process(&cfg, &data);
        let mut v = visitor(port).await;
        let got = messages_after(&mut v, &thread, last_seq).await;
        let seqs: Vec<u64> = got.iter().map(|(s, _)| *s).collect();
        assert_eq!(
            seqs,
            (last_seq + 1..=last_seq + got.len() as u64).collect::<Vec<_>>(),
            "round {round}: numbered without gaps"
        );
        check_acked(round, &sent_texts, &got, &acked_msgs);
        let kept = got.len();
        last_seq += kept as u64;

        let mut s = backend(port).await;
        let sub = s.subscribe("com.crash", json!({})).await;
        let events = call(
            &mut s,
            "wamp.subscription.get_events",
            json!([sub, 1000]),
            json!({}),
        )
        .await;
        let mut mine: Vec<String> = events
            .as_array()
            .expect("events")
            .iter()
            .filter(|e| e["args"][0] == json!(round))
            .map(|e| format!("e{}", e["args"][1]))
            .collect();
        mine.reverse();
        let sent_events: Vec<String> = (0..sent_events).map(|i| format!("e{i}")).collect();
        let kept_events = check_prefix("history events", round, &sent_events, &mine, &acked_pubs);
        kept_total.0 += kept;
        kept_total.1 += kept_events;
        eprintln!(
            "round {round}: kill after {delay:?}; chat {} sent / {} acked / {kept} kept; events {} sent / {} acked / {kept_events} kept",
            texts.len(),
            acked_msgs.len(),
            sent_events.len(),
            acked_pubs.len()
        );
    }
    drop(child);
    eprintln!(
        "{ROUNDS} rounds in {:?}: {} chat messages and {} events kept",
        began.elapsed(),
        kept_total.0,
        kept_total.1
    );
}
