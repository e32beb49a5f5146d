use crate::support::*;
use serde_json::json;
use std::time::Duration;

const QUIET: Duration = Duration::from_millis(200);

/// Expects an INVOCATION; returns (request id, details, args, kwargs).
async fn invocation(
    c: &mut Client,
) -> (u64, serde_json::Value, serde_json::Value, serde_json::Value) {
    let m = c.recv().await;
    assert_eq!(m[0], 68, "INVOCATION expected, got {m}");
    (
        m[1].as_u64().expect("id"),
        m[3].clone(),
        m.get(4).cloned().unwrap_or(json!(null)),
        m.get(5).cloned().unwrap_or(json!(null)),
    )
}

#[tokio::test]
async fn call_and_result_across_serializers() {
    let srv = TestServer::start().await;
    for callee_ser in ALL {
        for caller_ser in ALL {
            let mut callee = srv.joined(callee_ser).await;
            let reg = callee.register("com.calc.add", json!({})).await;
            let mut caller = srv.joined(caller_ser).await;
            caller.send(json!([48, 11, {}, "com.calc.add", [2, 3, "\u{0}3q2+7w=="], {"k": "\u{0}AA=="}])).await;
            let m = callee.recv().await;
            assert_eq!(m[0], 68);
            assert_eq!(m[2], reg);
            assert_eq!(m[3], json!({}), "no details unless asked");
            assert_eq!(m[4], json!([2, 3, "\u{0}3q2+7w=="]));
            assert_eq!(m[5], json!({"k": "\u{0}AA=="}));
            let inv = m[1].as_u64().unwrap_or(0);
            callee
                .send(json!([70, inv, {}, [5, "\u{0}/w=="], {"ok": true}]))
                .await;
            assert_eq!(
                caller.recv().await,
                json!([50, 11, {}, [5, "\u{0}/w=="], {"ok": true}]),
                "{callee_ser:?} → {caller_ser:?}"
            );
        }
    }
}

#[tokio::test]
async fn invocation_ids_are_sequential_per_callee() {
    let srv = TestServer::start().await;
    let mut callee = srv.joined(Ser::Json).await;
    callee.register("com.seq", json!({})).await;
    let mut caller = srv.joined(Ser::Json).await;
    for i in 1..=3u64 {
        caller.send(json!([48, 100 + i, {}, "com.seq"])).await;
        let (id, ..) = invocation(&mut callee).await;
        assert_eq!(id, i);
        callee.send(json!([70, id, {}])).await;
        assert_eq!(caller.recv().await, json!([50, 100 + i, {}]));
    }
}

#[tokio::test]
async fn callee_errors_reach_the_caller_unchanged() {
    let srv = TestServer::start().await;
    let mut callee = srv.joined(Ser::MsgPack).await;
    callee.register("com.fail", json!({})).await;
    let mut caller = srv.joined(Ser::Json).await;
    caller.send(json!([48, 5, {}, "com.fail", [1]])).await;
    let (id, ..) = invocation(&mut callee).await;
    callee
        .send(json!([8, 68, id, {}, "com.app.error.bad_input", ["why"], {"field": "x"}]))
        .await;
    assert_eq!(
        caller.recv().await,
        json!([8, 48, 5, {}, "com.app.error.bad_input", ["why"], {"field": "x"}])
    );
}

#[tokio::test]
async fn registration_errors() {
    let srv = TestServer::start().await;
    let mut a = srv.joined(Ser::Json).await;
    let reg = a.register("com.only", json!({})).await;
    let mut b = srv.joined(Ser::Json).await;
    for (msg, want) in [
        (
            json!([64, 1, {}, "com.only"]),
            "wamp.error.procedure_already_exists",
        ),
        (
            json!([64, 2, {"invoke": "roundrobin"}, "com.only"]),
            "wamp.error.procedure_already_exists",
        ),
        (json!([64, 3, {}, "com..x"]), "wamp.error.invalid_uri"),
        (
            json!([64, 4, {}, "wamp.session.count"]),
            "wamp.error.invalid_uri",
        ),
        (
            json!([64, 5, {"invoke": "sometimes"}, "com.y"]),
            "wamp.error.invalid_argument",
        ),
        (json!([66, 6, reg]), "wamp.error.no_such_registration"),
        (json!([66, 7, 12345]), "wamp.error.no_such_registration"),
        (
            json!([48, 8, {}, "com.nobody"]),
            "wamp.error.no_such_procedure",
        ),
        (json!([48, 9, {}, "com..bad"]), "wamp.error.invalid_uri"),
        (
            json!([48, 10, {"timeout": -1}, "com.only"]),
            "wamp.error.invalid_argument",
        ),
    ] {
        let (uri, args) = b.expect_error(msg.clone()).await;
        assert_eq!(uri, want, "{msg}");
        assert!(
            args[0].as_str().is_some_and(|s| !s.is_empty()),
            "readable message for {msg}"
        );
    }
    a.send(json!([66, 20, reg])).await;
    assert_eq!(a.recv().await, json!([67, 20]));
    let (uri, _) = b.expect_error(json!([48, 21, {}, "com.only"])).await;
    assert_eq!(uri, "wamp.error.no_such_procedure");
}

#[tokio::test]
async fn pattern_registrations_pick_the_most_specific() {
    let srv = TestServer::start().await;
    let mut exact = srv.joined(Ser::Json).await;
    let mut short = srv.joined(Ser::Json).await;
    let mut long = srv.joined(Ser::Json).await;
    let mut wild = srv.joined(Ser::Json).await;
    exact.register("a1.b2.c3.d4.e55", json!({})).await;
    short.register("a1.b2.c3", json!({"match": "prefix"})).await;
    long.register("a1.b2.c3.d4", json!({"match": "prefix"}))
        .await;
    wild.register("a1.b2..d4.e5", json!({"match": "wildcard"}))
        .await;
    let mut caller = srv.joined(Ser::Json).await;
    let cases: Vec<(&str, usize)> = vec![
        ("a1.b2.c3.d4.e55", 0),
        ("a1.b2.c3.d98.e74", 1),
        ("a1.b2.c3.d4.e325", 2),
        ("a1.b2.c55.d4.e5", 3),
    ];
    for (i, (uri, who)) in cases.into_iter().enumerate() {
        caller.send(json!([48, i + 1, {}, uri, [i]])).await;
        let callees = [&mut exact, &mut short, &mut long, &mut wild];
        let target = callees.into_iter().nth(who).expect("callee");
        let (id, details, args, _) = invocation(target).await;
        assert_eq!(args, json!([i]));
        if who == 0 {
            assert!(details.get("procedure").is_none());
        } else {
            assert_eq!(
                details["procedure"], uri,
                "concrete procedure for pattern registrations"
            );
        }
        target.send(json!([70, id, {}, [uri]])).await;
        assert_eq!(caller.recv().await[3], json!([uri]));
    }
}

#[tokio::test]
async fn shared_registrations_follow_the_invoke_policy() {
    let srv = TestServer::start().await;
    for policy in ["roundrobin", "first", "last", "random"] {
        let proc_ = format!("com.shared.{policy}");
        let mut callees = Vec::new();
        for _ in 0..3 {
            let mut c = srv.joined(Ser::Json).await;
            c.register(&proc_, json!({"invoke": policy})).await;
            callees.push(c);
        }
        let mut caller = srv.joined(Ser::Json).await;
        let mut picked = Vec::new();
        for i in 0..6u64 {
            caller.send(json!([48, i + 1, {}, proc_])).await;
            // Exactly one callee gets it.
            let mut who = None;
            for (n, c) in callees.iter_mut().enumerate() {
                if let Ok(m) = c.next_within(Duration::from_millis(150)).await {
                    assert_eq!(m[0], 68);
                    assert!(who.is_none(), "{policy}: two callees invoked");
                    who = Some(n);
                    c.send(json!([70, m[1], {}, [n]])).await;
                }
            }
            let n = who.expect("one callee invoked");
            assert_eq!(caller.recv().await[3], json!([n]));
            picked.push(n);
        }
        match policy {
            "roundrobin" => assert_eq!(picked, vec![0, 1, 2, 0, 1, 2]),
            "first" => assert_eq!(picked, vec![0; 6]),
            "last" => assert_eq!(picked, vec![2; 6]),
            _ => assert!(picked.iter().all(|n| *n < 3)),
        }
        // When the first callee leaves, "first" moves on to the next one.
        if policy == "first" {
            drop(callees.remove(0));
            tokio::time::sleep(Duration::from_millis(100)).await;
            caller.send(json!([48, 99, {}, proc_])).await;
            let m = callees[0].recv().await;
            callees[0].send(json!([70, m[1], {}, ["next"]])).await;
            assert_eq!(caller.recv().await[3], json!(["next"]));
        }
    }
}

#[tokio::test]
async fn progressive_results() {
    let srv = TestServer::start().await;
    let mut callee = srv.joined(Ser::Cbor).await;
    callee.register("com.stream", json!({})).await;
    let mut caller = srv.joined(Ser::Json).await;
    caller
        .send(json!([48, 1, {"receive_progress": true}, "com.stream"]))
        .await;
    let (id, details, ..) = invocation(&mut callee).await;
    assert_eq!(details["receive_progress"], true);
    for i in 0..3 {
        callee.send(json!([70, id, {"progress": true}, [i]])).await;
    }
    callee.send(json!([70, id, {}, ["done"]])).await;
    for i in 0..3 {
        assert_eq!(caller.recv().await, json!([50, 1, {"progress": true}, [i]]));
    }
    assert_eq!(caller.recv().await, json!([50, 1, {}, ["done"]]));
    // A caller that did not ask gets only the final result.
    caller.send(json!([48, 2, {}, "com.stream"])).await;
    let (id, details, ..) = invocation(&mut callee).await;
    assert!(details.get("receive_progress").is_none());
    callee
        .send(json!([70, id, {"progress": true}, ["ignored"]]))
        .await;
    callee.send(json!([70, id, {}, ["final"]])).await;
    assert_eq!(caller.recv().await, json!([50, 2, {}, ["final"]]));
}

#[tokio::test]
async fn caller_identification() {
    let srv = TestServer::start().await;
    let mut callee = srv.joined(Ser::Json).await;
    callee.register("com.who", json!({})).await;
    let mut callee2 = srv.joined(Ser::Json).await;
    callee2
        .register("com.who2", json!({"disclose_caller": true}))
        .await;
    let mut caller = srv.joined(Ser::Json).await;
    caller
        .send(json!([48, 1, {"disclose_me": true}, "com.who"]))
        .await;
    let (id, details, ..) = invocation(&mut callee).await;
    assert_eq!(details["caller"], caller.session);
    assert_eq!(details["caller_authrole"], "anonymous");
    assert!(details["caller_authid"].is_string());
    callee.send(json!([70, id, {}])).await;
    caller.recv().await;
    caller.send(json!([48, 2, {}, "com.who2"])).await;
    let (_, details, ..) = invocation(&mut callee2).await;
    assert_eq!(
        details["caller"], caller.session,
        "callee asked for disclosure at REGISTER"
    );
}

#[tokio::test]
async fn call_timeout_interrupts_and_answers_timeout() {
    let srv = TestServer::start().await;
    let mut callee = srv.joined(Ser::Json).await;
    callee.register("com.slow", json!({})).await;
    let mut caller = srv.joined(Ser::MsgPack).await;
    caller
        .send(json!([48, 1, {"timeout": 150}, "com.slow"]))
        .await;
    let (id, ..) = invocation(&mut callee).await;
    let e = caller.recv().await;
    assert_eq!(e[0], 8);
    assert_eq!(e[4], "wamp.error.timeout");
    let i = callee.recv().await;
    assert_eq!(i[0], 69, "INTERRUPT to the callee, got {i}");
    assert_eq!(i[1], id);
    // A late answer is discarded.
    callee.send(json!([70, id, {}, ["late"]])).await;
    caller.expect_silence(QUIET).await;
    // A call that finishes in time is not touched by its timer.
    caller
        .send(json!([48, 2, {"timeout": 150}, "com.slow"]))
        .await;
    let (id, ..) = invocation(&mut callee).await;
    callee.send(json!([70, id, {}, ["on time"]])).await;
    assert_eq!(caller.recv().await, json!([50, 2, {}, ["on time"]]));
    caller.expect_silence(Duration::from_millis(300)).await;
    callee.expect_silence(Duration::from_millis(10)).await;
}

#[tokio::test]
async fn cancel_modes() {
    let srv = TestServer::start().await;
    let mut callee = srv.joined(Ser::Json).await;
    callee.register("com.cancel", json!({})).await;
    let mut caller = srv.joined(Ser::Json).await;

    // skip: caller answered at once, callee not interrupted, its result discarded.
    caller.send(json!([48, 1, {}, "com.cancel"])).await;
    let (id, ..) = invocation(&mut callee).await;
    caller.send(json!([49, 1, {"mode": "skip"}])).await;
    assert_eq!(caller.recv().await[4], "wamp.error.canceled");
    callee.expect_silence(QUIET).await;
    callee.send(json!([70, id, {}])).await;
    caller.expect_silence(QUIET).await;

    // kill: INTERRUPT, and the callee's answer is what the caller gets.
    caller.send(json!([48, 2, {}, "com.cancel"])).await;
    let (id, ..) = invocation(&mut callee).await;
    caller.send(json!([49, 2, {"mode": "kill"}])).await;
    let i = callee.recv().await;
    assert_eq!(i, json!([69, id, {"mode": "kill"}]));
    caller.expect_silence(QUIET).await;
    callee
        .send(json!([8, 68, id, {}, "wamp.error.canceled", ["stopped"]]))
        .await;
    assert_eq!(
        caller.recv().await,
        json!([8, 48, 2, {}, "wamp.error.canceled", ["stopped"]])
    );

    // killnowait: caller answered at once, callee interrupted, its answer discarded.
    caller.send(json!([48, 3, {}, "com.cancel"])).await;
    let (id, ..) = invocation(&mut callee).await;
    caller.send(json!([49, 3, {"mode": "killnowait"}])).await;
    assert_eq!(caller.recv().await[4], "wamp.error.canceled");
    assert_eq!(callee.recv().await, json!([69, id, {"mode": "killnowait"}]));
    callee
        .send(json!([8, 68, id, {}, "wamp.error.canceled"]))
        .await;
    caller.expect_silence(QUIET).await;

    // A bad mode is refused with invalid_argument; canceling a finished call is a no-op.
    let (uri, _) = caller
        .expect_error(json!([49, 3, {"mode": "nicely"}]))
        .await;
    assert_eq!(uri, "wamp.error.invalid_argument");
    caller.send(json!([49, 77, {}])).await;
    caller.expect_silence(QUIET).await;
}

#[tokio::test]
async fn callee_without_cancel_support_gets_skip() {
    let srv = TestServer::start().await;
    let mut callee = srv.client(Ser::Json).await;
    callee
        .send(json!([1, "realm1", {"roles": {"callee": {}}}]))
        .await;
    assert_eq!(callee.recv().await[0], 2);
    callee.register("com.nocancel", json!({})).await;
    let mut caller = srv.joined(Ser::Json).await;
    caller.send(json!([48, 1, {}, "com.nocancel"])).await;
    invocation(&mut callee).await;
    caller.send(json!([49, 1, {"mode": "kill"}])).await;
    assert_eq!(caller.recv().await[4], "wamp.error.canceled");
    callee.expect_silence(QUIET).await;
}

#[tokio::test]
async fn callee_leaving_fails_its_calls_and_caller_leaving_interrupts() {
    let srv = TestServer::start().await;
    let mut callee = srv.joined(Ser::Json).await;
    callee.register("com.leave", json!({})).await;
    let mut caller = srv.joined(Ser::Json).await;
    caller.send(json!([48, 1, {}, "com.leave"])).await;
    invocation(&mut callee).await;
    drop(callee);
    let e = caller.recv().await;
    assert_eq!(e[0], 8);
    assert_eq!(e[2], 1);
    assert_eq!(e[4], "wamp.error.canceled");

    let mut callee = srv.joined(Ser::Json).await;
    callee.register("com.leave", json!({})).await;
    let mut caller2 = srv.joined(Ser::Json).await;
    caller2.send(json!([48, 1, {}, "com.leave"])).await;
    let (id, ..) = invocation(&mut callee).await;
    drop(caller2);
    let i = callee.recv().await;
    assert_eq!(i[0], 69);
    assert_eq!(i[1], id);
    assert_eq!(i[2]["mode"], "killnowait");
}

#[tokio::test]
async fn duplicate_call_request_ids_in_flight_are_refused() {
    let srv = TestServer::start().await;
    let mut callee = srv.joined(Ser::Json).await;
    callee.register("com.dup", json!({})).await;
    let mut caller = srv.joined(Ser::Json).await;
    caller.send(json!([48, 1, {}, "com.dup"])).await;
    invocation(&mut callee).await;
    let (uri, _) = caller.expect_error(json!([48, 1, {}, "com.dup"])).await;
    assert_eq!(uri, "wamp.error.invalid_argument");
}
