//! Calls in a chat thread through real sessions: the service's call state machine (ring,
//! answer, decline, busy, ring timeout, hang-up, a lost connection, resume), the signalling
//! relay to the other person in the call only, the outcome lines in the history — and
//! strangers refused by the router.

use crate::chat::{
    chat, chat_error, config_with, event, server_with, staff, visitor, TOKEN_A, TOKEN_B,
};
use crate::support::*;
use serde_json::{json, Value};
use std::time::Duration;

fn calls_config(ring: &str, grace: &str) -> String {
    config_with(
        0,
        &format!(r#""messages_per_minute": 100000, "ring_timeout": {ring}, "call_grace": {grace}"#),
    )
    .replace(
        r#""alice": {"ticket": "alice-pw", "role": "staff"}"#,
        r#""alice": {"ticket": "alice-pw", "role": "staff"}, "bob": {"ticket": "bob-pw", "role": "staff"}"#,
    )
}

/// Staff member bob (alice is `staff`).
async fn bob(srv: &TestServer) -> Client {
    let mut c = Client::connect(&format!("ws://{}/staff", srv.addr), Ser::Json).await;
    c.send(json!([1, "realm1", {"authmethods": ["ticket"], "authid": "bob"}]))
        .await;
    c.recv().await;
    c.send(json!([5, "bob-pw", {}])).await;
    let w = c.recv().await;
    assert_eq!(w[0], 2, "{w}");
    c.session = w[1].as_u64().expect("session");
    c
}

/// The next event matching `pred` (others are skipped).
async fn until(c: &mut Client, pred: impl Fn(&Value) -> bool) -> Value {
    loop {
        let e = event(c).await;
        if pred(&e) {
            return e;
        }
    }
}

fn call_event(ev: &'static str) -> impl Fn(&Value) -> bool {
    move |e: &Value| e["type"] == "call" && e["event"] == ev
}

/// A visitor with an open thread it follows; returns (client, thread id).
async fn visitor_in_thread(srv: &TestServer, token: &str) -> (Client, u64) {
    let mut v = visitor(srv, token).await;
    let id = chat(&mut v, "open", json!([]), json!({})).await["thread"]
        .as_u64()
        .expect("thread");
    v.subscribe(&format!("switchboard.chat.thread.{id}"), json!({}))
        .await;
    (v, id)
}

async fn last_line(c: &mut Client, id: u64) -> Value {
    chat(c, "history", json!([id]), json!({"limit": 1})).await[0].clone()
}

#[tokio::test]
async fn a_call_rings_is_answered_relays_signals_to_its_people_only_and_is_recorded() {
    let srv = server_with(&calls_config("30", "30")).await;
    let mut agent = staff(&srv).await;
    agent.subscribe("switchboard.chat.inbox", json!({})).await;
    let (mut v, id) = visitor_in_thread(&srv, TOKEN_A).await;
    let topic = format!("switchboard.chat.thread.{id}");

    // The visitor calls: staff are rung on the inbox topic (wherever their inbox is).
    let started = chat(&mut v, "call_start", json!([id]), json!({"video": true})).await;
    assert_eq!(started["state"], "ringing");
    assert_eq!(started["me"], "caller");
    let call = started["call"].as_str().expect("call id").to_owned();
    let ring = until(&mut agent, call_event("ring")).await;
    assert_eq!(
        (&ring["call"], &ring["thread"], &ring["video"]),
        (&json!(call), &json!(id), &json!(true))
    );
    assert_eq!(ring["from_role"], "visitor");

    // One call per thread.
    assert_eq!(
        chat_error(&mut v, "call_start", json!([id]), json!({})).await,
        "switchboard.chat.error.call_busy"
    );
    // Signals wait for the answer.
    assert_eq!(
        chat_error(
            &mut v,
            "signal",
            json!([id, "offer", {"type": "offer", "sdp": "v=0"}]),
            json!({"call": call})
        )
        .await,
        "wamp.error.invalid_argument"
    );
    // Only the other side answers.
    assert_eq!(
        chat_error(&mut v, "call_accept", json!([id, call]), json!({})).await,
        "wamp.error.invalid_argument"
    );

    agent.subscribe(&topic, json!({})).await;
    let accepted = chat(&mut agent, "call_accept", json!([id, call]), json!({})).await;
    assert_eq!(accepted["state"], "active");
    assert_eq!(accepted["me"], "callee");
    let acc = until(&mut v, call_event("accept")).await;
    assert_eq!(acc["by_role"], "staff");
    // A colleague following the thread sees the call's events but none of its signals.
    let mut other = bob(&srv).await;
    other.subscribe(&topic, json!({})).await;
    assert_eq!(
        chat_error(&mut other, "call_accept", json!([id, call]), json!({})).await,
        "switchboard.chat.error.call_busy",
        "answered already"
    );

    let offer = json!({"type": "offer", "sdp": "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\n"});
    chat(
        &mut v,
        "signal",
        json!([id, "offer", offer.clone()]),
        json!({"call": call}),
    )
    .await;
    let got = until(&mut agent, |e| e["type"] == "signal").await;
    assert_eq!(
        (&got["kind"], &got["payload"], &got["from_role"]),
        (&json!("offer"), &offer, &json!("visitor")),
        "the SDP travels intact"
    );
    chat(
        &mut agent,
        "signal",
        json!([id, "answer", {"type": "answer", "sdp": "v=0"}]),
        json!({"call": call}),
    )
    .await;
    chat(
        &mut agent,
        "signal",
        json!([id, "candidate", {"candidate": "candidate:1 1 udp 1 127.0.0.1 5 typ host"}]),
        json!({"call": call}),
    )
    .await;
    let got = until(&mut v, |e| e["type"] == "signal").await;
    assert_eq!(got["kind"], "answer");
    let got = until(&mut v, |e| e["type"] == "signal").await;
    assert_eq!(got["kind"], "candidate");
    // The colleague's next event is the visitor's message: no signal reached it.
    chat(&mut v, "send", json!([id, "after the signals"]), json!({})).await;
    let next = until(&mut other, |e| e["type"] != "call").await;
    assert_eq!(
        (&next["type"], &next["text"]),
        (&json!("message"), &json!("after the signals"))
    );
    // Bad signals: unknown kind, no call id, not a dict, too big, a call that is not this one.
    for (args, kwargs) in [
        (json!([id, "shout", {}]), json!({"call": call})),
        (json!([id, "offer", {}]), json!({})),
        (json!([id, "offer", "sdp"]), json!({"call": call})),
        (
            json!([id, "offer", {"sdp": "x".repeat(20_000)}]),
            json!({"call": call}),
        ),
    ] {
        assert_eq!(
            chat_error(&mut v, "signal", args, kwargs).await,
            "wamp.error.invalid_argument"
        );
    }
    assert_eq!(
        chat_error(
            &mut v,
            "signal",
            json!([id, "offer", {}]),
            json!({"call": "nope"})
        )
        .await,
        "switchboard.chat.error.no_such_call"
    );
    // Someone not in the call may not hang it up.
    assert_eq!(
        chat_error(&mut other, "call_hangup", json!([id, call]), json!({})).await,
        "wamp.error.not_authorized"
    );

    let state = chat(&mut v, "call_state", json!([id]), json!({})).await;
    assert_eq!(
        (&state["state"], &state["me"]),
        (&json!("active"), &json!("caller"))
    );
    assert!(state["answered_ms"].as_u64().is_some());

    tokio::time::sleep(Duration::from_millis(1100)).await;
    chat(&mut agent, "call_hangup", json!([id, call]), json!({})).await;
    let end = until(&mut v, call_event("end")).await;
    assert_eq!(
        (&end["reason"], &end["outcome"]),
        (&json!("hangup"), &json!("completed"))
    );
    assert!(end["duration_ms"].as_u64().is_some_and(|d| d >= 1000));
    let line = last_line(&mut v, id).await;
    assert_eq!(line["kind"], "call");
    assert_eq!(line["sender_role"], "system");
    assert_eq!(line["call"]["outcome"], "completed");
    assert_eq!(line["call"]["video"], true);
    let text = line["text"].as_str().unwrap_or("");
    assert!(
        text.starts_with("Video call, ") && text.ends_with(" s"),
        "{text}"
    );
    assert_eq!(
        chat(&mut v, "call_state", json!([id]), json!({})).await,
        Value::Null
    );
    // Ordinary messages say so.
    assert_eq!(
        chat(&mut v, "history", json!([id]), json!({"limit": 2})).await[1]["kind"],
        "text"
    );
}

#[tokio::test]
async fn declined_missed_cancelled_and_busy_calls_are_written_down() {
    let srv = server_with(&calls_config("0.5", "30")).await;
    let mut agent = staff(&srv).await;
    agent
        .subscribe("switchboard.chat.thread.", json!({"match": "prefix"}))
        .await;
    agent.subscribe("switchboard.chat.inbox", json!({})).await;
    let (mut v, id) = visitor_in_thread(&srv, TOKEN_A).await;

    // Staff call the visitor (audio); the visitor declines; the caller may not decline.
    let c1 = chat(
        &mut agent,
        "call_start",
        json!([id]),
        json!({"video": false}),
    )
    .await;
    let call = c1["call"].as_str().expect("call").to_owned();
    let ring = until(&mut v, call_event("ring")).await;
    assert_eq!(
        (&ring["video"], &ring["from_role"]),
        (&json!(false), &json!("staff"))
    );
    assert_eq!(
        chat_error(&mut agent, "call_decline", json!([id, call]), json!({})).await,
        "wamp.error.invalid_argument"
    );
    chat(&mut v, "call_decline", json!([id, call]), json!({})).await;
    let end = until(&mut v, call_event("end")).await;
    assert_eq!(end["outcome"], "declined");
    let line = last_line(&mut v, id).await;
    assert_eq!(
        (&line["text"], &line["kind"]),
        (&json!("Call declined"), &json!("call"))
    );
    assert_eq!(line["call"]["video"], false);

    // Nobody answers: after the ring timeout it is a missed call, for both sides.
    let c2 = chat(&mut v, "call_start", json!([id]), json!({})).await;
    let end = until(&mut agent, |e| {
        e["type"] == "call" && e["event"] == "end" && e["call"] == c2["call"]
    })
    .await;
    assert_eq!(
        (&end["reason"], &end["outcome"]),
        (&json!("timeout"), &json!("missed"))
    );
    until(&mut v, call_event("end")).await;
    let line = last_line(&mut v, id).await;
    assert_eq!(line["text"], "Missed call");
    assert_eq!(line["call"]["outcome"], "missed");

    // The caller gives up before an answer: missed too.
    let c3 = chat(&mut v, "call_start", json!([id]), json!({})).await;
    chat(&mut v, "call_hangup", json!([id, c3["call"]]), json!({})).await;
    assert_eq!(last_line(&mut v, id).await["text"], "Missed call");

    // The callee answers busy.
    let c4 = chat(
        &mut agent,
        "call_start",
        json!([id]),
        json!({"video": true}),
    )
    .await;
    chat(
        &mut v,
        "call_decline",
        json!([id, c4["call"]]),
        json!({"busy": true}),
    )
    .await;
    let line = last_line(&mut v, id).await;
    assert_eq!(line["text"], "Video call not answered: busy");
    assert_eq!(line["call"]["outcome"], "busy");

    // Both press "call" at once: the second start answers the first (no second call).
    let c5 = chat(&mut v, "call_start", json!([id]), json!({})).await;
    let c5b = chat(&mut agent, "call_start", json!([id]), json!({})).await;
    assert_eq!(
        (&c5b["call"], &c5b["state"]),
        (&c5["call"], &json!("active"))
    );
    until(&mut v, call_event("accept")).await;

    // The only staff member online is in that call: another visitor calling gets busy at once.
    let (mut b, id_b) = visitor_in_thread(&srv, TOKEN_B).await;
    let busy = chat(&mut b, "call_start", json!([id_b]), json!({})).await;
    assert_eq!(busy["state"], "busy");
    assert_eq!(
        last_line(&mut b, id_b).await["text"],
        "Video call not answered: busy"
    );
    // Hung up by the visitor: both get the end.
    chat(&mut v, "call_hangup", json!([id, c5["call"]]), json!({})).await;
    let end = until(&mut agent, |e| {
        e["type"] == "call" && e["event"] == "end" && e["call"] == c5["call"]
    })
    .await;
    assert_eq!(end["outcome"], "completed");
    assert!(last_line(&mut v, id).await["text"]
        .as_str()
        .is_some_and(|t| t.starts_with("Video call, ")));
}

#[tokio::test]
async fn a_reconnecting_person_resumes_the_call_and_a_lost_one_ends_it() {
    let srv = server_with(&calls_config("30", "0.5")).await;
    let mut agent = staff(&srv).await;
    let (mut v, id) = visitor_in_thread(&srv, TOKEN_A).await;
    agent
        .subscribe(&format!("switchboard.chat.thread.{id}"), json!({}))
        .await;
    let call = chat(&mut v, "call_start", json!([id]), json!({})).await["call"].clone();
    chat(&mut agent, "call_accept", json!([id, call]), json!({})).await;

    // The visitor's connection drops; it comes back on a new session and resumes.
    drop(v);
    let (mut v2, _) = visitor_in_thread(&srv, TOKEN_A).await;
    let state = chat(&mut v2, "call_state", json!([id]), json!({})).await;
    assert_eq!(
        (&state["call"], &state["state"], &state["me"]),
        (&call, &json!("active"), &json!("caller"))
    );
    chat(
        &mut v2,
        "call_resume",
        json!([id, call]),
        json!({"fresh": true}),
    )
    .await;
    let resumed = until(&mut agent, call_event("resume")).await;
    assert_eq!(resumed["fresh"], true);
    // Signals now reach the new session.
    chat(
        &mut agent,
        "signal",
        json!([id, "offer", {"type": "offer", "sdp": "v=0"}]),
        json!({"call": call}),
    )
    .await;
    assert_eq!(
        until(&mut v2, |e| e["type"] == "signal").await["kind"],
        "offer"
    );
    // The grace period passes without trouble for a resumed call.
    tokio::time::sleep(Duration::from_millis(900)).await;
    assert_eq!(
        chat(&mut v2, "call_state", json!([id]), json!({})).await["state"],
        "active"
    );

    // Staff's connection drops for good: after the grace period the call ends.
    drop(agent);
    let end = until(&mut v2, call_event("end")).await;
    assert_eq!(
        (&end["reason"], &end["outcome"]),
        (&json!("lost"), &json!("completed"))
    );
    assert_eq!(last_line(&mut v2, id).await["call"]["outcome"], "completed");
}

#[tokio::test]
async fn strangers_may_neither_call_nor_listen() {
    let srv = server_with(&calls_config("30", "30")).await;
    let (mut v, id) = visitor_in_thread(&srv, TOKEN_A).await;
    let call = chat(&mut v, "call_start", json!([id]), json!({})).await["call"].clone();

    // Another visitor: the thread does not exist for it, and its topic is closed to it.
    let mut b = visitor(&srv, TOKEN_B).await;
    for (proc, args) in [
        ("call_start", json!([id])),
        ("call_accept", json!([id, call])),
        ("call_decline", json!([id, call])),
        ("call_hangup", json!([id, call])),
        ("call_state", json!([id])),
        ("call_resume", json!([id, call])),
        (
            "signal",
            json!([id, "offer", {"type": "offer", "sdp": "v=0"}]),
        ),
    ] {
        assert_eq!(
            chat_error(&mut b, proc, args, json!({"call": call})).await,
            "switchboard.chat.error.no_such_thread",
            "{proc}"
        );
    }
    let r = b.request_id();
    let (uri, _) = b
        .expect_error(json!([32, r, {}, format!("switchboard.chat.thread.{id}")]))
        .await;
    assert_eq!(uri, "wamp.error.not_authorized");

    // A raw WAMP client whose static role allows everything is still no member: the router
    // refuses the call procedures and the thread's topic (also by prefix).
    let mut raw = Client::connect(&format!("ws://{}/raw", srv.addr), Ser::Json).await;
    raw.join("realm1").await;
    for (proc, args) in [
        ("call_start", json!([id])),
        ("call_accept", json!([id, call])),
        ("call_hangup", json!([id, call])),
        ("call_state", json!([id])),
        ("signal", json!([id, "offer", {}])),
        ("ice_servers", json!([])),
    ] {
        let r = raw.request_id();
        let (uri, _) = raw
            .expect_error(
                json!([48, r, {}, format!("switchboard.chat.{proc}"), args, {"call": call}]),
            )
            .await;
        assert_eq!(uri, "wamp.error.not_authorized", "{proc}");
    }
    for (topic, opts) in [
        (format!("switchboard.chat.thread.{id}"), json!({})),
        (
            "switchboard.chat.thread.".to_owned(),
            json!({"match": "prefix"}),
        ),
        ("switchboard.chat.inbox".to_owned(), json!({})),
    ] {
        let r = raw.request_id();
        let (uri, _) = raw.expect_error(json!([32, r, opts, topic])).await;
        assert_eq!(uri, "wamp.error.not_authorized", "{topic}");
    }
    // Nothing changed for the people in the thread.
    assert_eq!(
        chat(&mut v, "call_state", json!([id]), json!({})).await["state"],
        "ringing"
    );
}

#[tokio::test]
async fn a_visitors_calls_count_against_its_message_rate() {
    let cfg = calls_config("30", "30").replace(
        r#""messages_per_minute": 100000"#,
        r#""messages_per_minute": 2"#,
    );
    let srv = server_with(&cfg).await;
    let (mut v, id) = visitor_in_thread(&srv, TOKEN_A).await;
    for _ in 0..2 {
        let call = chat(&mut v, "call_start", json!([id]), json!({})).await["call"].clone();
        chat(&mut v, "call_hangup", json!([id, call]), json!({})).await;
    }
    assert_eq!(
        chat_error(&mut v, "call_start", json!([id]), json!({})).await,
        "switchboard.chat.error.rate_limited"
    );
    // Staff are not limited.
    let mut agent = staff(&srv).await;
    for _ in 0..3 {
        let call = chat(&mut agent, "call_start", json!([id]), json!({})).await["call"].clone();
        chat(&mut agent, "call_hangup", json!([id, call]), json!({})).await;
    }
}
