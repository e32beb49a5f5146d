//! `switchboard chat export|forget VISITOR`: through a running server's admin socket, and
//! straight from the store once the server has stopped.

use crate::chat::{chat, config, open_thread, server_with, staff, visitor, TOKEN_A, TOKEN_B};
use serde_json::{json, Value};
use std::path::Path;
use std::process::Command;

fn cli(dir: &Path, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .arg("chat")
        .args(args)
        .arg("--data-dir")
        .arg(dir)
        .env_remove("SWITCHBOARD_DATA_DIR")
        .output()
        .expect("binary runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_and_forget_one_visitor_live_and_offline() {
    let srv = server_with(&config(0)).await;
    let dir = srv.data_dir().to_path_buf();
    let mut a = visitor(&srv, TOKEN_A).await;
    let (a_id, a_thread) = open_thread(&mut a).await;
    chat(&mut a, "send", json!([a_thread, "hello export"]), json!({})).await;
    let mut b = visitor(&srv, TOKEN_B).await;
    let (_, b_thread) = open_thread(&mut b).await;
    chat(&mut b, "send", json!([b_thread, "bee's words"]), json!({})).await;

    // Live, through the admin socket.
    let (ok, out, err) = tokio::task::block_in_place(|| cli(&dir, &["export", &a_id]));
    assert!(ok, "{err}");
    let export: Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(export["visitor"], a_id);
    assert_eq!(export["threads"].as_array().map(Vec::len), Some(1));
    assert_eq!(export["threads"][0]["messages"][0]["text"], "hello export");
    assert!(
        !out.contains("bee's words"),
        "only this visitor's data: {out}"
    );

    let (ok, out, err) = tokio::task::block_in_place(|| cli(&dir, &["forget", &a_id]));
    assert!(ok, "{err}");
    assert!(out.contains("deleted 1 thread"), "{out}");
    // The running service forgot it too: no thread for the visitor, none in the inbox.
    let mut agent = staff(&srv).await;
    let inbox = chat(&mut agent, "threads", json!([]), json!({})).await;
    let ids: Vec<u64> = inbox
        .as_array()
        .map(|l| l.iter().filter_map(|t| t["thread"].as_u64()).collect())
        .unwrap_or_default();
    assert!(
        !ids.contains(&a_thread) && ids.contains(&b_thread),
        "{inbox}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_and_forget_offline_after_the_server_stopped() {
    use std::io::BufRead;
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("data");
    let mut server = Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .args(["--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&dir)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("server starts");
    let mut line = String::new();
    std::io::BufReader::new(server.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("ready line");
    let addr = line
        .trim()
        .strip_prefix("switchboard listening on http://")
        .expect("ready line")
        .to_owned();
    let mut b = crate::chat::login(&format!("ws://{addr}/chat"), TOKEN_B).await;
    let (b_id, b_thread) = open_thread(&mut b).await;
    chat(&mut b, "send", json!([b_thread, "bee's words"]), json!({})).await;
    drop(b);
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(server.id().to_string())
        .status();
    let _ = tokio::task::block_in_place(|| server.wait());

    let (ok, out, err) = tokio::task::block_in_place(|| cli(&dir, &["export", &b_id]));
    assert!(ok, "{err}");
    assert!(out.contains("bee's words"), "{out}");
    let (ok, out, _) = tokio::task::block_in_place(|| cli(&dir, &["forget", &b_id]));
    assert!(ok && out.contains("deleted 1 thread"), "{out}");
    let (_, out, _) = tokio::task::block_in_place(|| cli(&dir, &["export", &b_id]));
    let export: Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(export["threads"], json!([]));
    let (ok, _, err) =
        tokio::task::block_in_place(|| cli(&tmp.path().join("nothing"), &["export", &b_id]));
    assert!(!ok && err.contains("no data directory"), "{err}");
}
