//! The load tool's scenarios at a small scale against the real server: correctness only
//! (everything established, nothing lost, JSON well-formed) — never timing.

use crate::support::*;
use clap::Parser;
use switchboard::bench::{execute, BenchCommand};

#[derive(Parser)]
struct Cli {
    #[command(subcommand)]
    cmd: BenchCommand,
}

async fn bench(srv: &TestServer, args: &[&str]) -> serde_json::Value {
    let url = srv.ws_url();
    let dir = tempfile::tempdir().expect("tempdir");
    let json = dir.path().join("result.json");
    let mut argv = vec!["switchboard-bench"];
    argv.extend_from_slice(args);
    if !args.contains(&"--url") {
        argv.extend_from_slice(&["--url", &url]);
    }
    argv.extend_from_slice(&[
        "--max-secs",
        "60",
        "--json",
        json.to_str().expect("utf8 path"),
    ]);
    let cmd = Cli::try_parse_from(argv).expect("arguments parse").cmd;
    let value = execute(cmd).await.expect("scenario runs");
    let written: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).expect("json written"))
            .expect("valid JSON");
    // The file holds the same result (floats compared after the same text round trip).
    let reparsed: serde_json::Value = serde_json::from_str(&value.to_string()).expect("valid JSON");
    assert_eq!(
        written.to_string(),
        reparsed.to_string(),
        "the JSON file holds the result"
    );
    value
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_scenario_establishes_every_session() {
    let srv = TestServer::start().await;
    let r = bench(
        &srv,
        &[
            "connections",
            "-n",
            "200",
            "--hold",
            "0",
            "--message-bytes",
            "2000",
            "--per-source",
            "120",
        ],
    )
    .await;
    assert_eq!(r["established"], 200, "{r}");
    assert_eq!(r["processes"], 1, "{r}");
    assert_eq!(r["failed"], 0, "{r}");
    assert_eq!(r["messages_acknowledged"], 200, "{r}");
    assert_eq!(r["latency"]["count"], 200);
    assert!(
        r["server_held"]["rss_bytes"].as_u64().is_some(),
        "server memory read from /api/status: {r}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_one_process_are_spread_over_worker_processes() {
    let srv = TestServer::start().await;
    let exe = env!("CARGO_BIN_EXE_switchboard");
    let r = bench(
        &srv,
        &[
            "connections",
            "-n",
            "250",
            "--per-process",
            "100",
            "--hold",
            "0",
            "--message-bytes",
            "100",
            "--worker-exe",
            exe,
        ],
    )
    .await;
    assert_eq!(r["processes"], 3, "{r}");
    assert_eq!(r["established"], 250, "{r}");
    assert_eq!(r["failed"], 0, "{r}");
    assert_eq!(r["messages_acknowledged"], 250, "{r}");
    assert_eq!(r["latency"]["count"], 250);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fanout_scenario_loses_nothing_below_saturation() {
    let srv = TestServer::start().await;
    for ser in ["json", "msgpack", "cbor"] {
        let r = bench(
            &srv,
            &[
                "fanout",
                "-s",
                "40",
                "-p",
                "2",
                "-r",
                "200",
                "-t",
                "1",
                "--serializer",
                ser,
            ],
        )
        .await;
        assert_eq!(r["subscribers_established"], 40, "{r}");
        assert!(r["published"].as_u64().unwrap_or(0) > 0, "{r}");
        assert_eq!(r["lost"], 0, "{ser}: {r}");
        assert_eq!(r["delivered"], r["expected_deliveries"], "{r}");
        assert_eq!(
            r["latency"]["count"], r["delivered"],
            "every event carried its timestamp"
        );
    }
    let r = bench(&srv, &["fanout", "-s", "20", "-r", "0", "-t", "1"]).await;
    assert_eq!(r["lost"], 0, "closed-loop publishing: {r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rpc_scenario_answers_every_call() {
    let srv = TestServer::start().await;
    let r = bench(&srv, &["rpc", "-k", "2", "-c", "4", "-w", "5", "-t", "1"]).await;
    assert_eq!(r["errors"], 0, "{r}");
    assert!(r["calls"].as_u64().unwrap_or(0) > 0, "{r}");
    assert!(r["first_error"].is_null(), "{r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn churn_scenario_completes_cycles_and_leaves_nothing_behind() {
    let srv = TestServer::start().await;
    let r = bench(&srv, &["churn", "-c", "4", "-t", "2"]).await;
    assert_eq!(r["failed"], 0, "{r}");
    assert!(r["cycles"].as_u64().unwrap_or(0) > 0, "{r}");
    // CPU figures: the server's (from /api/status) and the load tool's own.
    assert!(r["server_cpu_seconds"].as_f64().unwrap_or(0.0) > 0.0, "{r}");
    assert!(
        r["cycles_per_server_cpu_second"].as_f64().unwrap_or(0.0) > 0.0,
        "{r}"
    );
    assert!(
        r["load_tool_cpu_seconds"].as_f64().unwrap_or(0.0) > 0.0,
        "{r}"
    );
    for _ in 0..200 {
        if srv.status().await["sessions"] == 0 {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("sessions left behind after churn: {}", srv.status().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scenarios_run_over_rawsocket_too() {
    let srv =
        TestServer::with(|o| o.rawsocket_tcp = Some("127.0.0.1:0".parse().expect("addr"))).await;
    let raw = format!(
        "rs://{}",
        srv.running
            .as_ref()
            .and_then(|r| r.rawsocket_addr)
            .expect("rawsocket")
    );
    let pid = std::process::id().to_string();
    for ser in ["json", "msgpack", "cbor"] {
        let r = bench(
            &srv,
            &[
                "fanout",
                "--url",
                &raw,
                "--pid",
                &pid,
                "-s",
                "20",
                "-r",
                "100",
                "-t",
                "1",
                "--serializer",
                ser,
            ],
        )
        .await;
        assert_eq!(r["subscribers_established"], 20, "{r}");
        assert_eq!(r["lost"], 0, "{ser}: {r}");
        assert!(r["delivered"].as_u64().unwrap_or(0) > 0, "{r}");
    }
    let r = bench(
        &srv,
        &[
            "rpc",
            "--url",
            &raw,
            "--pid",
            &pid,
            "-c",
            "3",
            "-w",
            "4",
            "-t",
            "1",
            "--serializer",
            "msgpack",
        ],
    )
    .await;
    assert_eq!(r["errors"], 0, "{r}");
    assert!(r["calls"].as_u64().unwrap_or(0) > 0, "{r}");
    let r = bench(
        &srv,
        &[
            "connections",
            "--url",
            &raw,
            "--pid",
            &pid,
            "-n",
            "50",
            "--hold",
            "0",
        ],
    )
    .await;
    assert_eq!(r["established"], 50, "{r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scenarios_authenticate_with_ticket_and_wampcra() {
    let loaded = switchboard::config::crossbar::parse(
        crate::auth::AUTH_CONFIG,
        false,
        "auth.json",
        switchboard::config::Limits::default(),
    )
    .expect("config");
    let srv = TestServer::with(move |o| o.node = loaded.node).await;
    let r = bench(
        &srv,
        &[
            "connections",
            "-n",
            "30",
            "--hold",
            "0",
            "--authmethod",
            "ticket",
            "--authid",
            "ops",
            "--secret",
            "ops-ticket",
        ],
    )
    .await;
    assert_eq!(r["established"], 30, "{r}");
    let r = bench(
        &srv,
        &[
            "rpc",
            "-c",
            "2",
            "-w",
            "2",
            "-t",
            "1",
            "--authmethod",
            "wampcra",
            "--authid",
            "dave",
            "--secret",
            "secret123",
        ],
    )
    .await;
    assert_eq!(r["errors"], 0, "{r}");
    assert!(
        r["calls"].as_u64().unwrap_or(0) > 0,
        "salted WAMP-CRA sessions call: {r}"
    );
    let r = bench(
        &srv,
        &[
            "connections",
            "-n",
            "5",
            "--hold",
            "0",
            "--authmethod",
            "ticket",
            "--authid",
            "ops",
            "--secret",
            "wrong",
        ],
    )
    .await;
    assert_eq!(r["failed"], 5, "{r}");
    assert!(
        r["first_error"]
            .as_str()
            .unwrap_or("")
            .contains("not_authorized"),
        "{r}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_scenario_acknowledges_and_delivers_every_message() {
    // A load test needs more than a person's 60 messages a minute.
    let srv = TestServer::with(|o| {
        if let Some(chat) = o.node.router.chat.as_mut() {
            chat.messages_per_minute = 1_000_000;
        }
    })
    .await;
    let url = format!("ws://{}/chat", srv.addr);
    for mode in [["-r", "200"], ["-r", "0"]] {
        let r = bench(
            &srv,
            &[
                "chat", "--url", &url, "-n", "20", mode[0], mode[1], "-t", "2",
            ],
        )
        .await;
        assert_eq!(r["scenario"], "chat");
        assert_eq!(r["errors"], 0, "{r}");
        let sent = r["sent"].as_u64().expect("sent");
        assert!(sent >= 20, "every visitor sent: {r}");
        assert_eq!(r["acknowledged"], sent, "every send acknowledged: {r}");
        assert_eq!(r["received"], sent, "every message received: {r}");
        assert!(r["ack_latency"]["p99_us"].as_u64().is_some(), "{r}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_scenario_as_chat_visitors() {
    let srv = TestServer::start().await;
    let url = format!("ws://{}/chat", srv.addr);
    let r = bench(
        &srv,
        &[
            "connections",
            "--url",
            &url,
            "--chat",
            "-n",
            "50",
            "--hold",
            "0",
        ],
    )
    .await;
    assert_eq!(r["established"], 50, "{r}");
    assert_eq!(
        r["failed"], 0,
        "{r}: each opened its thread and subscribed to it"
    );
}
