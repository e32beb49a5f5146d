//! The composition root: opens the store, builds the router from its configuration, binds every
//! listener, and runs the documented shutdown order. The only module that knows all others.

use crate::config::{Endpoint, ListenerConfig, NodeConfig, WampEndpoint};
use crate::http::bridge::Bridge;
use crate::http::webhook::{self, Webhook};
use crate::http::{serve_connection, HttpState};
use crate::outbox::close_code;
use crate::router::Router;
use crate::store::{Store, StoreError};
use crate::transport::connections::Connections;
use crate::transport::rawsocket;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use tokio::net::{TcpListener, TcpStream, UnixListener};

/// How the server is started (from the command line, a config file, or a test).
#[derive(Clone, Debug)]
pub struct Options {
    pub data_dir: PathBuf,
    pub node: NodeConfig,
    pub echo_path: Option<String>,
    pub echo_max_message: usize,
    pub cache_bytes: u64,
    /// How long shutdown waits for connections to close before giving up on them.
    pub shutdown_grace: Duration,
    /// An extra WAMP RawSocket listener over TCP (command line `--rawsocket-listen`).
    pub rawsocket_tcp: Option<SocketAddr>,
    /// An extra WAMP RawSocket listener on a Unix socket (`--rawsocket-unix`).
    pub rawsocket_unix: Option<PathBuf>,
}

impl Options {
    /// Development defaults on `listen` with data in `data_dir`.
    pub fn development(listen: SocketAddr, data_dir: PathBuf) -> Options {
        Options {
            data_dir,
            node: NodeConfig::development(listen, Default::default()),
            echo_path: None,
            echo_max_message: 32 << 20,
            cache_bytes: crate::store::DEFAULT_CACHE_BYTES,
            shutdown_grace: Duration::from_secs(5),
            rawsocket_tcp: None,
            rawsocket_unix: None,
        }
    }

    /// All listeners: the configured ones plus the command-line RawSocket ones.
    fn listeners(&self) -> Vec<ListenerConfig> {
        let mut out = self.node.listeners.clone();
        let raw = |endpoint, origin: &str| ListenerConfig {
            endpoint,
            websocket: Vec::new(),
            rawsocket: Some(WampEndpoint::development()),
            web: false,
            bridge: Vec::new(),
            origin: origin.to_owned(),
        };
        if let Some(a) = self.rawsocket_tcp {
            out.push(raw(Endpoint::Tcp(a), "--rawsocket-listen"));
        }
        if let Some(p) = &self.rawsocket_unix {
            out.push(raw(Endpoint::Unix(p.clone()), "--rawsocket-unix"));
        }
        out
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot open the data store in {dir}: {source}")]
    Store { dir: String, source: StoreError },
    #[error("{origin}: cannot listen on {endpoint}: {source}")]
    Bind {
        origin: String,
        endpoint: Endpoint,
        source: std::io::Error,
    },
    #[error("{0}")]
    Chat(String),
    /// A bridge path or webhook that cannot run (its realm is missing, its role may not
    /// subscribe, …).
    #[error("{origin}: {message}")]
    Component { origin: String, message: String },
}

/// A listener after binding: its configuration and actual address.
#[derive(Clone, Debug)]
pub struct Bound {
    pub config: ListenerConfig,
    /// The actual address (port 0 resolved) for TCP listeners.
    pub addr: Option<SocketAddr>,
}

/// A started server.
pub struct Running {
    /// The first listener serving HTTP/WebSocket (the one `switchboard` prints).
    pub addr: SocketAddr,
    /// The first listener serving RawSocket over TCP, if any.
    pub rawsocket_addr: Option<SocketAddr>,
    pub listeners: Vec<Bound>,
    pub router: Arc<Router>,
    pub conns: Arc<Connections>,
    accept_tasks: Vec<tokio::task::JoinHandle<()>>,
    sweeper: tokio::task::JoinHandle<()>,
    webhooks: Vec<Webhook>,
    store: Arc<Store>,
    /// The admin control socket (`switchboard backup`, `switchboard user …`).
    admin: Option<crate::admin::Admin>,
    grace: Duration,
    /// The first-run setup (its token while no staff account exists).
    pub setup: Arc<crate::http::setup::Setup>,
    /// The STUN server's UDP address, if one runs.
    pub stun_addr: Option<SocketAddr>,
}

enum Socket {
    Tcp(TcpListener),
    Unix(UnixListener),
}

async fn bind(l: &ListenerConfig) -> Result<(Socket, Option<SocketAddr>), StartError> {
    let fail = |source| StartError::Bind {
        origin: l.origin.clone(),
        endpoint: l.endpoint.clone(),
        source,
    };
    match &l.endpoint {
        Endpoint::Tcp(a) => {
            let t = TcpListener::bind(a).await.map_err(fail)?;
            let addr = t.local_addr().map_err(fail)?;
            Ok((Socket::Tcp(t), Some(addr)))
        }
        Endpoint::Unix(path) => {
            // A socket file left by an earlier run would make bind fail.
            if std::fs::symlink_metadata(path)
                .is_ok_and(|m| std::os::unix::fs::FileTypeExt::is_socket(&m.file_type()))
            {
                let _ = std::fs::remove_file(path);
            }
            Ok((Socket::Unix(UnixListener::bind(path).map_err(fail)?), None))
        }
    }
}

/// Serves one accepted TCP connection: RawSocket if the listener has it and the first byte is
/// RawSocket's magic 0x7F, HTTP/WebSocket otherwise (Crossbar's "universal" transport).
async fn dispatch_tcp(
    stream: TcpStream,
    http: Option<Arc<HttpState>>,
    raw: Option<WampEndpoint>,
    router: Arc<Router>,
    conns: Arc<Connections>,
) {
    let _ = stream.set_nodelay(true);
    let is_raw = match (&http, &raw) {
        (None, Some(_)) => true,
        (Some(_), None) => false,
        (Some(_), Some(_)) => {
            let mut first = [0u8; 1];
            match tokio::time::timeout(conns.limits().hello_timeout, stream.peek(&mut first)).await
            {
                Ok(Ok(1)) => first[0] == 0x7F,
                _ => return,
            }
        }
        (None, None) => return,
    };
    match (is_raw, raw, http) {
        (true, Some(endpoint), _) => {
            let peer = stream.peer_addr().ok();
            rawsocket::serve(stream, router, conns, endpoint, peer).await
        }
        (false, _, Some(state)) => serve_connection(stream, state).await,
        _ => {}
    }
}

pub async fn start(opts: Options) -> Result<Running, StartError> {
    let store_err = |source| StartError::Store {
        dir: opts.data_dir.display().to_string(),
        source,
    };
    std::fs::create_dir_all(&opts.data_dir)
        .map_err(|e| store_err(StoreError::Sled(sled::Error::Io(e))))?;
    let store = Arc::new(Store::open(&opts.data_dir, opts.cache_bytes).map_err(store_err)?);
    let node = store.record_start().await.map_err(store_err)?;
    tracing::info!(starts = node.starts, dir = %opts.data_dir.display(), "data store opened");
    let conns = Connections::new(opts.node.router.limits.clone());
    let router = Router::with_store(
        opts.node.router.clone(),
        Some(store.principals()),
        Some(store.history()),
    );
    // First run: no staff account in the store yet → a one-time setup link.
    let setup = {
        let staff: Vec<String> = opts
            .node
            .router
            .chat
            .as_ref()
            .map(|c| c.roles.staff.clone())
            .unwrap_or_default();
        let has_staff = store
            .principals()
            .list()
            .map(|l| l.iter().any(|p| staff.contains(&p.role)))
            .unwrap_or(true);
        let role = staff.first().cloned().unwrap_or_default();
        crate::http::setup::Setup::new(!staff.is_empty() && !has_staff, &role)
    };
    if let Some(cfg) = &opts.node.router.chat {
        let chat_store = store.chat().map_err(store_err)?;
        crate::chat::service::start(router.clone(), chat_store, cfg.clone())
            .await
            .map_err(StartError::Chat)?;
    }
    let started = Instant::now();
    let started_at = SystemTime::now();
    let mut webhooks = Vec::new();
    for w in &opts.node.webhooks {
        let origin = w.origin.clone();
        webhooks.push(
            webhook::start(w.clone(), &router)
                .await
                .map_err(|message| StartError::Component { origin, message })?,
        );
    }
    let webhook_stats: Arc<[_]> = webhooks.iter().map(|w| w.stats.clone()).collect();
    let mut listeners = Vec::new();
    let mut accept_tasks = Vec::new();
    for l in opts.listeners() {
        let (socket, addr) = bind(&l).await?;
        let mut bridge = Vec::new();
        for (path, config) in &l.bridge {
            let b = Bridge::new(config.clone(), &router).ok_or_else(|| StartError::Component {
                origin: format!("{}: bridge path {path}", l.origin),
                message: format!("realm '{}' does not exist", config.realm),
            })?;
            bridge.push((path.clone(), Arc::new(b)));
        }
        let http = (l.web || !l.websocket.is_empty() || !bridge.is_empty()).then(|| {
            Arc::new(HttpState {
                router: router.clone(),
                conns: conns.clone(),
                started,
                started_at,
                websocket: l.websocket.clone(),
                web: l.web,
                echo_path: opts.echo_path.clone(),
                echo_max_message: opts.echo_max_message,
                bridge,
                webhooks: webhook_stats.clone(),
                setup: setup.clone(),
            })
        });
        let raw = l.rawsocket.clone();
        let (router, conns) = (router.clone(), conns.clone());
        accept_tasks.push(match socket {
            Socket::Tcp(t) => tokio::spawn(async move {
                loop {
                    match t.accept().await {
                        Ok((stream, _)) => {
                            tokio::spawn(dispatch_tcp(
                                stream,
                                http.clone(),
                                raw.clone(),
                                router.clone(),
                                conns.clone(),
                            ));
                        }
                        // Out of file descriptors and the like: back off instead of spinning.
                        Err(e) => {
                            tracing::warn!(error = %e, "accept failed");
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                    }
                }
            }),
            Socket::Unix(u) => tokio::spawn(async move {
                let Some(endpoint) = raw else { return };
                loop {
                    match u.accept().await {
                        Ok((stream, _)) => {
                            tokio::spawn(rawsocket::serve(
                                stream,
                                router.clone(),
                                conns.clone(),
                                endpoint.clone(),
                                None,
                            ));
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "accept failed");
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                    }
                }
            }),
        });
        listeners.push(Bound { config: l, addr });
    }
    let addr = listeners
        .iter()
        .find(|b| b.config.web || !b.config.websocket.is_empty())
        .or(listeners.first())
        .and_then(|b| b.addr)
        .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)));
    let rawsocket_addr = listeners
        .iter()
        .find(|b| b.config.rawsocket.is_some() && b.addr.is_some())
        .and_then(|b| b.addr);
    // The STUN server for calls (UDP).
    let mut stun_addr = None;
    if let Some(at) = opts.node.router.calls.stun_listen {
        let socket = tokio::net::UdpSocket::bind(at)
            .await
            .map_err(|source| StartError::Bind {
                origin: "calls.stun_listen".into(),
                endpoint: Endpoint::Tcp(at),
                source,
            })?;
        stun_addr = socket.local_addr().ok();
        tracing::info!(addr = ?stun_addr, "STUN server (UDP)");
        accept_tasks.push(tokio::spawn(crate::calls::stun::serve(socket)));
    }
    let sweeper = conns.spawn_sweeper();
    Ok(Running {
        addr,
        rawsocket_addr,
        listeners,
        router,
        conns,
        accept_tasks,
        sweeper,
        webhooks,
        admin: match crate::admin::serve(store.clone(), &opts.data_dir) {
            Ok(a) => {
                tracing::info!(path = %a.path().display(), "admin socket ready");
                Some(a)
            }
            Err(e) => {
                tracing::warn!(error = %e, "no admin socket: backups and user changes need the server stopped");
                None
            }
        },
        store,
        grace: opts.shutdown_grace,
        setup,
        stun_addr,
    })
}

impl Running {
    /// The shutdown order: stop accepting → stop the webhooks → ask every connection to close
    /// (a WebSocket close 1001 "going away", not a WAMP GOODBYE, so Autobahn clients reconnect)
    /// → wait for them within the grace period → flush and close the store.
    pub async fn shutdown(self) -> Result<(), StoreError> {
        self.conns.stop_accepting();
        for t in &self.accept_tasks {
            t.abort();
        }
        for w in &self.webhooks {
            w.stop();
        }
        for b in &self.listeners {
            if let Endpoint::Unix(p) = &b.config.endpoint {
                let _ = std::fs::remove_file(p);
            }
        }
        self.conns
            .close_all(close_code::GOING_AWAY, "server shutting down");
        if !self.conns.wait_empty(self.grace).await {
            tracing::warn!(
                left = self.conns.count(),
                "connections did not close in time; dropping them"
            );
        }
        self.sweeper.abort();
        if let Some(a) = &self.admin {
            a.stop();
        }
        self.store.close().await
    }
}
