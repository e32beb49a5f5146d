//! The plain-HTTP listener next to HTTPS: every request gets a 308 to the same host and path
//! over `https://`, except ACME HTTP-01 challenges (`/.well-known/acme-challenge/TOKEN`), which
//! are answered from the ACME manager's tokens.

use super::{empty_with, Body};
use crate::tls::acme::Challenges;
use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderValue, CONTENT_TYPE, HOST, LOCATION};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

const CHALLENGE_PREFIX: &str = "/.well-known/acme-challenge/";

pub struct Redirect {
    /// The HTTPS port redirects point to (443 is left out of the URL).
    pub https_port: u16,
    pub challenges: Option<Arc<Challenges>>,
}

/// The host part of a `Host` header without its port, if it is a plausible host name or IP
/// literal (nothing that could turn the Location into another URL).
fn host_only(host: &str) -> Option<&str> {
    let name = if host.starts_with('[') {
        let end = host.find(']')?;
        &host[..=end]
    } else {
        host.split(':').next()?
    };
    let ok = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'[' | b']' | b':'));
    ok.then_some(name)
}

fn answer<B>(cfg: &Redirect, req: &Request<B>) -> Response<Body> {
    let path = req.uri().path();
    if let Some(token) = path.strip_prefix(CHALLENGE_PREFIX) {
        return match cfg.challenges.as_ref().and_then(|c| c.get(token)) {
            Some(key_auth) => {
                tracing::info!(token, "ACME: answering an HTTP-01 challenge");
                let mut r = Response::new(Full::new(Bytes::from(key_auth)));
                r.headers_mut()
                    .insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
                r
            }
            None => empty_with(StatusCode::NOT_FOUND, "no such ACME challenge"),
        };
    }
    let host = req
        .headers()
        .get(HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| req.uri().host());
    let Some(host) = host.and_then(host_only) else {
        return empty_with(StatusCode::BAD_REQUEST, "a Host header is required");
    };
    let port = match cfg.https_port {
        443 => String::new(),
        p => format!(":{p}"),
    };
    let pq = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    let location = format!("https://{host}{port}{pq}");
    let mut r = empty_with(StatusCode::PERMANENT_REDIRECT, &location);
    match HeaderValue::from_str(&location) {
        Ok(v) => {
            r.headers_mut().insert(LOCATION, v);
            r
        }
        Err(_) => empty_with(StatusCode::BAD_REQUEST, "unusable request target"),
    }
}

/// Accepts and serves until aborted.
pub async fn serve(listener: TcpListener, cfg: Arc<Redirect>) {
    loop {
        let stream = match listener.accept().await {
            Ok((s, _)) => s,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let cfg = cfg.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req: Request<hyper::body::Incoming>| {
                let resp = answer(&cfg, &req);
                async move { Ok::<_, Infallible>(resp) }
            });
            let conn = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(Duration::from_secs(10))
                .serve_connection(TokioIo::new(stream), svc);
            let _ = tokio::time::timeout(Duration::from_secs(60), conn).await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts() {
        assert_eq!(host_only("example.com:80"), Some("example.com"));
        assert_eq!(host_only("[::1]:80"), Some("[::1]"));
        assert_eq!(host_only("evil.com/x"), None);
        assert_eq!(host_only("a@b"), None);
        assert_eq!(host_only(""), None);
    }

    #[test]
    fn redirects_keep_path_and_query() {
        let cfg = Redirect {
            https_port: 8443,
            challenges: None,
        };
        let req = Request::builder()
            .uri("/inbox?x=1")
            .header(HOST, "sb.test:8080")
            .body(())
            .unwrap();
        let r = answer(&cfg, &req);
        assert_eq!(r.status(), StatusCode::PERMANENT_REDIRECT);
        assert_eq!(r.headers()[LOCATION], "https://sb.test:8443/inbox?x=1");
    }
}
