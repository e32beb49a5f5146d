use crate::support::*;
use futures_util::SinkExt;
use serde_json::json;
use std::time::Duration;
use switchboard::config::Limits;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::Message as WsMessage;

fn limits() -> Limits {
    Limits {
        max_message_size: 4096,
        max_queue_bytes: 256 * 1024,
        ..Limits::default()
    }
}

async fn wait_sessions(srv: &TestServer, n: u64) {
    for _ in 0..500 {
        if srv.status().await["sessions"] == n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("session count did not reach {n}: {}", srv.status().await);
}

#[tokio::test]
async fn oversize_message_closes_with_1009() {
    let srv = TestServer::with_limits(limits()).await;
    let mut c = srv.joined(Ser::Json).await;
    let big = "x".repeat(5000);
    c.send(json!([16, 1, {}, "com.big", [big]])).await;
    let close = c.closed().await;
    assert_eq!(close_code_of(&close), 1009, "{close:?}");
    wait_sessions(&srv, 0).await;
}

#[tokio::test]
async fn oversize_fragmented_message_is_capped_in_total() {
    let srv = TestServer::with_limits(limits()).await;
    let mut c = srv.joined(Ser::Json).await;
    // Many small fragments, each far below the limit, adding up to more than it.
    let chunk = vec![b' '; 1000];
    c.ws.send(WsMessage::Frame(Frame::message(
        chunk.clone(),
        OpCode::Data(Data::Text),
        false,
    )))
    .await
    .expect("send");
    for _ in 0..10 {
        if c.ws
            .send(WsMessage::Frame(Frame::message(
                chunk.clone(),
                OpCode::Data(Data::Continue),
                false,
            )))
            .await
            .is_err()
        {
            break;
        }
    }
    let close = c.closed().await;
    assert_eq!(close_code_of(&close), 1009, "{close:?}");
}

#[tokio::test]
async fn fragmented_message_within_the_limit_is_reassembled() {
    let srv = TestServer::with_limits(limits()).await;
    let mut sub = srv.joined(Ser::Json).await;
    let id = sub.subscribe("com.frag", json!({})).await;
    let mut c = srv.joined(Ser::Json).await;
    let text = json!([16, 1, {}, "com.frag", ["fragmented"]])
        .to_string()
        .into_bytes();
    let (a, b) = text.split_at(10);
    c.ws.send(WsMessage::Frame(Frame::message(
        a.to_vec(),
        OpCode::Data(Data::Text),
        false,
    )))
    .await
    .expect("send");
    c.ws.send(WsMessage::Ping(vec![1, 2].into()))
        .await
        .expect("ping between fragments");
    c.ws.send(WsMessage::Frame(Frame::message(
        b.to_vec(),
        OpCode::Data(Data::Continue),
        true,
    )))
    .await
    .expect("send");
    let e = sub.recv().await;
    assert_eq!(e[1], id);
    assert_eq!(e[4], json!(["fragmented"]));
}

#[tokio::test]
async fn stalled_subscriber_is_cut_off_and_does_not_slow_others() {
    let srv = TestServer::with_limits(limits()).await;
    let mut stalled = srv.joined(Ser::Json).await;
    stalled.subscribe("com.flood", json!({})).await;
    let mut fast = srv.joined(Ser::MsgPack).await;
    fast.subscribe("com.flood", json!({})).await;
    let mut p = srv.joined(Ser::Json).await;
    let payload = "y".repeat(3000);
    let total = 8000u64; // ~24 MB in all: far beyond kernel buffers plus the 256 KiB queue
    for i in 0..total {
        p.send(json!([16, i + 1, {}, "com.flood", [payload]])).await;
        if i % 20 == 19 {
            // The fast subscriber reads as it goes and gets every event.
            for _ in 0..20 {
                let e = fast.recv().await;
                assert_eq!(e[0], 36);
            }
        }
    }
    // The publisher was never blocked: an acknowledged publish comes straight back.
    p.send(json!([16, 999_999, {"acknowledge": true}, "com.flood", []]))
        .await;
    assert_eq!(p.recv().await[0], 17);
    assert_eq!(
        fast.recv().await.as_array().map(Vec::len),
        Some(4),
        "the last, empty event"
    );
    // The stalled subscriber's session is gone; the other two remain.
    wait_sessions(&srv, 2).await;
    // Reading now, it finds its connection closed (possibly after some buffered events).
    let close = stalled.closed().await;
    if let Some((code, reason)) = close {
        assert_eq!(code, 1008);
        assert!(reason.contains("slow consumer"), "{reason}");
    }
}

#[tokio::test]
async fn connection_without_hello_is_closed_after_the_deadline() {
    let srv = TestServer::with_limits(Limits {
        hello_timeout: Duration::from_millis(300),
        ..Limits::default()
    })
    .await;
    let mut c = srv.client(Ser::Json).await;
    let close = c.closed().await;
    assert_eq!(close_code_of(&close), 1008);
    assert!(close
        .map(|(_, r)| r)
        .unwrap_or_default()
        .contains("no HELLO"));
    // A client that says HELLO in time is not affected.
    let mut ok = srv.joined(Ser::Json).await;
    ok.expect_silence(Duration::from_millis(600)).await;
    assert_eq!(srv.status().await["sessions"], 1);
}

#[tokio::test]
async fn keepalive_drops_peers_that_do_not_answer_pings() {
    let srv = TestServer::with_limits(Limits {
        ping_interval: Some(Duration::from_millis(100)),
        ping_timeout: Duration::from_millis(300),
        ..Limits::default()
    })
    .await;
    let mut silent = srv.joined(Ser::Json).await;
    silent.subscribe("com.k", json!({})).await;
    let mut alive = srv.joined(Ser::Json).await;
    // `alive` keeps reading, so its WebSocket library answers the pings.
    alive.expect_silence(Duration::from_millis(1200)).await;
    // `silent` did not read at all: it never answered, so it was dropped.
    assert_eq!(srv.status().await["sessions"], 1);
    assert_eq!(
        srv.status().await["realms"][0]["subscriptions"],
        0,
        "its subscription left with it"
    );
    let close = silent.closed().await;
    assert_eq!(close_code_of(&close), 1001);
    // The live one still works.
    alive
        .send(json!([16, 1, {"acknowledge": true}, "com.k", []]))
        .await;
    assert_eq!(alive.recv().await[0], 17);
}

/// Events spaced apart reach a subscriber in one write each; with a write delay they are
/// gathered into far fewer writes, all delivered in order.
#[tokio::test]
async fn write_delay_gathers_frames_into_fewer_writes() {
    async fn writes_for_20_spaced_events(delay: Duration) -> u64 {
        let srv = TestServer::with_limits(Limits {
            write_delay: delay,
            ..Limits::default()
        })
        .await;
        let mut sub = srv.joined(Ser::Json).await;
        sub.subscribe("com.batch", json!({})).await;
        let mut publisher = srv.joined(Ser::Json).await;
        tokio::time::sleep(Duration::from_millis(delay.as_millis() as u64 + 50)).await;
        let before = srv.status().await["socket_writes"]
            .as_u64()
            .expect("socket_writes");
        for i in 0..20 {
            publisher
                .send(json!([16, i + 1, {}, "com.batch", [i]]))
                .await;
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        for i in 0..20 {
            assert_eq!(sub.recv().await[4], json!([i]), "in order");
        }
        srv.status().await["socket_writes"]
            .as_u64()
            .expect("socket_writes")
            - before
    }
    let immediate = writes_for_20_spaced_events(Duration::ZERO).await;
    let delayed = writes_for_20_spaced_events(Duration::from_millis(400)).await;
    assert!(
        immediate >= 12,
        "without a delay each spaced event is its own write: {immediate}"
    );
    assert!(
        delayed <= 5,
        "with a 400 ms delay the 20 events go out in a few writes: {delayed}"
    );
}
