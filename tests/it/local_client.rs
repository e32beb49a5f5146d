//! The router-internal session (`LocalClient`) that built-in components use: it publishes,
//! subscribes and calls through the same broker and dealer as remote clients.

use crate::support::*;
use serde_json::json;
use std::time::Duration;
use switchboard::wamp::Value;

#[tokio::test]
async fn local_session_publishes_subscribes_and_calls() {
    let srv = TestServer::start().await;
    let router = srv.running.as_ref().expect("running").router.clone();
    let local = router.local_client("realm1", None).expect("realm1 exists");

    // A remote publication reaches a local subscription (pattern: the topic comes along).
    let (_sub, mut events) = local
        .subscribe(
            "com.local.",
            vec![("match".into(), Value::Str("prefix".into()))],
            8,
        )
        .await
        .expect("subscribed");
    let mut remote = srv.joined(Ser::Json).await;
    let r = remote.request_id();
    remote
        .send(json!([16, r, {"acknowledge": true}, "com.local.news", ["hello"], {"n": 1}]))
        .await;
    assert_eq!(remote.recv().await[0], 17);
    let ev = tokio::time::timeout(Duration::from_secs(5), events.recv())
        .await
        .expect("event in time")
        .expect("channel open");
    assert_eq!(ev.topic, "com.local.news");
    assert_eq!(ev.payload.args, Some(vec![Value::Str("hello".into())]));

    // A local publication reaches a remote subscriber.
    let sub = remote.subscribe("com.remote.feed", json!({})).await;
    let publication = local
        .publish("com.remote.feed", vec![Value::UInt(7)], vec![], vec![])
        .await
        .expect("published");
    let ev = remote.recv().await;
    assert_eq!(ev[0], 36);
    assert_eq!(ev[1], sub);
    assert_eq!(ev[2], publication);
    assert_eq!(ev[4], json!([7]));

    // A local call reaches a remote callee and comes back.
    remote.register("com.remote.add", json!({})).await;
    let call = local.call(
        "com.remote.add",
        vec![Value::UInt(2), Value::UInt(3)],
        vec![],
        Duration::from_secs(5),
    );
    let answer = async {
        let inv = remote.recv().await;
        assert_eq!(inv[0], 68);
        remote.send(json!([70, inv[1], {}, [5]])).await;
    };
    let (result, ()) = tokio::join!(call, answer);
    assert_eq!(result.expect("result").args, Some(vec![Value::UInt(5)]));

    // Refusals come back as errors, not hangs.
    let e = local
        .call("com.nobody.home", vec![], vec![], Duration::from_secs(5))
        .await
        .expect_err("no callee");
    assert_eq!(e.uri, "wamp.error.no_such_procedure");
    let e = local
        .publish("wamp.reserved", vec![], vec![], vec![])
        .await
        .expect_err("reserved topic");
    assert_eq!(e.uri, "wamp.error.invalid_uri");
}

#[tokio::test]
async fn local_session_serves_procedures_with_the_caller_disclosed() {
    use switchboard::router::local::{CallFailure, Handler};
    use switchboard::wamp::Payload;
    let srv = TestServer::start().await;
    let router = srv.running.as_ref().expect("running").router.clone();
    let local = router.local_client("realm1", None).expect("realm1");
    let handler: Handler = std::sync::Arc::new(|inv| {
        Box::pin(async move {
            let (session, authid, role) = inv
                .caller()
                .ok_or_else(|| CallFailure::new("com.test.no_caller", "caller not disclosed"))?;
            match inv.payload.args.as_deref() {
                Some([Value::Str(s)]) if s == "fail" => {
                    Err(CallFailure::new("com.test.failed", "asked to fail"))
                }
                _ => Ok(Payload::args(vec![
                    Value::UInt(session),
                    Value::Str(authid.to_owned()),
                    Value::Str(role.to_owned()),
                    Value::Str(inv.procedure.clone()),
                ])),
            }
        })
    });
    local
        .register("com.local.whoami", vec![], handler)
        .await
        .expect("registered");
    let mut remote = srv.joined(Ser::Json).await;
    let r = remote.request_id();
    remote
        .send(json!([48, r, {}, "com.local.whoami", []]))
        .await;
    let m = remote.recv().await;
    assert_eq!(m[0], 50, "{m}");
    assert_eq!(m[3][0], remote.session);
    assert_eq!(m[3][2], "anonymous");
    assert_eq!(m[3][3], "com.local.whoami");
    let r = remote.request_id();
    let (uri, args) = remote
        .expect_error(json!([48, r, {}, "com.local.whoami", ["fail"]]))
        .await;
    assert_eq!(uri, "com.test.failed");
    assert_eq!(args, json!(["asked to fail"]));
}
