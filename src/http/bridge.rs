//! The HTTP bridge: Crossbar's `publisher` and `caller` web paths, what a PHP (or any HTTP)
//! back end uses to publish events and call procedures without speaking WAMP.
//!
//! `POST {"topic", "args", "kwargs", "options"}` to a publisher path publishes and answers
//! `{"id": publication}`; `POST {"procedure", "args", "kwargs"}` to a caller path calls and
//! answers `{"args": [...], "kwargs": {...}}`. Each path acts through a router-internal session
//! of its configured realm and role (`Router::local_client`), so the role's permissions apply
//! to HTTP callers as to any WAMP client. Errors answer `{"error": URI, "args": [message],
//! "kwargs": {}}` with a status that says what went wrong (see `status_for`).

use super::signature::{Refusal, Verifier};
use super::Body;
use crate::config::{BridgeConfig, BridgeKind};
use crate::router::local::{CallFailure, LocalClient};
use crate::router::Router;
use crate::wamp::uris;
use crate::wamp::value::{Dict, DictRef, JsonValueOwned, List, ListRef, Value};
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::header::{HeaderValue, ALLOW, CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE, RETRY_AFTER};
use hyper::{Method, Request, Response, StatusCode};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::sync::Semaphore;

/// Requests one path handles at once; more wait up to `QUEUE_WAIT` for a turn, then get 503.
/// Bounds the memory held in request bodies (this many × the body limit).
const MAX_CONCURRENT: usize = 128;
const QUEUE_WAIT: Duration = Duration::from_secs(5);
/// How long a client may take to send its body.
const BODY_TIMEOUT: Duration = Duration::from_secs(30);

/// Error URIs of refusals that happen before anything reaches the router.
const BAD_REQUEST: &str = uris::INVALID_ARGUMENT;
const BAD_SIGNATURE: &str = uris::AUTHENTICATION_FAILED;
const UNAVAILABLE: &str = "switchboard.error.unavailable";

/// One configured bridge path and what it needs at run time.
pub struct Bridge {
    config: BridgeConfig,
    client: Arc<LocalClient>,
    verifier: Option<Verifier>,
    permits: Semaphore,
}

impl Bridge {
    /// `None` if the realm does not exist (the config loader prevents that). Needs a runtime.
    pub fn new(config: BridgeConfig, router: &Router) -> Option<Bridge> {
        let client = router.local_client(&config.realm, Some(&config.role))?;
        let verifier = config
            .signing
            .clone()
            .map(|k| Verifier::new(k, config.timestamp_window));
        Some(Bridge {
            config,
            client,
            verifier,
            permits: Semaphore::new(MAX_CONCURRENT),
        })
    }
}

/// A JSON response.
fn json(status: StatusCode, body: Vec<u8>) -> Response<Body> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

#[derive(serde::Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
    args: ListRef<'a, true>,
    kwargs: DictRef<'a, true>,
}

fn error_body(status: StatusCode, uri: &str, args: &[Value], kwargs: &Dict) -> Response<Body> {
    let body = ErrorBody {
        error: uri,
        args: ListRef(args),
        kwargs: DictRef(kwargs),
    };
    json(status, serde_json::to_vec(&body).unwrap_or_default())
}

/// A refusal of the bridge itself: `{"error": uri, "args": [reason], "kwargs": {}}`.
fn refuse(status: StatusCode, uri: &str, reason: impl Into<String>) -> Response<Body> {
    error_body(status, uri, &[Value::Str(reason.into())], &Dict::new())
}

/// The HTTP status for a WAMP error: the router's refusals get their own; anything else is the
/// callee's application error, which Crossbar answers with 200 and the error in the body.
pub fn status_for(uri: &str) -> StatusCode {
    match uri {
        uris::INVALID_URI | uris::INVALID_ARGUMENT | uris::OPTION_NOT_ALLOWED => {
            StatusCode::BAD_REQUEST
        }
        uris::NOT_AUTHORIZED | uris::AUTHORIZATION_FAILED => StatusCode::FORBIDDEN,
        uris::NO_SUCH_PROCEDURE => StatusCode::NOT_FOUND,
        uris::TIMEOUT => StatusCode::GATEWAY_TIMEOUT,
        uris::CANCELED => StatusCode::BAD_GATEWAY,
        _ => StatusCode::OK,
    }
}

fn failure(f: &CallFailure) -> Response<Body> {
    let args = f.payload.args.as_deref().unwrap_or_default();
    let empty = Dict::new();
    let kwargs = f.payload.kwargs.as_ref().unwrap_or(&empty);
    error_body(status_for(&f.uri), &f.uri, args, kwargs)
}

/// Handles one request to `bridge`'s path.
pub async fn handle(
    bridge: &Bridge,
    req: Request<hyper::body::Incoming>,
    peer: Option<SocketAddr>,
    tls: bool,
) -> Response<Body> {
    let path = req.uri().path().to_owned();
    let resp = process(bridge, req, peer, tls).await;
    let status = resp.status().as_u16();
    if bridge.config.debug {
        tracing::info!(path, status, peer = ?peer, "http bridge request");
    } else {
        tracing::debug!(path, status, peer = ?peer, "http bridge request");
    }
    resp
}

async fn process(
    bridge: &Bridge,
    req: Request<hyper::body::Incoming>,
    peer: Option<SocketAddr>,
    tls: bool,
) -> Response<Body> {
    let cfg = &bridge.config;
    match *req.method() {
        Method::POST | Method::PUT => {}
        Method::OPTIONS => {
            let mut r = json(StatusCode::NO_CONTENT, Vec::new());
            r.headers_mut()
                .insert(ALLOW, HeaderValue::from_static("POST, PUT, OPTIONS"));
            return r;
        }
        _ => {
            let mut r = refuse(
                StatusCode::METHOD_NOT_ALLOWED,
                BAD_REQUEST,
                "use POST with a JSON body",
            );
            r.headers_mut()
                .insert(ALLOW, HeaderValue::from_static("POST, PUT, OPTIONS"));
            return r;
        }
    }
    if let Some(nets) = &cfg.require_ip {
        let ip = peer.map(|p| p.ip());
        if !ip.is_some_and(|ip| nets.iter().any(|n| n.contains(ip))) {
            let who = ip.map_or("unknown".to_owned(), |ip| ip.to_string());
            return refuse(
                StatusCode::FORBIDDEN,
                uris::NOT_AUTHORIZED,
                format!("client address {who} is not allowed on this path (require_ip)"),
            );
        }
    }
    if cfg.require_tls && !tls {
        return refuse(
            StatusCode::FORBIDDEN,
            uris::NOT_AUTHORIZED,
            "this path requires TLS (require_tls): use https:// on a listener with TLS",
        );
    }
    if let Err(why) = check_content_type(&req) {
        return refuse(StatusCode::UNSUPPORTED_MEDIA_TYPE, BAD_REQUEST, why);
    }
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > cfg.body_limit as u64) {
        return too_large(cfg.body_limit);
    }
    let Ok(Ok(_permit)) = tokio::time::timeout(QUEUE_WAIT, bridge.permits.acquire()).await else {
        let mut r = refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            UNAVAILABLE,
            "too many bridge requests in progress; retry shortly",
        );
        r.headers_mut()
            .insert(RETRY_AFTER, HeaderValue::from_static("1"));
        return r;
    };
    let query = req.uri().query().map(str::to_owned);
    let body = match read_body(req, cfg.body_limit).await {
        Ok(b) => b,
        Err(resp) => return resp,
    };
    if let Some(v) = &bridge.verifier {
        if let Err(r) = v.check(query.as_deref(), &body, SystemTime::now()) {
            let status = match r {
                Refusal::Malformed(_) => StatusCode::BAD_REQUEST,
                Refusal::Busy => StatusCode::SERVICE_UNAVAILABLE,
                _ => StatusCode::UNAUTHORIZED,
            };
            let uri = if status == StatusCode::BAD_REQUEST {
                BAD_REQUEST
            } else {
                BAD_SIGNATURE
            };
            return refuse(status, uri, r.to_string());
        }
    }
    let request = match parse(&body) {
        Ok(d) => d,
        Err(why) => return refuse(StatusCode::BAD_REQUEST, BAD_REQUEST, why),
    };
    match cfg.kind {
        BridgeKind::Publisher => publish(&bridge.client, request).await,
        BridgeKind::Caller => call(&bridge.client, request, cfg.call_timeout).await,
    }
}

fn too_large(limit: usize) -> Response<Body> {
    refuse(
        StatusCode::PAYLOAD_TOO_LARGE,
        uris::PAYLOAD_SIZE_EXCEEDED,
        format!("request body larger than {limit} bytes (post_body_limit)"),
    )
}

/// A body may be JSON (`application/json`, UTF-8) or come without a Content-Type.
fn check_content_type<B>(req: &Request<B>) -> Result<(), String> {
    let Some(v) = req.headers().get(CONTENT_TYPE) else {
        return Ok(());
    };
    let v = v.to_str().unwrap_or("").to_ascii_lowercase();
    let mut parts = v.split(';').map(str::trim);
    if parts.next() != Some("application/json") {
        return Err(format!(
            "Content-Type must be application/json, got '{}'",
            v.chars().take(100).collect::<String>()
        ));
    }
    for p in parts {
        if let Some(cs) = p.strip_prefix("charset=") {
            if !matches!(cs.trim_matches('"'), "utf-8" | "utf8") {
                return Err(format!("charset must be utf-8, got '{cs}'"));
            }
        }
    }
    Ok(())
}

async fn read_body(
    req: Request<hyper::body::Incoming>,
    limit: usize,
) -> Result<Bytes, Response<Body>> {
    let body = Limited::new(req.into_body(), limit);
    match tokio::time::timeout(BODY_TIMEOUT, body.collect()).await {
        Ok(Ok(c)) => Ok(c.to_bytes()),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => Err(too_large(limit)),
        Ok(Err(e)) => Err(refuse(
            StatusCode::BAD_REQUEST,
            BAD_REQUEST,
            format!("could not read the request body: {e}"),
        )),
        Err(_) => Err(refuse(
            StatusCode::REQUEST_TIMEOUT,
            BAD_REQUEST,
            format!(
                "the request body did not arrive within {} s",
                BODY_TIMEOUT.as_secs()
            ),
        )),
    }
}

/// The body as a JSON object (binary values in WAMP's `"\u0000" + base64` form are bytes).
fn parse(body: &[u8]) -> Result<Dict, String> {
    match serde_json::from_slice::<JsonValueOwned>(body) {
        Ok(JsonValueOwned(Value::Dict(d))) => Ok(d),
        Ok(JsonValueOwned(other)) => Err(format!(
            "the body must be a JSON object, got {}",
            other.kind()
        )),
        Err(e) => Err(format!("invalid JSON: {e}")),
    }
}

/// Reads a body as the bridge does before it acts: a publish's (topic, args, kwargs, options) or,
/// with `call`, a call's (procedure, args, kwargs, empty options). What the fuzzer drives.
pub fn read_request(body: &[u8], call: bool) -> Result<(String, List, Dict, Dict), String> {
    let mut request = parse(body)?;
    let uri = uri_field(&mut request, if call { "procedure" } else { "topic" })?;
    let args = list_field(&mut request, "args")?;
    let kwargs = dict_field(&mut request, "kwargs")?;
    let options = if call {
        Dict::new()
    } else {
        dict_field(&mut request, "options")?
    };
    Ok((uri, args, kwargs, options))
}

/// Takes `key` out of the request; absent and null are `None`.
fn take(request: &mut Dict, key: &str) -> Option<Value> {
    let at = request.iter().position(|(k, _)| k == key)?;
    match request.swap_remove(at).1 {
        Value::Null => None,
        v => Some(v),
    }
}

fn uri_field(request: &mut Dict, key: &str) -> Result<String, String> {
    match take(request, key) {
        Some(Value::Str(s)) => Ok(s),
        Some(other) => Err(format!("'{key}' must be a string, got {}", other.kind())),
        None => Err(format!("'{key}' is missing from the request body")),
    }
}

fn list_field(request: &mut Dict, key: &str) -> Result<List, String> {
    match take(request, key) {
        Some(Value::List(l)) => Ok(l),
        Some(other) => Err(format!("'{key}' must be a list, got {}", other.kind())),
        None => Ok(List::new()),
    }
}

fn dict_field(request: &mut Dict, key: &str) -> Result<Dict, String> {
    match take(request, key) {
        Some(Value::Dict(d)) => Ok(d),
        Some(other) => Err(format!("'{key}' must be an object, got {}", other.kind())),
        None => Ok(Dict::new()),
    }
}

async fn publish(client: &LocalClient, mut request: Dict) -> Response<Body> {
    let fields = (|| {
        Ok::<_, String>((
            uri_field(&mut request, "topic")?,
            list_field(&mut request, "args")?,
            dict_field(&mut request, "kwargs")?,
            dict_field(&mut request, "options")?,
        ))
    })();
    let (topic, args, kwargs, mut options) = match fields {
        Ok(f) => f,
        Err(why) => return refuse(StatusCode::BAD_REQUEST, BAD_REQUEST, why),
    };
    // The bridge's session is shared; its own subscribers (if any) must see the event too.
    options.retain(|(k, _)| k != "exclude_me");
    options.push(("exclude_me".into(), Value::Bool(false)));
    match client.publish(&topic, args, kwargs, options).await {
        Ok(id) => json(StatusCode::OK, format!("{{\"id\":{id}}}").into_bytes()),
        Err(f) => failure(&f),
    }
}

#[derive(serde::Serialize)]
struct CallBody<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    args: Option<ListRef<'a, true>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    kwargs: Option<DictRef<'a, true>>,
}

async fn call(client: &LocalClient, mut request: Dict, timeout: Duration) -> Response<Body> {
    let fields = (|| {
        Ok::<_, String>((
            uri_field(&mut request, "procedure")?,
            list_field(&mut request, "args")?,
            dict_field(&mut request, "kwargs")?,
        ))
    })();
    let (procedure, args, kwargs) = match fields {
        Ok(f) => f,
        Err(why) => return refuse(StatusCode::BAD_REQUEST, BAD_REQUEST, why),
    };
    match client.call(&procedure, args, kwargs, timeout).await {
        Ok(result) => {
            let args = result.args.unwrap_or_default();
            let kwargs = result.kwargs.unwrap_or_default();
            // Crossbar's shape: a single (or no) result is `{"args": [value]}`; several
            // results or keyword results list what is there.
            let single = [args.first().cloned().unwrap_or(Value::Null)];
            let body = if kwargs.is_empty() && args.len() <= 1 {
                CallBody {
                    args: Some(ListRef(&single)),
                    kwargs: None,
                }
            } else {
                CallBody {
                    args: (!args.is_empty()).then_some(ListRef(&args)),
                    kwargs: (!kwargs.is_empty()).then_some(DictRef(&kwargs)),
                }
            };
            json(
                StatusCode::OK,
                serde_json::to_vec(&body).unwrap_or_default(),
            )
        }
        Err(f) => failure(&f),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_for_router_errors() {
        assert_eq!(status_for(uris::INVALID_URI), StatusCode::BAD_REQUEST);
        assert_eq!(status_for(uris::NOT_AUTHORIZED), StatusCode::FORBIDDEN);
        assert_eq!(status_for(uris::NO_SUCH_PROCEDURE), StatusCode::NOT_FOUND);
        assert_eq!(status_for(uris::TIMEOUT), StatusCode::GATEWAY_TIMEOUT);
        assert_eq!(status_for("com.example.out_of_stock"), StatusCode::OK);
    }

    #[test]
    fn bodies_are_json_objects() {
        assert!(parse(br#"{"topic": "a.b", "args": ["\u0000AQI="]}"#).is_ok());
        assert!(parse(b"[1]").unwrap_err().contains("JSON object"));
        assert!(parse(b"{").unwrap_err().starts_with("invalid JSON"));
        let mut d = parse(br#"{"topic": 1, "args": null, "kwargs": []}"#).unwrap();
        assert!(uri_field(&mut d, "topic").unwrap_err().contains("string"));
        assert_eq!(list_field(&mut d, "args"), Ok(vec![]));
        assert!(dict_field(&mut d, "kwargs").unwrap_err().contains("object"));
        assert!(uri_field(&mut d, "procedure")
            .unwrap_err()
            .contains("missing"));
    }
}
