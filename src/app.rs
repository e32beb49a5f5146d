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
use tracing::Instrument;

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
            tls: None,
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
    /// A TLS certificate or key that cannot be used, or ACME that cannot start.
    #[error("{origin}: TLS: {message}")]
    Tls { origin: String, message: String },
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
    /// What the listener accepts now (a reload replaces it).
    pub accepts: Accepts,
}

/// A listener's WAMP paths and RawSocket endpoint with their authentication, swapped whole by
/// a reload: connections accepted afterwards use the new settings, existing sessions keep
/// theirs.
#[derive(Clone)]
pub struct Accepts {
    pub websocket: Arc<arc_swap::ArcSwap<Vec<(String, WampEndpoint)>>>,
    pub rawsocket: Arc<arc_swap::ArcSwapOption<WampEndpoint>>,
}

impl std::fmt::Debug for Accepts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let paths: Vec<String> = self
            .websocket
            .load()
            .iter()
            .map(|(p, _)| p.clone())
            .collect();
        f.debug_struct("Accepts")
            .field("websocket", &paths)
            .field("rawsocket", &self.rawsocket.load().is_some())
            .finish()
    }
}

impl Accepts {
    fn new(l: &ListenerConfig) -> Accepts {
        Accepts {
            websocket: Arc::new(arc_swap::ArcSwap::from_pointee(l.websocket.clone())),
            rawsocket: Arc::new(arc_swap::ArcSwapOption::from_pointee(l.rawsocket.clone())),
        }
    }

    fn store(&self, l: &ListenerConfig) {
        self.websocket.store(Arc::new(l.websocket.clone()));
        self.rawsocket.store(l.rawsocket.clone().map(Arc::new));
    }
}

/// What of a listener a reload cannot change (it takes a restart).
fn fixed_part(l: &ListenerConfig) -> (Endpoint, bool, Vec<String>, bool, bool, bool) {
    (
        l.endpoint.clone(),
        l.web,
        l.bridge.iter().map(|(p, _)| p.clone()).collect(),
        l.tls.is_some(),
        l.websocket.is_empty(),
        l.rawsocket.is_none(),
    )
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
    /// Whether the listener at `addr` speaks TLS (`https://`, `wss://`).
    pub tls: bool,
    /// The plain-HTTP redirect listener's address, if one runs.
    pub redirect_addr: Option<SocketAddr>,
    /// What SIGHUP reloads (see `reload`); `main` installs the signal handler.
    pub reload: crate::reload::Reload,
    acme: Option<crate::tls::acme::Acme>,
    /// The TURN relay's UDP and TCP addresses, if it runs.
    pub turn_addr: Option<SocketAddr>,
    pub turn_tcp_addr: Option<SocketAddr>,
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
            // Linux hands TCP_NODELAY down to every accepted socket: one call here instead of
            // one per connection.
            socket2::SockRef::from(&t)
                .set_tcp_nodelay(true)
                .map_err(fail)?;
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

type TurnServer = Arc<crate::calls::turn::server::Server>;

/// What a TLS listener serves after the handshake.
struct Serves {
    http: Option<Arc<HttpState>>,
    raw: Option<WampEndpoint>,
    /// The TURN relay, for `turns:` clients (their first bytes are a STUN message).
    turn: Option<TurnServer>,
}

/// What the first decrypted byte of a TLS connection asks for.
#[derive(Clone, Copy, Debug, PartialEq)]
enum TlsProtocol {
    Http,
    RawSocket,
    Turn,
}

impl Serves {
    /// The protocol when only one is possible (no need to read ahead), else `None`.
    fn only(&self) -> Option<TlsProtocol> {
        match (&self.http, &self.raw, &self.turn) {
            (Some(_), None, None) => Some(TlsProtocol::Http),
            (None, Some(_), None) => Some(TlsProtocol::RawSocket),
            (None, None, Some(_)) => Some(TlsProtocol::Turn),
            _ => None,
        }
    }

    /// RawSocket's magic 0x7F; a STUN message's first two bits are zero (RFC 8489 §6), which
    /// no HTTP method's first letter has; HTTP otherwise.
    fn by_first_byte(&self, b: u8) -> TlsProtocol {
        match b {
            0x7F if self.raw.is_some() => TlsProtocol::RawSocket,
            0x00..=0x3F if self.turn.is_some() => TlsProtocol::Turn,
            _ if self.http.is_some() => TlsProtocol::Http,
            _ if self.raw.is_some() => TlsProtocol::RawSocket,
            _ => TlsProtocol::Turn,
        }
    }
}

/// Serves one accepted TCP connection of a TLS listener: the TLS handshake first, then HTTP
/// (and WebSocket), RawSocket or TURN by the first decrypted byte (put back after peeking).
async fn dispatch_tls(
    stream: TcpStream,
    acceptor: tokio_rustls::TlsAcceptor,
    serves: Serves,
    router: Arc<Router>,
    conns: Arc<Connections>,
) {
    use tokio::io::AsyncReadExt;
    let peer = stream.peer_addr().ok();
    // Counted before the handshake; a refused client still gets its answer over TLS.
    let admitted = conns.admissions.admit(peer.map(|a| a.ip()));
    let hello = conns.limits().hello_timeout;
    let mut tls = match tokio::time::timeout(hello, acceptor.accept(stream)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            tracing::debug!(?peer, error = %e, "TLS handshake failed");
            return;
        }
        Err(_) => return,
    };
    // An ACME TLS-ALPN-01 validation only looks at the certificate.
    if tls.get_ref().1.alpn_protocol() == Some(crate::tls::ACME_TLS_ALPN) {
        tracing::info!(?peer, "ACME: answered a TLS-ALPN-01 validation");
        let _ = tokio::io::AsyncWriteExt::shutdown(&mut tls).await;
        return;
    }
    if serves.http.is_none() && serves.raw.is_none() && serves.turn.is_none() {
        return;
    }
    let (protocol, prefix) = match serves.only() {
        Some(p) => (p, bytes::Bytes::new()),
        None => {
            let mut first = [0u8; 1];
            match tokio::time::timeout(hello, tls.read(&mut first)).await {
                Ok(Ok(1)) => (
                    serves.by_first_byte(first[0]),
                    bytes::Bytes::copy_from_slice(&first),
                ),
                _ => return,
            }
        }
    };
    let stream = crate::tls::Prefixed::new(prefix, tls);
    let admission = match admitted {
        Ok(a) => a,
        Err(limit) => {
            router.metrics.limit_refused(limit);
            let reason = conns.admissions.reason(limit);
            // Boxed (here and below): a rare path must not size every connection task. A TURN
            // client has no refusal message before its first request: it is closed.
            match protocol {
                TlsProtocol::RawSocket => {
                    Box::pin(rawsocket::refuse(stream, rawsocket::ERR_CONNECTION_COUNT)).await
                }
                TlsProtocol::Http => {
                    Box::pin(crate::transport::admission::refuse_http(stream, &reason)).await
                }
                TlsProtocol::Turn => {}
            }
            return;
        }
    };
    match (protocol, serves) {
        (TlsProtocol::RawSocket, Serves { raw: Some(e), .. }) => {
            let _admission = admission;
            Box::pin(rawsocket::serve_tls(stream, router, conns, e, peer)).await
        }
        (TlsProtocol::Http, Serves { http: Some(s), .. }) => {
            Box::pin(serve_connection(stream, peer, s, Arc::new(admission))).await
        }
        (TlsProtocol::Turn, Serves { turn: Some(t), .. }) => {
            let _admission = admission;
            if let Some(from) = peer {
                Box::pin(crate::calls::turn::io::tls_client(t, stream, from)).await
            }
        }
        _ => {}
    }
}

/// Serves one accepted TCP connection: RawSocket if the listener has it and the first byte is
/// RawSocket's magic 0x7F, HTTP/WebSocket otherwise (Crossbar's "universal" transport).
async fn dispatch_tcp(
    stream: TcpStream,
    peer: std::net::SocketAddr,
    http: Option<Arc<HttpState>>,
    raw: Option<WampEndpoint>,
    router: Arc<Router>,
    conns: Arc<Connections>,
) {
    let peer_ip = Some(peer.ip());
    let admitted = conns.admissions.admit(peer_ip);
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
    let admission = match admitted {
        Ok(a) => a,
        Err(limit) => {
            router.metrics.limit_refused(limit);
            let reason = conns.admissions.reason(limit);
            tracing::debug!(peer = ?peer_ip, %reason, "connection refused");
            if is_raw {
                // Boxed (here and below): a rare path must not size every connection task.
                Box::pin(rawsocket::refuse(stream, rawsocket::ERR_CONNECTION_COUNT)).await;
            } else {
                Box::pin(crate::transport::admission::refuse_http(stream, &reason)).await;
            }
            return;
        }
    };
    // Each branch is boxed: this task lives as long as the connection, and inline it would be
    // as large as the largest of them (hyper's connection state) for every RawSocket session.
    match (is_raw, raw, http) {
        (true, Some(endpoint), _) => {
            let _admission = admission;
            Box::pin(rawsocket::serve(
                stream,
                router,
                conns,
                endpoint,
                Some(peer),
            ))
            .await
        }
        (false, _, Some(state)) => {
            Box::pin(serve_connection(
                stream,
                Some(peer),
                state,
                Arc::new(admission),
            ))
            .await
        }
        _ => {}
    }
}

impl Running {
    /// Applies a reloaded config: realms, roles and permissions at once (see `Router::reload`);
    /// what needs a restart is reported, not applied.
    pub fn reload(&self, node: &NodeConfig) -> crate::router::Reloaded {
        self.config_reloader()(node)
    }

    /// `reload` as a function that outlives `self`'s borrow (the SIGHUP hook keeps it).
    pub fn config_reloader(
        &self,
    ) -> impl Fn(&NodeConfig) -> crate::router::Reloaded + Send + Sync + 'static {
        let router = self.router.clone();
        let listening: Vec<(ListenerConfig, Accepts)> = self
            .listeners
            .iter()
            .filter(|b| !b.config.origin.starts_with("--rawsocket"))
            .map(|b| (b.config.clone(), b.accepts.clone()))
            .collect();
        move |node: &NodeConfig| {
            let mut r = router.reload(&node.router);
            let same_shape = listening.len() == node.listeners.len()
                && listening
                    .iter()
                    .zip(&node.listeners)
                    .all(|((old, _), new)| fixed_part(old) == fixed_part(new));
            if same_shape {
                // Paths and authentication: new connections use the new ones.
                for ((_, accepts), new) in listening.iter().zip(&node.listeners) {
                    accepts.store(new);
                }
            } else {
                r.needs_restart.push("listeners".into());
            }
            r
        }
    }
}

/// The TLS acceptor of a listener, if it has TLS: certificate files are read now (a bad one
/// stops the start) and registered for reload on SIGHUP. `turn`: the relay runs, so the
/// listener also serves `turns:`.
fn tls_acceptor(
    l: &ListenerConfig,
    acme: Option<&crate::tls::acme::Acme>,
    reload: &crate::reload::Reload,
    turn: bool,
) -> Result<Option<tokio_rustls::TlsAcceptor>, StartError> {
    use crate::tls::{self, TlsSource};
    let fail = |message: String| StartError::Tls {
        origin: l.origin.clone(),
        message,
    };
    let resolver = match &l.tls {
        None => return Ok(None),
        Some(TlsSource::Files(files)) => {
            let key = tls::load_files(files).map_err(fail)?;
            let resolver = tls::CertResolver::new(Some(key));
            let (r, files) = (resolver.clone(), files.clone());
            reload.add(
                format!("{}: TLS certificate", l.origin),
                Arc::new(move || {
                    let key = tls::load_files(&files)?;
                    r.set(key);
                    Ok(format!(
                        "certificate reloaded from {}",
                        files.certificate.display()
                    ))
                }),
            );
            resolver
        }
        Some(TlsSource::Acme) => match acme {
            Some(a) => a.resolver.clone(),
            None => return Err(fail("ACME certificates need the ACME settings".into())),
        },
    };
    let acme_alpn = l.tls == Some(TlsSource::Acme)
        && acme.is_some_and(|a| a.challenge == crate::tls::acme::Challenge::TlsAlpn01);
    tls::acceptor(resolver, acme_alpn, turn)
        .map(Some)
        .map_err(fail)
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
    // The TURN relay binds first: the `turn:` URIs the chat service hands out carry its ports.
    let mut router_cfg = opts.node.router.clone();
    let turn_bound = match &router_cfg.calls.turn {
        Some(t) => {
            let b = crate::calls::turn::io::bind(t)
                .await
                .map_err(|source| StartError::Bind {
                    origin: "calls.turn.listen".into(),
                    endpoint: Endpoint::Tcp(t.listen),
                    source,
                })?;
            let (host, udp, tcp) = (b.host(t), b.udp_addr(), b.tcp_addr());
            // `turns:` is served on the TLS web listener (see `dispatch_tls`).
            let tls_port = opts.listeners().into_iter().find_map(|l| match l.endpoint {
                Endpoint::Tcp(a) if l.tls.is_some() => Some(a.port()),
                _ => None,
            });
            let acme_domains = opts.node.acme.as_ref().map(|a| a.domains.as_slice());
            let turns = crate::calls::turn::TurnsAt::find(
                t.host.as_deref(),
                acme_domains.unwrap_or_default(),
                tls_port,
            );
            if let Some(u) = udp {
                let uris = &mut router_cfg.calls.ice_uris;
                let tcp = tcp.map(|a| a.port());
                crate::calls::turn::add_ice_uris(uris, &host, u.port(), tcp, turns.as_ref());
            }
            Some(b)
        }
        None => None,
    };
    let router = Router::with_store(router_cfg, Some(store.principals()), Some(store.history()));
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
    let mut files = None;
    let chat_handle: crate::admin::ChatHandle = Default::default();
    if let Some(cfg) = &opts.node.router.chat {
        let chat_store = store.chat().map_err(store_err)?;
        let chat = crate::chat::service::start(router.clone(), chat_store, cfg.clone())
            .await
            .map_err(StartError::Chat)?;
        files = Some(chat.files.clone());
        let _ = chat_handle.set(chat);
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
    crate::tls::install_default_provider();
    let reload = crate::reload::Reload::default();
    let http01 = opts
        .node
        .acme
        .as_ref()
        .is_some_and(|a| a.challenge == crate::tls::acme::Challenge::Http01);
    if http01 && opts.node.http_redirect.is_none() {
        tracing::warn!("ACME uses HTTP-01 challenges, answered by the plain-HTTP redirect listener: without one (--http-redirect-listen 0.0.0.0:80, or the worker's http_redirect) no certificate can be issued");
    }
    let acme = match &opts.node.acme {
        Some(cfg) => Some(
            crate::tls::acme::start(cfg.clone(), &opts.data_dir).map_err(|message| {
                StartError::Tls {
                    origin: "acme".into(),
                    message,
                }
            })?,
        ),
        None => None,
    };
    let mut listeners = Vec::new();
    let mut accept_tasks = Vec::new();
    // TLS listeners also serve `turns:` once the relay runs (it starts after the listeners).
    let turns: Arc<std::sync::OnceLock<TurnServer>> = Arc::default();
    for l in opts.listeners() {
        let turn = opts.node.router.calls.turn.is_some();
        let acceptor = tls_acceptor(&l, acme.as_ref(), &reload, turn)?;
        let (socket, addr) = bind(&l).await?;
        let mut bridge = Vec::new();
        for (path, config) in &l.bridge {
            let b = Bridge::new(config.clone(), &router).ok_or_else(|| StartError::Component {
                origin: format!("{}: bridge path {path}", l.origin),
                message: format!("realm '{}' does not exist", config.realm),
            })?;
            bridge.push((path.clone(), Arc::new(b)));
        }
        let accepts = Accepts::new(&l);
        let http = (l.web || !l.websocket.is_empty() || !bridge.is_empty()).then(|| {
            Arc::new(HttpState {
                router: router.clone(),
                conns: conns.clone(),
                started,
                started_at,
                websocket: accepts.websocket.clone(),
                web: l.web,
                echo_path: opts.echo_path.clone(),
                echo_max_message: opts.echo_max_message,
                bridge,
                webhooks: webhook_stats.clone(),
                setup: setup.clone(),
                files: files.clone(),
                tls: acceptor.is_some(),
            })
        });
        let raw_now = accepts.rawsocket.clone();
        let raw = move || raw_now.load_full().map(|e| (*e).clone());
        let (router, conns, turns) = (router.clone(), conns.clone(), turns.clone());
        accept_tasks.push(match socket {
            Socket::Tcp(t) => tokio::spawn(async move {
                loop {
                    match t.accept().await {
                        // Debug lines of a connection carry its peer (a disabled span at the
                        // default level costs nothing per idle connection).
                        Ok((stream, peer)) => match &acceptor {
                            Some(a) => {
                                tokio::spawn(
                                    dispatch_tls(
                                        stream,
                                        a.clone(),
                                        Serves {
                                            http: http.clone(),
                                            raw: raw(),
                                            turn: turns.get().cloned(),
                                        },
                                        router.clone(),
                                        conns.clone(),
                                    )
                                    .instrument(tracing::debug_span!("conn", %peer, tls = true, session = tracing::field::Empty)),
                                );
                            }
                            None => {
                                tokio::spawn(
                                    dispatch_tcp(
                                        stream,
                                        peer,
                                        http.clone(),
                                        raw(),
                                        router.clone(),
                                        conns.clone(),
                                    )
                                    .instrument(tracing::debug_span!("conn", %peer, session = tracing::field::Empty)),
                                );
                            }
                        },
                        // Out of file descriptors and the like: back off instead of spinning.
                        Err(e) => {
                            tracing::warn!(error = %e, "accept failed");
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                    }
                }
            }),
            Socket::Unix(u) => tokio::spawn(async move {
                loop {
                    match u.accept().await {
                        Ok((stream, _)) => {
                            let Some(endpoint) = raw() else { continue };
                            let (router, conns) = (router.clone(), conns.clone());
                            tokio::spawn(async move {
                                match conns.admissions.admit(None) {
                                    Ok(_admission) => {
                                        rawsocket::serve(stream, router, conns, endpoint, None)
                                            .await
                                    }
                                    Err(limit) => {
                                        router.metrics.limit_refused(limit);
                                        rawsocket::refuse(stream, rawsocket::ERR_CONNECTION_COUNT)
                                            .await
                                    }
                                }
                            });
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "accept failed");
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                    }
                }
            }),
        });
        listeners.push(Bound {
            config: l,
            addr,
            accepts,
        });
    }
    let first = listeners
        .iter()
        .find(|b| b.config.web || !b.config.websocket.is_empty())
        .or(listeners.first());
    let addr = first
        .and_then(|b| b.addr)
        .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)));
    let tls = first.is_some_and(|b| b.config.tls.is_some());
    // Plain HTTP → HTTPS, and the ACME HTTP-01 challenges.
    let mut redirect_addr = None;
    if let Some(at) = opts.node.http_redirect {
        let fail = |source| StartError::Bind {
            origin: "http redirect".into(),
            endpoint: Endpoint::Tcp(at),
            source,
        };
        let t = TcpListener::bind(at).await.map_err(fail)?;
        redirect_addr = Some(t.local_addr().map_err(fail)?);
        let https_port = listeners
            .iter()
            .find(|b| b.config.tls.is_some() && b.addr.is_some())
            .and_then(|b| b.addr)
            .map_or(443, |a| a.port());
        let cfg = Arc::new(crate::http::redirect::Redirect {
            https_port,
            challenges: acme.as_ref().map(|a| a.challenges.clone()),
        });
        accept_tasks.push(tokio::spawn(crate::http::redirect::serve(t, cfg)));
    }
    let rawsocket_addr = listeners
        .iter()
        .find(|b| b.config.rawsocket.is_some() && b.addr.is_some())
        .and_then(|b| b.addr);
    // The STUN server for calls (UDP).
    let mut stun_addr = None;
    let (mut turn_addr, mut turn_tcp_addr) = (None, None);
    if let (Some(b), Some(t)) = (turn_bound, &opts.node.router.calls.turn) {
        (turn_addr, turn_tcp_addr) = (b.udp_addr(), b.tcp_addr());
        let secret = opts.node.router.calls.turn_secret.as_ref();
        let secret = secret.map(|s| s.0.as_str()).unwrap_or_default();
        tracing::info!(udp = ?turn_addr, tcp = ?turn_tcp_addr, relay_ip = %b.relay_ip, "TURN relay (and STUN)");
        let r = crate::calls::turn::io::start(b, t.clone(), secret, router.metrics.clone())
            .map_err(|source| StartError::Bind {
                origin: "calls.turn".into(),
                endpoint: Endpoint::Tcp(t.listen),
                source,
            })?;
        let _ = turns.set(r.server.clone());
        accept_tasks.extend(r.tasks);
    }
    let stun_shared = opts.node.router.calls.stun_listen.is_some()
        && opts.node.router.calls.stun_listen
            == opts.node.router.calls.turn.as_ref().map(|t| t.listen);
    if stun_shared {
        stun_addr = turn_addr;
    }
    if let Some(at) = opts.node.router.calls.stun_listen.filter(|_| !stun_shared) {
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
        admin: match crate::admin::serve(store.clone(), &opts.data_dir, chat_handle, reload.clone())
        {
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
        tls,
        redirect_addr,
        reload,
        acme,
        turn_addr,
        turn_tcp_addr,
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
        if let Some(a) = &self.acme {
            a.stop();
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Connections are accepted without a per-connection `setsockopt`: NODELAY comes from the
    /// listener. WAMP replies are small and must not wait for Nagle.
    #[tokio::test]
    async fn accepted_tcp_connections_have_nodelay() {
        let l = ListenerConfig {
            endpoint: Endpoint::Tcp("127.0.0.1:0".parse().unwrap()),
            websocket: vec![],
            rawsocket: None,
            web: false,
            bridge: vec![],
            tls: None,
            origin: "test".into(),
        };
        let Ok((Socket::Tcp(listener), Some(addr))) = bind(&l).await else {
            panic!("no TCP listener");
        };
        let _client = TcpStream::connect(addr).await.unwrap();
        let (accepted, _) = listener.accept().await.unwrap();
        assert!(accepted.nodelay().unwrap());
    }
}
