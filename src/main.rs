//! The `switchboard` binary: parse the command line, start the server, wait for a signal,
//! shut down in order.

use clap::Parser;
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;
use switchboard::app::{self, Options};
use switchboard::config::{crossbar, Limits, NodeConfig};

/// A WAMP v2 router, live chat and WebRTC signalling relay in one binary.
#[derive(Parser, Debug)]
#[command(name = "switchboard", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// Crossbar-style node config (JSON, or TOML by extension); without it the development
    /// default runs on --listen.
    #[arg(long, value_name = "FILE", env = "SWITCHBOARD_CONFIG")]
    config: Option<PathBuf>,
    /// Address for HTTP and WebSocket (WAMP at /ws) of the zero-config default.
    #[arg(long, default_value = "127.0.0.1:8080", env = "SWITCHBOARD_LISTEN")]
    listen: SocketAddr,
    /// Directory of the embedded data store.
    #[arg(
        long,
        default_value = "./switchboard-data",
        env = "SWITCHBOARD_DATA_DIR"
    )]
    data_dir: PathBuf,
    /// Also serve WAMP over RawSocket (TCP) on this address.
    #[arg(long, value_name = "ADDR")]
    rawsocket_listen: Option<SocketAddr>,
    /// Also serve WAMP over RawSocket on this Unix-domain socket.
    #[arg(long, value_name = "PATH")]
    rawsocket_unix: Option<PathBuf>,
    /// Serve a plain WebSocket echo endpoint at this path (for the Autobahn Testsuite).
    #[arg(long, value_name = "PATH")]
    ws_echo_path: Option<String>,
    /// Largest WAMP message accepted, in bytes (fragmented messages included).
    #[arg(long, default_value_t = 1 << 20, value_name = "BYTES")]
    max_message_size: usize,
    /// Bytes that may wait in one connection's outbound queue before it is cut off as slow.
    #[arg(long, default_value_t = 1 << 20, value_name = "BYTES")]
    max_queue_bytes: usize,
    /// Seconds between keep-alive pings to an idle peer (0 turns keep-alive off).
    #[arg(long, default_value_t = 30, value_name = "SECS")]
    ping_interval: u64,
    /// Seconds a ping may go unanswered before the peer is dropped.
    #[arg(long, default_value_t = 30, value_name = "SECS")]
    ping_timeout: u64,
    /// Seconds a new connection has to send HELLO.
    #[arg(long, default_value_t = 10, value_name = "SECS")]
    hello_timeout: u64,
    /// Milliseconds outbound frames may wait to be written together (0: at once).
    #[arg(long, default_value_t = 0, value_name = "MS")]
    write_delay_ms: u64,
    /// Milliseconds a dynamic authenticator or authorizer may take to answer.
    #[arg(long, default_value_t = 5000, value_name = "MS")]
    auth_timeout_ms: u64,
    /// Run the STUN server for calls on this UDP address (e.g. 0.0.0.0:3478).
    #[arg(long, value_name = "ADDR")]
    stun_listen: Option<SocketAddr>,
    /// Chat messages a visitor may send per minute (overrides the config; default 60).
    #[arg(long, value_name = "N")]
    chat_messages_per_minute: Option<u32>,
    /// sled page cache, in MiB.
    #[arg(long, default_value_t = 16, value_name = "MIB")]
    cache_mb: u64,
    /// Log lines on stderr: readable text, or one JSON object per line.
    #[arg(long, value_enum, default_value_t = LogFormat::Text, env = "SWITCHBOARD_LOG_FORMAT")]
    log_format: LogFormat,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum LogFormat {
    Text,
    Json,
}

/// Logs go to stderr through `tracing`, filtered by `RUST_LOG` (default `info`). No log line
/// carries a secret: tickets, passwords, keys, signatures and request bodies are never fields.
fn init_logging(format: LogFormat) {
    let filter =
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    let fmt = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => fmt
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
        LogFormat::Json => fmt.json().flatten_event(true).init(),
    }
}

#[derive(clap::Subcommand, Debug)]
// Parsed once at start-up; the size difference between variants costs nothing.
#[allow(clippy::large_enum_variant)]
enum Command {
    /// Load tool: measure a router's connection capacity and speed.
    #[command(subcommand)]
    Bench(switchboard::bench::BenchCommand),
    /// Validate a config file without starting: prints its warnings, exits 1 if it is wrong.
    CheckConfig {
        /// Crossbar-style config, JSON or TOML (by extension).
        file: PathBuf,
    },
    /// Manage the built-in users (SCRAM / WAMP-CRA principals) in the data store.
    #[command(subcommand)]
    User(switchboard::cli_user::UserCommand),
    /// Write a consistent backup of the data store to FILE — through the running server's admin
    /// socket, or from the store itself when no server runs.
    Backup {
        /// The backup file to write (replaced only once the new one is complete).
        file: PathBuf,
        #[command(flatten)]
        store: switchboard::cli_user::DataDir,
    },
    /// Restore a backup into the data directory (the server must be stopped). The file is
    /// verified before anything is written.
    Restore {
        /// A file written by `switchboard backup`.
        file: PathBuf,
        #[command(flatten)]
        store: switchboard::cli_user::DataDir,
        /// Replace the data directory's contents even if it holds data.
        #[arg(long)]
        force: bool,
    },
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Bench(cmd)) => return switchboard::bench::run(cmd),
        Some(Command::CheckConfig { file }) => return check_config(&file),
        Some(Command::User(cmd)) => return switchboard::cli_user::main(cmd),
        Some(Command::Backup { file, store }) => {
            return switchboard::cli_backup::backup_main(&file, &store.data_dir)
        }
        Some(Command::Restore { file, store, force }) => {
            return switchboard::cli_backup::restore_main(&file, &store.data_dir, force)
        }
        None => {}
    }
    init_logging(cli.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("switchboard: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    runtime.block_on(run(cli))
}

async fn run(cli: Cli) -> std::process::ExitCode {
    let limits = Limits {
        max_message_size: cli.max_message_size,
        max_queue_bytes: cli.max_queue_bytes,
        ping_interval: (cli.ping_interval > 0).then(|| Duration::from_secs(cli.ping_interval)),
        ping_timeout: Duration::from_secs(cli.ping_timeout.max(1)),
        hello_timeout: Duration::from_secs(cli.hello_timeout.max(1)),
        write_delay: Duration::from_millis(cli.write_delay_ms),
        auth_timeout: Duration::from_millis(cli.auth_timeout_ms.max(1)),
    };
    let mut opts = Options::development(cli.listen, cli.data_dir);
    match &cli.config {
        Some(file) => match crossbar::load(file, limits) {
            Ok(loaded) => {
                for w in &loaded.warnings {
                    tracing::warn!("{w}");
                }
                opts.node = loaded.node;
            }
            Err(e) => {
                eprintln!("switchboard: {e}");
                return std::process::ExitCode::FAILURE;
            }
        },
        None => {
            opts.node = NodeConfig::development(cli.listen, limits);
            tracing::warn!(
                "no configuration given: serving the development default — realm 'realm1' where anonymous clients may do everything. Do not expose this to a network."
            );
        }
    }
    if let Some(at) = cli.stun_listen {
        opts.node.router.calls.stun_listen = Some(at);
    }
    if let (Some(n), Some(chat)) = (cli.chat_messages_per_minute, opts.node.router.chat.as_mut()) {
        chat.messages_per_minute = n.max(1);
    }
    opts.echo_path = cli.ws_echo_path;
    opts.rawsocket_tcp = cli.rawsocket_listen;
    opts.rawsocket_unix = cli.rawsocket_unix;
    opts.cache_bytes = cli.cache_mb.max(1) << 20;
    let running = match app::start(opts).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("switchboard: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    // Handlers are in place before anyone is told we are up: a SIGTERM right after the ready
    // line must shut down cleanly, not kill the process.
    let signals = Signals::install();
    let addr = running.addr;
    for b in &running.listeners {
        let at = b
            .addr
            .map(|a| a.to_string())
            .unwrap_or_else(|| b.config.endpoint.to_string());
        let ws: Vec<&str> = b.config.websocket.iter().map(|(p, _)| p.as_str()).collect();
        let bridge: Vec<&str> = b.config.bridge.iter().map(|(p, _)| p.as_str()).collect();
        tracing::info!(origin = %b.config.origin, "listening on {at}: WebSocket paths {ws:?}, HTTP bridge paths {bridge:?}, RawSocket {}, web UI {}", b.config.rawsocket.is_some(), b.config.web);
    }
    // Lines for whoever started us (a supervisor, a test, a script); stdout may be closed by
    // then (`| head -1`), which must not take the server down.
    let say = |line: String| {
        let _ = writeln!(std::io::stdout(), "{line}");
    };
    say(format!("switchboard listening on http://{addr}"));
    if let Some(r) = running.rawsocket_addr {
        tracing::info!("WAMP RawSocket on tcp://{r}");
        say(format!("switchboard rawsocket on tcp://{r}"));
    }
    if let Some(token) = running.setup.token() {
        say(format!(
            "switchboard setup: create the first staff account at http://{addr}/setup?token={token}"
        ));
        tracing::info!("first run: no staff account yet — open the setup link printed on stdout");
    }
    let _ = std::io::stdout().flush();
    signals.wait().await;
    tracing::info!("shutting down");
    match running.shutdown().await {
        Ok(()) => {
            tracing::info!("stopped cleanly");
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("switchboard: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn check_config(file: &std::path::Path) -> std::process::ExitCode {
    match crossbar::load(file, Limits::default()) {
        Ok(loaded) => {
            for w in &loaded.warnings {
                println!("warning: {w}");
            }
            let realms: Vec<&str> = loaded
                .node
                .router
                .realms
                .iter()
                .map(|r| r.name.as_str())
                .collect();
            let listeners: Vec<String> = loaded
                .node
                .listeners
                .iter()
                .map(|l| l.endpoint.to_string())
                .collect();
            println!(
                "{}: OK — realms [{}], listeners [{}], {} warning(s)",
                file.display(),
                realms.join(", "),
                listeners.join(", "),
                loaded.warnings.len()
            );
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// SIGTERM and SIGINT, registered at once (not on first poll).
struct Signals {
    term: Option<tokio::signal::unix::Signal>,
    int: Option<tokio::signal::unix::Signal>,
}

impl Signals {
    fn install() -> Signals {
        use tokio::signal::unix::{signal, SignalKind};
        Signals {
            term: signal(SignalKind::terminate()).ok(),
            int: signal(SignalKind::interrupt()).ok(),
        }
    }

    async fn wait(mut self) {
        async fn next(s: &mut Option<tokio::signal::unix::Signal>) {
            match s {
                Some(s) => {
                    s.recv().await;
                }
                None => std::future::pending().await,
            }
        }
        tokio::select! {
            _ = next(&mut self.term) => {}
            _ = next(&mut self.int) => {}
        }
    }
}
