//! What operators and orchestrators ask for, on listeners that serve the web UI: `/metrics`
//! (Prometheus text, or OpenMetrics when the scraper asks for it), `/healthz` (the process
//! answers) and `/readyz` (the server accepts connections: 503 once shutdown has begun).

use super::{empty_with, Body, HttpState};
use crate::metrics::exposition::{self, Format, Snapshot};
use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderValue, ACCEPT, CACHE_CONTROL, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};

/// Answers `path` if it is one of ours; `None` leaves it to the other routes.
pub(super) fn route<B>(req: &Request<B>, state: &HttpState, path: &str) -> Option<Response<Body>> {
    if !matches!(path, "/metrics" | "/healthz" | "/readyz") {
        return None;
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return Some(empty_with(
            StatusCode::METHOD_NOT_ALLOWED,
            "only GET and HEAD are allowed here",
        ));
    }
    let mut resp = match path {
        "/metrics" => metrics(req, state),
        "/healthz" => empty_with(StatusCode::OK, "ok"),
        // The store is opened before any listener accepts and closed only after shutdown has
        // stopped accepting, so "accepting" covers both.
        _ if state.conns.is_accepting() => empty_with(StatusCode::OK, "ready"),
        _ => empty_with(StatusCode::SERVICE_UNAVAILABLE, "shutting down"),
    };
    resp.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Some(resp)
}

fn metrics<B>(req: &Request<B>, state: &HttpState) -> Response<Body> {
    let accept = req.headers().get(ACCEPT).and_then(|v| v.to_str().ok());
    let format = Format::from_accept(accept);
    let router = &state.router;
    let realms = router.realms();
    let snapshot = Snapshot {
        counters: &router.counters,
        metrics: &router.metrics,
        realms: crate::router::Router::realm_snapshots(&realms),
        connections: state.conns.count() as u64,
        started_at: state.started_at,
    };
    let text = exposition::render(&snapshot, format);
    let mut r = Response::new(Full::new(Bytes::from(text)));
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static(format.content_type()),
    );
    r
}
