//! The HTTP surface: WebSocket upgrades (WAMP at `/ws`, the optional echo endpoint), the HTTP
//! bridge paths, the status API, `/metrics` and the health probes, and the embedded web UI. Subprotocol negotiation happens here,
//! because fastwebsockets' upgrade does not look at `Sec-WebSocket-Protocol`.

mod assets;
pub mod bridge;
mod files;
mod ops;
mod query;
pub mod redirect;
pub mod setup;
pub mod signature;
pub mod webhook;

use crate::auth::TransportInfo;
use crate::config::WampEndpoint;
use crate::framing::Framing;
use crate::outbox::Outbox;
use crate::router::Router;
use crate::session::Session;
use crate::transport::admission::Admission;
use crate::transport::connection::{self, Handler};
use crate::transport::connections::Connections;
use crate::wamp::Serializer;
use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderValue, CONTENT_TYPE, SEC_WEBSOCKET_PROTOCOL};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tracing::Instrument;

pub type Body = Full<Bytes>;

/// Everything the HTTP handlers need.
pub struct HttpState {
    pub router: Arc<Router>,
    pub conns: Arc<Connections>,
    pub started: Instant,
    pub started_at: SystemTime,
    /// WAMP-over-WebSocket paths on this listener (`*`: any path) and what each accepts.
    pub websocket: Arc<arc_swap::ArcSwap<Vec<(String, WampEndpoint)>>>,
    /// Serve the web UI and `/api/status`.
    pub web: bool,
    pub echo_path: Option<String>,
    /// Largest message on the echo endpoint (it is used with the Autobahn Testsuite).
    pub echo_max_message: usize,
    /// HTTP bridge paths on this listener.
    pub bridge: Vec<(String, Arc<bridge::Bridge>)>,
    /// The node's webhooks (their counters are in the status).
    pub webhooks: Arc<[Arc<webhook::Stats>]>,
    /// First-run setup of the first staff account.
    pub setup: Arc<setup::Setup>,
    /// Chat attachments (when the chat service runs).
    pub files: Option<Arc<crate::chat::files::Files>>,
    /// This listener speaks TLS (HSTS is sent, `require_tls` bridge paths accept requests).
    pub tls: bool,
}

pub(crate) fn empty_with(status: StatusCode, reason: &str) -> Response<Body> {
    let mut r = Response::new(Full::new(Bytes::from(format!("{reason}\n"))));
    *r.status_mut() = status;
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

/// The security headers of every response from a web listener. The pages load scripts and
/// styles only from this origin (none inline), embed nothing, may not be framed; `widget.js` is
/// a plain script that other sites load with `<script src>`, which none of this restricts.
/// HSTS only over TLS (browsers ignore it over plain HTTP, and it must not pin a plain-HTTP
/// development server to HTTPS).
pub(crate) fn security_headers(resp: &mut Response<Body>, tls: bool) {
    let h = resp.headers_mut();
    if tls {
        h.insert(
            hyper::header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000"),
        );
    }
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    h.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    h.insert(
        "content-security-policy",
        HeaderValue::from_static("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self' ws: wss:; object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'"),
    );
}

/// A process-wide number for each plain HTTP request (for the logs).
fn next_request_id() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

/// A state-changing request from a browser on another site: refused before any handler runs.
/// Same site means the `Origin`'s host is the `Host` (or, behind a proxy that rewrites `Host`,
/// `X-Forwarded-Host`), or the browser itself says `Sec-Fetch-Site: same-origin`. A page on
/// another site can set none of these (they are forbidden or need a CORS preflight we never
/// grant). Requests without `Origin` (non-browser clients, old browsers' form posts to the same
/// origin) pass; the handlers authenticate them.
fn cross_site<B>(req: &Request<B>) -> Option<String> {
    if matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS) {
        return None;
    }
    let h = req.headers();
    let origin = h.get(hyper::header::ORIGIN)?;
    let origin = origin.to_str().unwrap_or("?");
    let header = |name: &str| h.get(name).and_then(|v| v.to_str().ok()).unwrap_or("");
    let origin_host = origin
        .strip_prefix("https://")
        .or_else(|| origin.strip_prefix("http://"))
        .unwrap_or("");
    let host = header("host");
    let forwarded = header("x-forwarded-host")
        .split(',')
        .next()
        .unwrap_or("")
        .trim();
    let same = |h: &str| !h.is_empty() && origin_host.eq_ignore_ascii_case(h);
    if same(host) || same(forwarded) || header("sec-fetch-site") == "same-origin" {
        return None;
    }
    Some(format!(
        "cross-site request refused: Origin '{}' is not this server ('{}')",
        origin.chars().take(200).collect::<String>(),
        host.chars().take(200).collect::<String>()
    ))
}

/// Serves one HTTP connection (and hands upgraded ones to the WebSocket transport): a TCP
/// stream, or a TLS stream (`tls::ServerStream`).
///
/// `admission` is the connection's place under the connection caps: an upgraded WebSocket
/// keeps it until the WebSocket ends.
pub async fn serve_connection<I>(
    io: I,
    peer: Option<SocketAddr>,
    state: Arc<HttpState>,
    admission: Arc<Admission>,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let io = TokioIo::new(io);
    let svc = service_fn(move |req: Request<hyper::body::Incoming>| {
        let state = state.clone();
        let admission = admission.clone();
        // Every log line of a plain HTTP request carries its id, method and path (never the
        // query, which may hold a token). A WebSocket upgrade keeps the connection's span
        // instead: its session lines carry the session id, and an idle session pays nothing.
        let span = if fastwebsockets::upgrade::is_upgrade_request(&req) {
            tracing::Span::current()
        } else {
            tracing::info_span!(
                "http",
                request = next_request_id(),
                method = %req.method(),
                path = %req.uri().path()
            )
        };
        async move {
            let path = req.uri().path();
            let tls = state.tls;
            let resp = match state.bridge.iter().find(|(p, _)| p == path) {
                Some((_, b)) => {
                    let mut resp = bridge::handle(b, req, peer, tls).await;
                    security_headers(&mut resp, tls);
                    resp
                }
                // Chat files are fetched from the business's own site: no cookies are involved
                // (a token or signature in the URL is the credential), so no cross-site check.
                None if path.starts_with(crate::chat::files::PATH) && state.files.is_some() => {
                    match &state.files {
                        Some(f) => files::handle(req, f).await,
                        None => empty_with(StatusCode::NOT_FOUND, "not found"),
                    }
                }
                None if state.web && cross_site(&req).is_some() => {
                    let why = cross_site(&req).unwrap_or_default();
                    let mut resp = empty_with(StatusCode::FORBIDDEN, &why);
                    security_headers(&mut resp, tls);
                    resp
                }
                None if state.web && path == "/api/setup" => {
                    let mut resp = setup::handle(&state.setup, &state.router, req).await;
                    security_headers(&mut resp, tls);
                    resp
                }
                None => route(req, &state, peer, admission),
            };
            tracing::debug!(status = resp.status().as_u16(), "http request answered");
            Ok::<_, Infallible>(resp)
        }
        .instrument(span)
    });
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(10))
        .serve_connection(io, svc)
        .with_upgrades();
    if let Err(e) = conn.await {
        tracing::debug!(error = %e, "http connection ended with an error");
    }
}

fn route(
    mut req: Request<hyper::body::Incoming>,
    state: &Arc<HttpState>,
    peer: Option<SocketAddr>,
    admission: Arc<Admission>,
) -> Response<Body> {
    let path = req.uri().path().to_owned();
    let is_upgrade = fastwebsockets::upgrade::is_upgrade_request(&req);
    let wamp = state
        .websocket
        .load()
        .iter()
        .find(|(p, _)| *p == path || (p == "*" && is_upgrade))
        .map(|(_, e)| e.clone());
    let mut resp = if state.echo_path.as_deref() == Some(path.as_str()) {
        upgrade(&mut req, state, None, peer, admission)
    } else if let Some(endpoint) = wamp {
        upgrade(&mut req, state, Some(endpoint), peer, admission)
    } else if !state.web {
        empty_with(StatusCode::NOT_FOUND, "not found")
    } else if let Some(resp) = ops::route(&req, state, &path) {
        resp
    } else if path == "/api/status" {
        if req.method() == Method::GET || req.method() == Method::HEAD {
            status(state)
        } else {
            empty_with(StatusCode::METHOD_NOT_ALLOWED, "only GET is allowed here")
        }
    } else if req.method() == Method::GET || req.method() == Method::HEAD {
        assets::serve(&req, &path)
    } else {
        empty_with(
            StatusCode::METHOD_NOT_ALLOWED,
            "only GET and HEAD are allowed here",
        )
    };
    // A 101 starts a WebSocket, not a document: page policies mean nothing there, and every
    // connection would pay to format them.
    if resp.status() != StatusCode::SWITCHING_PROTOCOLS {
        security_headers(&mut resp, state.tls);
    }
    resp
}

/// The first WAMP subprotocol the client offers that we speak (client's order of preference).
fn pick_serializer<B>(req: &Request<B>, allowed: &[Serializer]) -> Option<Serializer> {
    req.headers()
        .get_all(SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|p| Serializer::from_subprotocol(p.trim()))
        .find(|s| allowed.contains(s))
}

/// Upgrades to WebSocket: WAMP with `endpoint`'s serializers and auth, or the echo endpoint.
fn upgrade(
    req: &mut Request<hyper::body::Incoming>,
    state: &Arc<HttpState>,
    endpoint: Option<WampEndpoint>,
    peer: Option<SocketAddr>,
    admission: Arc<Admission>,
) -> Response<Body> {
    if !fastwebsockets::upgrade::is_upgrade_request(req) {
        return empty_with(
            StatusCode::UPGRADE_REQUIRED,
            "this endpoint speaks WebSocket only",
        );
    }
    if !state.conns.is_accepting() {
        return empty_with(
            StatusCode::SERVICE_UNAVAILABLE,
            "the server is shutting down",
        );
    }
    if let Some(e) = &endpoint {
        let origin = req
            .headers()
            .get(hyper::header::ORIGIN)
            .and_then(|v| v.to_str().ok());
        if !e.origin_allowed(origin) {
            return empty_with(
                StatusCode::FORBIDDEN,
                &format!(
                    "origin '{}' is not allowed on this transport",
                    origin.unwrap_or("")
                ),
            );
        }
    }
    let serializer = match &endpoint {
        None => None,
        Some(e) => match pick_serializer(req, &e.serializers) {
            Some(s) => Some(s),
            None => {
                let names: Vec<&str> = e.serializers.iter().map(|s| s.subprotocol()).collect();
                return empty_with(
                    StatusCode::BAD_REQUEST,
                    &format!(
                        "no supported WAMP subprotocol offered: use one of {}",
                        names.join(", ")
                    ),
                );
            }
        },
    };
    let auth = endpoint.map(|e| e.auth);
    // What authenticators and authorizers are told about the client (Crossbar's `transport`);
    // the HTTP headers only where a dynamic authenticator or authorizer may ask for them.
    let transport = serializer.map(|s| {
        let wants_headers =
            auth.as_ref().is_some_and(|a| !a.dynamic.is_empty()) || state.router.has_authorizers();
        TransportInfo {
            framing: Framing::WebSocket,
            peer,
            protocol: Some(s.subprotocol()),
            http_headers: wants_headers.then(|| {
                Box::new(
                    req.headers()
                        .iter()
                        .filter_map(|(k, v)| {
                            Some((k.as_str().to_owned(), v.to_str().ok()?.to_owned()))
                        })
                        .collect(),
                )
            }),
        }
    });
    let (resp, fut) = match fastwebsockets::upgrade::upgrade(req) {
        Ok(x) => x,
        Err(e) => {
            return empty_with(
                StatusCode::BAD_REQUEST,
                &format!("invalid WebSocket upgrade: {e}"),
            )
        }
    };
    let state = state.clone();
    tokio::spawn(
        async move {
            let _admission = admission;
            let ws = match fut.await {
                Ok(ws) => ws,
                Err(e) => {
                    tracing::debug!(error = %e, "websocket upgrade failed");
                    return;
                }
            };
            let conn = WsConn {
                state,
                serializer,
                auth,
                transport,
            };
            match take_upgraded(ws.into_inner().into_inner(), conn) {
                Upgraded::Tcp(conn, stream, leftover) => conn.run(stream, leftover).await,
                Upgraded::Boxed(tls) => tls.await,
                Upgraded::Unknown => {
                    tracing::error!("upgraded connection is neither TCP nor TLS")
                }
            }
        }
        .instrument(tracing::Span::current()),
    );
    let mut resp = resp.map(|_| Full::new(Bytes::new()));
    if let Some(s) = serializer {
        resp.headers_mut().insert(
            SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_static(s.subprotocol()),
        );
    }
    resp
}

/// What the upgrade task runs after the handshake.
enum Upgraded {
    /// A plain TCP connection: run inline in the task.
    Tcp(WsConn, TcpStream, Bytes),
    /// A TLS connection, already boxed: rustls' state is several KiB, and inline it would size
    /// the task of every plain connection for TLS.
    Boxed(std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>),
    Unknown,
}

/// Takes the socket out of hyper's upgraded connection. A plain function, so that hyper's
/// `Parts` (the TLS one is over a KiB) never live in the task's state across an await.
fn take_upgraded(upgraded: hyper::upgrade::Upgraded, conn: WsConn) -> Upgraded {
    let upgraded = match upgraded.downcast::<TokioIo<TcpStream>>() {
        Ok(parts) => return Upgraded::Tcp(conn, parts.io.into_inner(), parts.read_buf),
        Err(upgraded) => upgraded,
    };
    match upgraded.downcast::<TokioIo<crate::tls::ServerStream>>() {
        Ok(parts) => {
            let (stream, leftover) =
                crate::tls::into_socket(parts.io.into_inner(), &parts.read_buf);
            Upgraded::Boxed(Box::pin(conn.run(stream, leftover)))
        }
        Err(_) => Upgraded::Unknown,
    }
}

/// A WebSocket connection after the upgrade: what the connection task needs.
struct WsConn {
    state: Arc<HttpState>,
    serializer: Option<Serializer>,
    auth: Option<Arc<crate::config::TransportAuth>>,
    transport: Option<TransportInfo>,
}

impl WsConn {
    /// Sets the session up now and returns the connection loop: a plain function, so nothing
    /// of the setup stays in the connection's task.
    fn run<S: crate::transport::socket::Socket>(
        self,
        stream: S,
        read_buf: Bytes,
    ) -> impl std::future::Future<Output = ()> {
        let WsConn {
            state,
            serializer,
            auth,
            transport,
        } = self;
        let (max_queue_bytes, max_message_size) = {
            let limits = state.conns.limits();
            (limits.max_queue_bytes, limits.max_message_size)
        };
        // The echo endpoint must be able to queue a whole echoed message (Autobahn sends 16 MiB).
        let queue = if serializer.is_some() {
            max_queue_bytes
        } else {
            max_queue_bytes.max(2 * state.echo_max_message)
        };
        let outbox = Arc::new(Outbox::new(queue));
        let (handler, max) = match (serializer, auth, transport) {
            (Some(s), Some(auth), Some(transport)) => (
                Handler::Wamp(Session::new(
                    state.router.clone(),
                    outbox.clone(),
                    s,
                    auth,
                    transport,
                )),
                max_message_size,
            ),
            _ => (Handler::Echo, state.echo_max_message),
        };
        let counters = state.router.counters.clone();
        let reader = crate::transport::frames::WsReader::new(max);
        connection::serve(
            stream,
            read_buf,
            reader,
            handler,
            outbox,
            state.conns.clone(),
            counters,
        )
    }
}

#[derive(serde::Serialize)]
struct Status<'a> {
    name: &'static str,
    version: &'static str,
    uptime_secs: u64,
    started_at: String,
    dev_mode: bool,
    connections: usize,
    sessions: usize,
    realms: Vec<crate::router::realm::RealmStats>,
    messages_in: u64,
    messages_out: u64,
    /// Write syscalls on client sockets; with messages_out, shows how well writes batch.
    socket_writes: u64,
    /// This process, its resident memory and CPU time (for the load tool and operators).
    pid: u32,
    rss_bytes: Option<u64>,
    cpu_seconds: Option<f64>,
    /// Per webhook: events delivered, failed, dropped, retries.
    webhooks: Vec<webhook::StatsView<'a>>,
}

fn status(state: &HttpState) -> Response<Body> {
    use std::sync::atomic::Ordering;
    let s = Status {
        name: "switchboard",
        version: env!("CARGO_PKG_VERSION"),
        uptime_secs: state.started.elapsed().as_secs(),
        started_at: crate::clock::rfc3339(state.started_at),
        dev_mode: state.router.config.dev_mode,
        connections: state.conns.count(),
        sessions: state.router.session_count(),
        realms: state.router.realm_stats(),
        messages_in: state.router.metrics.messages_in.total(),
        messages_out: state.router.counters.messages_out.load(Ordering::Relaxed),
        socket_writes: state.router.counters.writes.load(Ordering::Relaxed),
        pid: std::process::id(),
        rss_bytes: crate::procfs::rss_bytes(std::process::id()),
        cpu_seconds: crate::procfs::cpu_seconds(std::process::id()),
        webhooks: state.webhooks.iter().map(|w| w.view()).collect(),
    };
    let body = serde_json::to_vec(&s).unwrap_or_default();
    let mut r = Response::new(Full::new(Bytes::from(body)));
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r.headers_mut().insert(
        hyper::header::CACHE_CONTROL,
        HeaderValue::from_static("no-store"),
    );
    r
}
