//! The `switchboard` binary: parse the command line, start the server, wait for a signal,
//! shut down in order.

use clap::Parser;
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
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
    #[command(flatten)]
    turn: switchboard::calls::turn::cli::TurnArgs,
    /// Chat messages a visitor may send per minute (overrides the config; default 60).
    #[arg(long, value_name = "N")]
    chat_messages_per_minute: Option<u32>,
    /// Seconds a chat call rings before it is a missed call (overrides the config; default 45).
    #[arg(long, value_name = "SECONDS")]
    chat_ring_timeout: Option<f64>,
    /// sled page cache, in MiB.
    #[arg(long, default_value_t = 16, value_name = "MIB")]
    cache_mb: u64,
    /// TLS on the zero-config listener: certificate (chain) PEM file; `https://` and `wss://`.
    /// Reloaded on SIGHUP.
    #[arg(
        long,
        value_name = "FILE",
        requires = "tls_key",
        env = "SWITCHBOARD_TLS_CERT"
    )]
    tls_cert: Option<PathBuf>,
    /// The private key (PEM) for --tls-cert.
    #[arg(
        long,
        value_name = "FILE",
        requires = "tls_cert",
        env = "SWITCHBOARD_TLS_KEY"
    )]
    tls_key: Option<PathBuf>,
    /// Get the zero-config listener's certificate from ACME (Let's Encrypt) for this DNS name
    /// (repeat for more names). Needs --http-redirect-listen on port 80 of every name.
    #[arg(long = "acme-domain", value_name = "NAME", conflicts_with = "tls_cert")]
    acme_domains: Vec<String>,
    /// Contact email for the ACME account.
    #[arg(long, value_name = "ADDR")]
    acme_email: Option<String>,
    /// ACME directory URL (default: Let's Encrypt production).
    #[arg(long, value_name = "URL")]
    acme_directory: Option<String>,
    /// Use Let's Encrypt's staging directory (untrusted test certificates, high rate limits).
    #[arg(long, conflicts_with = "acme_directory")]
    acme_staging: bool,
    /// How the CA checks the names: http-01 (on --http-redirect-listen, port 80) or tls-alpn-01
    /// (on the HTTPS listener itself, port 443).
    #[arg(long, value_name = "TYPE", default_value = "http-01", value_parser = ["http-01", "tls-alpn-01"])]
    acme_challenge: String,
    /// Trust this PEM root certificate for the ACME directory's HTTPS (a test CA like pebble's).
    #[arg(long, value_name = "FILE")]
    acme_root_cert: Option<PathBuf>,
    /// A plain-HTTP listener that redirects everything to HTTPS (308) except ACME HTTP-01
    /// challenges, e.g. 0.0.0.0:80.
    #[arg(long, value_name = "ADDR")]
    http_redirect_listen: Option<SocketAddr>,
    /// Admit anonymous clients who may publish or register on every URI on an address beyond
    /// loopback: the zero-config development default on a public --listen, or a config file
    /// whose public listener gives anonymous clients such a role. Without it, that is refused.
    #[arg(long)]
    allow_public_anonymous: bool,
    /// Log lines on stderr: readable text, or one JSON object per line.
    #[arg(long, value_enum, default_value_t = LogFormat::Text, env = "SWITCHBOARD_LOG_FORMAT")]
    log_format: LogFormat,
    /// Threads that run connections (default: one per CPU core; 1 runs everything on one
    /// thread, which saves cross-thread wake-ups when the machine also runs other work).
    #[arg(long, value_name = "N", env = "SWITCHBOARD_WORKER_THREADS")]
    worker_threads: Option<usize>,
    #[command(flatten)]
    caps: CapArgs,
}

/// What one session may hold and how many connections are accepted (README "Limits").
#[derive(clap::Args, Debug)]
struct CapArgs {
    /// Subscriptions one session may hold.
    #[arg(long, default_value_t = 1_000, value_name = "N")]
    max_subscriptions_per_session: usize,
    /// Registrations one session may hold.
    #[arg(long, default_value_t = 1_000, value_name = "N")]
    max_registrations_per_session: usize,
    /// Calls one session may have waiting for their result.
    #[arg(long, default_value_t = 1_000, value_name = "N")]
    max_calls_in_flight: usize,
    /// Distinct subscribed topics (with their match policy) one realm keeps.
    #[arg(long, default_value_t = 1_000_000, value_name = "N")]
    max_topics_per_realm: usize,
    /// Open connections in all (HTTP, WebSocket and RawSocket).
    #[arg(long, default_value_t = 100_000, value_name = "N")]
    max_connections: usize,
    /// Open connections from one IP address (IPv6: one /64).
    #[arg(long, default_value_t = 1_000, value_name = "N")]
    max_connections_per_ip: usize,
    /// Comma-separated addresses/networks the per-IP cap does not apply to ("" for none).
    #[arg(long, default_value = "127.0.0.0/8,::1", value_name = "NETS")]
    unlimited_addresses: String,
}

impl CapArgs {
    fn session(&self) -> switchboard::config::SessionLimits {
        switchboard::config::SessionLimits {
            subscriptions: self.max_subscriptions_per_session,
            registrations: self.max_registrations_per_session,
            calls_in_flight: self.max_calls_in_flight,
            topics_per_realm: self.max_topics_per_realm,
        }
    }

    fn connections(&self) -> Result<switchboard::config::ConnectionLimits, String> {
        let mut unlimited = Vec::new();
        for net in self.unlimited_addresses.split(',').map(str::trim) {
            if net.is_empty() {
                continue;
            }
            unlimited.push(
                switchboard::config::ipnet::IpNet::parse(net).ok_or_else(|| {
                    format!("--unlimited-addresses: '{net}' is not an address or ADDR/PREFIX")
                })?,
            );
        }
        Ok(switchboard::config::ConnectionLimits {
            total: self.max_connections.max(1),
            per_address: self.max_connections_per_ip.max(1),
            unlimited,
        })
    }
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
    /// One visitor's chat data: export it as JSON, or delete it (data-subject requests).
    #[command(subcommand)]
    Chat(switchboard::cli_chat::ChatCommand),
    /// Write a consistent backup of the data store to FILE — through the running server's admin
    /// socket, or from the store itself when no server runs.
    Backup {
        /// The backup file to write (replaced only once the new one is complete).
        file: PathBuf,
        #[command(flatten)]
        store: switchboard::cli_user::DataDir,
    },
    /// Make the running server reload its config and certificates (what SIGHUP does), and
    /// report each step; exits 1 if a step failed (the running config is then kept).
    Reload {
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
        Some(Command::Chat(cmd)) => return switchboard::cli_chat::main(cmd),
        Some(Command::Backup { file, store }) => {
            return switchboard::cli_backup::backup_main(&file, &store.data_dir)
        }
        Some(Command::Reload { store }) => return reload_main(&store.data_dir),
        Some(Command::Restore { file, store, force }) => {
            return switchboard::cli_backup::restore_main(&file, &store.data_dir, force)
        }
        None => {}
    }
    init_logging(cli.log_format);
    let mut builder = match cli.worker_threads {
        Some(1) => tokio::runtime::Builder::new_current_thread(),
        Some(n) => {
            let mut b = tokio::runtime::Builder::new_multi_thread();
            b.worker_threads(n.max(1));
            b
        }
        None => tokio::runtime::Builder::new_multi_thread(),
    };
    let runtime = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("switchboard: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    runtime.block_on(run(cli))
}

async fn run(cli: Cli) -> std::process::ExitCode {
    let connections = match cli.caps.connections() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("switchboard: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let limits = Limits {
        max_message_size: cli.max_message_size,
        max_queue_bytes: cli.max_queue_bytes,
        ping_interval: (cli.ping_interval > 0).then(|| Duration::from_secs(cli.ping_interval)),
        ping_timeout: Duration::from_secs(cli.ping_timeout.max(1)),
        hello_timeout: Duration::from_secs(cli.hello_timeout.max(1)),
        write_delay: Duration::from_millis(cli.write_delay_ms),
        auth_timeout: Duration::from_millis(cli.auth_timeout_ms.max(1)),
        session: cli.caps.session(),
        connections,
    };
    let mut opts = Options::development(cli.listen, cli.data_dir.clone());
    match &cli.config {
        Some(file) => match crossbar::load(file, limits.clone()) {
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
            opts.node = NodeConfig::development(cli.listen, limits.clone());
            tracing::warn!(
                "no configuration given: serving the development default — realm 'realm1' where anonymous clients may do everything. Do not expose this to a network."
            );
        }
    }
    if let Err(e) = apply_https(&cli, &mut opts) {
        eprintln!("switchboard: {e}");
        return std::process::ExitCode::FAILURE;
    }
    if let Err(e) = check_public(&cli, &opts.node) {
        eprintln!("switchboard: {e}");
        return std::process::ExitCode::FAILURE;
    }
    cli_overrides(&cli, &mut opts.node);
    opts.echo_path = cli.ws_echo_path.clone();
    opts.rawsocket_tcp = cli.rawsocket_listen;
    opts.rawsocket_unix = cli.rawsocket_unix.clone();
    opts.cache_bytes = cli.cache_mb.max(1) << 20;
    let running = match app::start(opts).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("switchboard: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    // Handlers are in place before anyone is told we are up: a SIGTERM right after the ready
    // line must shut down cleanly, not kill the process. SIGHUP reloads (`reload`).
    let signals = Signals::install();
    if let Some(file) = cli.config.clone() {
        let reload_config = running.config_reloader();
        let (limits, stun, per_minute, ring, turn, allow_public_anonymous) = (
            limits.clone(),
            cli.stun_listen,
            cli.chat_messages_per_minute,
            cli.chat_ring_timeout,
            cli.turn.clone(),
            cli.allow_public_anonymous,
        );
        running.reload.add(
            "configuration",
            Arc::new(move || {
                let loaded = crossbar::load(&file, limits.clone()).map_err(|e| {
                    format!("the new config was rejected, the running one is kept: {e}")
                })?;
                for w in &loaded.warnings {
                    tracing::warn!("{w}");
                }
                let mut node = loaded.node;
                let open = node.open_to_anonymous();
                if !open.is_empty() && !allow_public_anonymous {
                    return Err(format!(
                        "the new config was rejected, the running one is kept: {}",
                        open.join("; ")
                    ));
                }
                overrides(stun, per_minute, ring, &turn, &mut node);
                let r = reload_config(&node);
                if !r.needs_restart.is_empty() {
                    tracing::warn!(
                        "SIGHUP: these changes take a restart and were not applied: {}",
                        r.needs_restart.join("; ")
                    );
                }
                Ok(format!(
                    "configuration reloaded from {}: realms updated {:?}, added {:?}, removed {:?}",
                    file.display(),
                    r.updated,
                    r.added,
                    r.removed
                ))
            }),
        );
    }
    let _sighup = match switchboard::reload::listen_sighup(running.reload.clone()) {
        Ok(t) => Some(t),
        Err(e) => {
            tracing::warn!(error = %e, "cannot handle SIGHUP: certificates will not reload");
            None
        }
    };
    let addr = running.addr;
    for b in &running.listeners {
        let at = b
            .addr
            .map(|a| a.to_string())
            .unwrap_or_else(|| b.config.endpoint.to_string());
        let ws: Vec<&str> = b.config.websocket.iter().map(|(p, _)| p.as_str()).collect();
        let bridge: Vec<&str> = b.config.bridge.iter().map(|(p, _)| p.as_str()).collect();
        tracing::info!(origin = %b.config.origin, "listening on {at}: WebSocket paths {ws:?}, HTTP bridge paths {bridge:?}, RawSocket {}, web UI {}, TLS {}", b.config.rawsocket.is_some(), b.config.web, b.config.tls.is_some());
    }
    // Lines for whoever started us (a supervisor, a test, a script); stdout may be closed by
    // then (`| head -1`), which must not take the server down.
    let say = |line: String| {
        let _ = writeln!(std::io::stdout(), "{line}");
    };
    let scheme = if running.tls { "https" } else { "http" };
    say(format!("switchboard listening on {scheme}://{addr}"));
    if let Some(r) = running.redirect_addr {
        tracing::info!("plain HTTP on {r} redirects to HTTPS");
        say(format!("switchboard redirecting http://{r} to https"));
    }
    if let Some(r) = running.rawsocket_addr {
        tracing::info!("WAMP RawSocket on tcp://{r}");
        say(format!("switchboard rawsocket on tcp://{r}"));
    }
    if let Some(token) = running.setup.token() {
        say(format!(
            "switchboard setup: create the first staff account at {scheme}://{addr}/setup?token={token}"
        ));
        tracing::info!("first run: no staff account yet — open the setup link printed on stdout");
    }
    let _ = std::io::stdout().flush();
    // Startup is over: the code only it ran need not stay resident (README "Memory per idle
    // session").
    match switchboard::startup_pages::release() {
        Ok(bytes) => tracing::debug!(bytes, "released the startup code pages"),
        Err(e) => tracing::debug!(error = %e, "could not release the startup code pages"),
    }
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

/// The HTTPS flags: TLS files or ACME on the zero-config listener, the redirect listener.
fn apply_https(cli: &Cli, opts: &mut Options) -> Result<(), String> {
    use switchboard::tls::{acme, TlsFiles, TlsSource};
    let tls = if let (Some(cert), Some(key)) = (&cli.tls_cert, &cli.tls_key) {
        Some(TlsSource::Files(TlsFiles {
            certificate: cert.clone(),
            key: key.clone(),
            chain: Vec::new(),
        }))
    } else if !cli.acme_domains.is_empty() {
        let mut cfg = acme::AcmeConfig::new(cli.acme_domains.clone());
        cfg.emails.extend(cli.acme_email.iter().cloned());
        if cli.acme_staging {
            cfg.directory = acme::LETS_ENCRYPT_STAGING.into();
        }
        if let Some(d) = &cli.acme_directory {
            cfg.directory = d.clone();
        }
        cfg.root_certificate = cli.acme_root_cert.clone();
        cfg.challenge = acme::Challenge::parse(&cli.acme_challenge).unwrap_or_default();
        opts.node.acme = Some(cfg);
        Some(TlsSource::Acme)
    } else {
        None
    };
    if let Some(tls) = tls {
        if cli.config.is_some() {
            return Err("--tls-cert/--tls-key and --acme-domain are for the zero-config listener; with --config set the transport's endpoint.tls (and the worker's acme section)".into());
        }
        for l in &mut opts.node.listeners {
            l.tls = Some(tls.clone());
        }
    }
    if let Some(at) = cli.http_redirect_listen {
        opts.node.http_redirect = Some(at);
    }
    Ok(())
}

/// Safe by default: the development default admits anonymous clients with every permission, so
/// it stays on loopback; a config file may admit anonymous clients beyond loopback, but not
/// with a role that may publish or register on every URI (`NodeConfig::open_to_anonymous`).
/// `--allow-public-anonymous` lifts both, loudly.
fn check_public(cli: &Cli, node: &NodeConfig) -> Result<(), String> {
    let mut public: Vec<String> = Vec::new();
    if cli.config.is_none() && !cli.listen.ip().is_loopback() {
        public.push(format!(
            "--listen {}: the zero-config development default lets anonymous clients do everything",
            cli.listen
        ));
    }
    // The command-line RawSocket listener serves the development endpoint (anonymous) too.
    if let Some(a) = cli.rawsocket_listen.filter(|a| !a.ip().is_loopback()) {
        public.push(format!(
            "--rawsocket-listen {a}: the development RawSocket endpoint lets anonymous clients do everything"
        ));
    }
    if cli.config.is_some() {
        public.extend(node.open_to_anonymous());
    }
    if public.is_empty() {
        return Ok(());
    }
    let what = public.join("; ");
    if cli.allow_public_anonymous {
        tracing::warn!(
            "!!! --allow-public-anonymous: ANONYMOUS clients from any network may publish or register anywhere ({what}). Use authentication for anything but a trusted network. !!!"
        );
        return Ok(());
    }
    Err(format!(
        "refusing to start — {what}. Anyone who can reach that address could take over the application. Listen on loopback (127.0.0.1, ::1), require authentication on public listeners, or narrow the anonymous role's permissions; pass --allow-public-anonymous if you really mean it"
    ))
}

fn check_config(file: &std::path::Path) -> std::process::ExitCode {
    match crossbar::load(file, Limits::default()) {
        Ok(loaded) => {
            for w in &loaded.warnings {
                println!("warning: {w}");
            }
            // Certificate files are read at start; say now if they would not load (a warning:
            // they may be provisioned later, or readable only by the service's user).
            let mut tls_warnings = 0;
            for l in &loaded.node.listeners {
                if let Some(switchboard::tls::TlsSource::Files(f)) = &l.tls {
                    if let Err(e) = switchboard::tls::load_files(f) {
                        tls_warnings += 1;
                        println!(
                            "warning: {}: TLS certificate does not load now: {e}",
                            l.origin
                        );
                    }
                }
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
                loaded.warnings.len() + tls_warnings
            );
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// `switchboard reload`: through the running server's admin socket.
fn reload_main(dir: &std::path::Path) -> std::process::ExitCode {
    let Some(server) = switchboard::admin::client::Client::connect(dir) else {
        eprintln!(
            "switchboard reload: no server answers on {} (is it running with this --data-dir?)",
            switchboard::admin::socket_path(dir).display()
        );
        return std::process::ExitCode::FAILURE;
    };
    match server.request(&switchboard::admin::Request::Reload) {
        Ok(v) => {
            for step in v
                .get("reloaded")
                .and_then(|r| r.as_array())
                .into_iter()
                .flatten()
            {
                println!("{}", step.as_str().unwrap_or_default());
            }
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("switchboard reload: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// What the command line changes in a loaded config (at start and at every reload alike).
fn cli_overrides(cli: &Cli, node: &mut NodeConfig) {
    overrides(
        cli.stun_listen,
        cli.chat_messages_per_minute,
        cli.chat_ring_timeout,
        &cli.turn,
        node,
    );
}

fn overrides(
    stun: Option<SocketAddr>,
    per_minute: Option<u32>,
    ring_timeout: Option<f64>,
    turn: &switchboard::calls::turn::cli::TurnArgs,
    node: &mut NodeConfig,
) {
    turn.clone().apply(&mut node.router.calls);
    if let Some(at) = stun {
        node.router.calls.stun_listen = Some(at);
    }
    if let (Some(n), Some(chat)) = (per_minute, node.router.chat.as_mut()) {
        chat.messages_per_minute = n.max(1);
    }
    if let (Some(s), Some(chat)) = (ring_timeout, node.router.chat.as_mut()) {
        chat.ring_timeout = std::time::Duration::from_secs_f64(s.clamp(0.1, 3600.0));
    }
}

/// SIGTERM and SIGINT, registered at once (not on first poll). SIGHUP is `reload`'s.
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
        async fn one(s: &mut Option<tokio::signal::unix::Signal>) {
            match s {
                Some(s) => {
                    s.recv().await;
                }
                None => std::future::pending().await,
            }
        }
        tokio::select! {
            _ = one(&mut self.term) => {}
            _ = one(&mut self.int) => {}
        }
    }
}

/// jemalloc, not glibc's malloc: under a durable chat write load glibc's per-thread arenas kept
/// the free space of sled's cache churn in holes and RSS climbed while the live heap was flat;
/// one glibc arena stopped that but cost a quarter of the chat throughput. jemalloc's size-class
/// slabs and its decay of unused pages keep RSS flat, and it is faster here (README "Soak").
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;
