//! `switchboard bench`: the load tool (a WAMP client, not the server).
//!
//! Scenarios so far: `connections` — open N sessions (HELLO + one SUBSCRIBE each) at a given
//! rate, hold them, report connect-to-WELCOME latency and the server's memory per session,
//! optionally after every session sent one message of a given size. Every run is bounded in
//! time and refuses targets outside loopback unless `--allow-remote`.

mod client;
mod report;

use clap::{Args, Subcommand};
use std::net::IpAddr;
use std::time::Duration;

#[derive(Subcommand, Debug)]
pub enum BenchCommand {
    /// Open N sessions (HELLO + SUBSCRIBE), hold them, report latency and server memory.
    Connections(ConnectionsArgs),
}

#[derive(Args, Debug, Clone)]
pub struct Common {
    /// WAMP WebSocket URL of the router under test.
    #[arg(long, default_value = "ws://127.0.0.1:8080/ws")]
    pub url: String,
    /// Realm to join.
    #[arg(long, default_value = "realm1")]
    pub realm: String,
    /// Serializer: json, msgpack or cbor.
    #[arg(long, default_value = "json")]
    pub serializer: String,
    /// Pid of the server, to read its memory (RSS) from /proc.
    #[arg(long)]
    pub pid: Option<u32>,
    /// Write the result as JSON to this file.
    #[arg(long, value_name = "FILE")]
    pub json: Option<std::path::PathBuf>,
    /// Allow a target outside loopback.
    #[arg(long)]
    pub allow_remote: bool,
    /// Hard limit on the whole run, in seconds.
    #[arg(long, default_value_t = 600)]
    pub max_secs: u64,
}

#[derive(Args, Debug, Clone)]
pub struct ConnectionsArgs {
    #[command(flatten)]
    pub common: Common,
    /// Number of sessions.
    #[arg(short = 'n', long, default_value_t = 1000)]
    pub sessions: usize,
    /// New connections per second.
    #[arg(long, default_value_t = 2000)]
    pub rate: u32,
    /// Seconds to hold the sessions once all are up.
    #[arg(long, default_value_t = 5)]
    pub hold: u64,
    /// After the first measurement, every session publishes one message of this many bytes,
    /// then memory is measured again (shows whether per-connection buffers shrink).
    #[arg(long, value_name = "BYTES")]
    pub message_bytes: Option<usize>,
}

pub fn run(cmd: BenchCommand) -> std::process::ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("switchboard bench: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cmd {
            BenchCommand::Connections(a) => {
                check_target(&a.common)?;
                let max = Duration::from_secs(a.common.max_secs);
                match tokio::time::timeout(max, client::connections(a.clone())).await {
                    Ok(r) => r,
                    Err(_) => Err(format!(
                        "the run did not finish within --max-secs {}",
                        a.common.max_secs
                    )),
                }
            }
        }
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("switchboard bench: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn check_target(c: &Common) -> Result<(), String> {
    let rest = c
        .url
        .strip_prefix("ws://")
        .or_else(|| c.url.strip_prefix("wss://"))
        .ok_or_else(|| format!("--url must start with ws:// or wss://, got '{}'", c.url))?;
    let host = rest.split('/').next().unwrap_or("");
    let host = host
        .rsplit_once(':')
        .map_or(host, |(h, _)| h)
        .trim_matches(['[', ']']);
    let loopback = host == "localhost" || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
    if !loopback && !c.allow_remote {
        return Err(format!(
            "refusing to load '{host}', which is not loopback (pass --allow-remote to insist)"
        ));
    }
    Ok(())
}

/// Reads a process's resident memory in bytes from /proc.
pub fn rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}
