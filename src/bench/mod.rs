//! `switchboard bench`: the load tool — a WAMP client of the router under test (Switchboard or
//! any other router), never the server's code path.
//!
//! Scenarios: `connections` (idle sessions and their memory), `fanout` (events to many
//! subscribers: throughput, latency, loss), `rpc` (calls with outstanding windows), `churn`
//! (connect/subscribe/publish/disconnect loops and memory growth). Every run is bounded in time
//! (`--max-secs`) and refuses targets outside loopback unless `--allow-remote`. Server memory
//! and CPU come from /proc (`--pid`) or from Switchboard's `/api/status`.

pub mod chat;
pub mod churn;
pub mod connections;
pub mod fanout;
mod probe;
pub mod report;
pub mod rpc;
pub mod wampc;

use clap::{Args, Subcommand};
use std::io::IsTerminal;
use std::net::IpAddr;
use std::time::Duration;

#[derive(Subcommand, Debug)]
pub enum BenchCommand {
    /// Open N sessions (HELLO + SUBSCRIBE), hold them, report latency and server memory.
    Connections(connections::ConnectionsArgs),
    /// S subscribers, P publishers at a rate: events/s delivered, loss, latency.
    Fanout(fanout::FanoutArgs),
    /// Callers with outstanding calls against callees: calls/s and latency.
    Rpc(rpc::RpcArgs),
    /// Connect/subscribe/publish/disconnect loops: cycles/s and server memory growth.
    Churn(churn::ChurnArgs),
    /// Website visitors sending durable chat messages: acknowledged/s, ack and receive latency.
    Chat(chat::ChatArgs),
}

#[derive(Args, Debug, Clone)]
pub struct Common {
    /// The router under test: ws://HOST:PORT/PATH (WebSocket) or rs://HOST:PORT (RawSocket).
    #[arg(long, default_value = "ws://127.0.0.1:8080/ws")]
    pub url: String,
    /// Realm to join.
    #[arg(long, default_value = "realm1")]
    pub realm: String,
    /// Serializer: json, msgpack or cbor.
    #[arg(long, default_value = "json")]
    pub serializer: String,
    /// Pid of the server, to read its memory and CPU time from /proc (default: its /api/status).
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
    /// Authenticate every session with this method (ticket or wampcra).
    #[arg(long, requires = "authid")]
    pub authmethod: Option<String>,
    /// The authid to authenticate as.
    #[arg(long)]
    pub authid: Option<String>,
    /// The ticket or WAMP-CRA secret (better from the environment than the command line).
    #[arg(long, env = "SWITCHBOARD_BENCH_SECRET", hide_env_values = true)]
    pub secret: Option<String>,
}

impl Common {
    /// What each session joins with.
    pub fn join_spec(&self) -> wampc::Join {
        wampc::Join {
            realm: self.realm.clone(),
            authmethod: self.authmethod.clone(),
            authid: self.authid.clone(),
            secret: self.secret.clone(),
        }
    }
}

impl BenchCommand {
    fn common(&self) -> &Common {
        match self {
            BenchCommand::Connections(a) => &a.common,
            BenchCommand::Fanout(a) => &a.common,
            BenchCommand::Rpc(a) => &a.common,
            BenchCommand::Churn(a) => &a.common,
            BenchCommand::Chat(a) => &a.common,
        }
    }
}

/// Runs a scenario and returns its result as JSON (after printing the human summary).
pub async fn execute(cmd: BenchCommand) -> Result<serde_json::Value, String> {
    let common = cmd.common().clone();
    check_target(&common)?;
    if let BenchCommand::Connections(a) = &cmd {
        if let Some(start) = a.worker_slice {
            connections::worker(a.clone(), start).await?;
            return Ok(serde_json::Value::Null);
        }
    }
    let max = Duration::from_secs(common.max_secs);
    let run = async {
        let v = match cmd {
            BenchCommand::Connections(a) => summarize(
                connections::run(a).await?,
                connections::ConnectionsResult::print,
            ),
            BenchCommand::Fanout(a) => {
                summarize(fanout::run(a).await?, fanout::FanoutResult::print)
            }
            BenchCommand::Rpc(a) => summarize(rpc::run(a).await?, rpc::RpcResult::print),
            BenchCommand::Churn(a) => summarize(churn::run(a).await?, churn::ChurnResult::print),
            BenchCommand::Chat(a) => summarize(chat::run(a).await?, chat::ChatResult::print),
        };
        v.map_err(|e| e.to_string())
    };
    let value = tokio::time::timeout(max, run).await.map_err(|_| {
        format!(
            "the run did not finish within --max-secs {}",
            common.max_secs
        )
    })??;
    if let Some(path) = &common.json {
        let text = serde_json::to_string_pretty(&value).map_err(|e| e.to_string())?;
        std::fs::write(path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    Ok(value)
}

/// Prints a result for people and turns it into JSON.
fn summarize<R: serde::Serialize>(
    r: R,
    print: fn(&R),
) -> Result<serde_json::Value, serde_json::Error> {
    print(&r);
    serde_json::to_value(&r)
}

/// Entry point of `switchboard bench`.
pub fn run(cmd: BenchCommand) -> std::process::ExitCode {
    raise_fd_limit();
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
    match runtime.block_on(execute(cmd)) {
        Ok(_) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("switchboard bench: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Raises the soft open-file limit to the hard limit, and says what the limit allows.
fn raise_fd_limit() {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(n) => eprintln!(
            "switchboard bench: open-file limit {n} (about {} connections per process)",
            n.saturating_sub(100)
        ),
        Err(e) => eprintln!("switchboard bench: could not raise the open-file limit: {e}"),
    }
}

fn check_target(c: &Common) -> Result<(), String> {
    let rest = c
        .url
        .strip_prefix("ws://")
        .or_else(|| c.url.strip_prefix("rs://"))
        .ok_or_else(|| {
            format!(
                "--url must start with ws:// (WebSocket) or rs:// (RawSocket over TCP), got '{}'",
                c.url
            )
        })?;
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

/// A live progress bar on a terminal, a plain line per second otherwise.
pub struct Progress {
    bar: Option<indicatif::ProgressBar>,
    what: &'static str,
    last: std::sync::Mutex<std::time::Instant>,
}

impl Progress {
    pub fn new(what: &'static str, total: u64) -> Progress {
        let bar = std::io::stderr().is_terminal().then(|| {
            let b = indicatif::ProgressBar::new(total);
            if let Ok(style) = indicatif::ProgressStyle::with_template(
                "{spinner} {elapsed_precise} [{bar:40}] {pos}/{len} {msg}",
            ) {
                b.set_style(style);
            }
            b
        });
        Progress {
            bar,
            what,
            last: std::sync::Mutex::new(std::time::Instant::now()),
        }
    }

    pub fn set(&self, pos: u64, msg: &str) {
        match &self.bar {
            Some(b) => {
                b.set_position(pos);
                b.set_message(msg.to_owned());
            }
            None => {
                if let Ok(mut last) = self.last.lock() {
                    if last.elapsed() >= Duration::from_secs(1) {
                        eprintln!("  {}: {msg}", self.what);
                        *last = std::time::Instant::now();
                    }
                }
            }
        }
    }

    pub fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct T {
        #[command(subcommand)]
        cmd: BenchCommand,
    }

    #[test]
    fn remote_targets_are_refused_unless_allowed() {
        let parse = |args: &[&str]| T::try_parse_from(args).map(|t| t.cmd.common().clone());
        let c = parse(&["t", "fanout", "--url", "ws://10.0.0.5:8080/ws"]).unwrap();
        assert!(check_target(&c).unwrap_err().contains("not loopback"));
        let c = parse(&[
            "t",
            "fanout",
            "--url",
            "ws://10.0.0.5:8080/ws",
            "--allow-remote",
        ])
        .unwrap();
        assert!(check_target(&c).is_ok());
        for ok in [
            "ws://127.0.0.1:1/ws",
            "ws://localhost:1/ws",
            "ws://127.9.9.9:1/ws",
            "ws://[::1]:1/ws",
        ] {
            let c = parse(&["t", "rpc", "--url", ok]).unwrap();
            assert!(check_target(&c).is_ok(), "{ok}");
        }
        let c = parse(&["t", "churn", "--url", "http://127.0.0.1/"]).unwrap();
        assert!(check_target(&c).is_err());
    }

    #[test]
    fn source_addresses_spread_over_loopback() {
        assert_eq!(wampc::source_for(0, 100), None);
        assert_eq!(wampc::source_for(99, 100), None);
        assert_eq!(
            wampc::source_for(100, 100),
            Some(IpAddr::from([127, 0, 0, 2]))
        );
        assert_eq!(
            wampc::source_for(300, 100),
            Some(IpAddr::from([127, 0, 0, 4]))
        );
    }
}
