//! `/api/chat/files/<thread>/<file>`: uploads into a slot the chat service opened (PUT or POST
//! with `?token=`), and downloads through signed links (GET/HEAD with `?expires=&sig=`).
//!
//! The widget runs on the business's own site, so this path answers CORS: any origin may call
//! it, because it uses no cookies — the token or the signature in the URL is the credential.

use super::{empty_with, query, Body};
use crate::chat::files::{self, Files, Refusal};
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use std::sync::Arc;
use std::time::Duration;

/// How long an upload's body may take to arrive.
const BODY_TIMEOUT: Duration = Duration::from_secs(120);

fn cors(resp: &mut Response<Body>) {
    let h = resp.headers_mut();
    h.insert("access-control-allow-origin", HeaderValue::from_static("*"));
    h.insert(
        "access-control-expose-headers",
        HeaderValue::from_static("content-disposition, content-length"),
    );
}

fn refused(r: Refusal) -> Response<Body> {
    let status = StatusCode::from_u16(r.status).unwrap_or(StatusCode::BAD_REQUEST);
    let mut resp = empty_with(status, &r.reason);
    cors(&mut resp);
    resp
}

/// `<thread>/<file>` after the prefix.
fn ids(path: &str) -> Option<(u64, u64)> {
    let rest = path.strip_prefix(files::PATH)?;
    let (t, f) = rest.split_once('/')?;
    Some((t.parse().ok()?, f.parse().ok()?))
}

pub async fn handle(req: Request<hyper::body::Incoming>, files: &Arc<Files>) -> Response<Body> {
    let Some((thread, id)) = ids(req.uri().path()) else {
        return refused(Refusal {
            status: 404,
            reason: "expected /api/chat/files/<thread>/<file>".into(),
        });
    };
    let q = req.uri().query().map(str::to_owned);
    let q = q.as_deref();
    match *req.method() {
        Method::OPTIONS => {
            let mut resp = empty_with(StatusCode::NO_CONTENT, "");
            cors(&mut resp);
            let h = resp.headers_mut();
            h.insert(
                "access-control-allow-methods",
                HeaderValue::from_static("GET, HEAD, PUT, POST"),
            );
            h.insert(
                "access-control-allow-headers",
                HeaderValue::from_static("content-type"),
            );
            h.insert("access-control-max-age", HeaderValue::from_static("600"));
            resp
        }
        Method::PUT | Method::POST => {
            let token = query::first(q, "token").unwrap_or_default();
            if let Err(r) = files.check_token(thread, id, &token) {
                return refused(r);
            }
            let Some(limit) = files.slot_size(thread, id) else {
                return refused(Refusal {
                    status: 404,
                    reason: "no such upload".into(),
                });
            };
            let body = Limited::new(req.into_body(), usize::try_from(limit).unwrap_or(0));
            let bytes = match tokio::time::timeout(BODY_TIMEOUT, body.collect()).await {
                Ok(Ok(c)) => c.to_bytes(),
                Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => {
                    return refused(Refusal {
                        status: 413,
                        reason: format!("the upload is larger than the {limit} bytes announced"),
                    })
                }
                Ok(Err(e)) => {
                    return refused(Refusal {
                        status: 400,
                        reason: format!("could not read the upload: {e}"),
                    })
                }
                Err(_) => {
                    return refused(Refusal {
                        status: 408,
                        reason: format!(
                            "the upload did not arrive within {} s",
                            BODY_TIMEOUT.as_secs()
                        ),
                    })
                }
            };
            match files.finish(thread, id, &token, &bytes).await {
                Ok(f) => {
                    let body = serde_json::json!({
                        "file": f.id,
                        "name": f.name,
                        "content_type": f.content_type,
                        "size": f.size,
                        "inline": files::is_inline(&f.content_type),
                    })
                    .to_string();
                    let mut resp = Response::new(Full::new(Bytes::from(body)));
                    *resp.status_mut() = StatusCode::CREATED;
                    resp.headers_mut()
                        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
                    cors(&mut resp);
                    resp
                }
                Err(r) => refused(r),
            }
        }
        Method::GET | Method::HEAD => {
            let expires = query::first(q, "expires").and_then(|e| e.parse::<u64>().ok());
            let sig = query::first(q, "sig").unwrap_or_default();
            let Some(expires) = expires else {
                return refused(Refusal {
                    status: 403,
                    reason: "a download link needs expires and sig".into(),
                });
            };
            if let Err(r) = files.check_link(thread, id, expires, &sig) {
                return refused(r);
            }
            let (file, bytes) = match files.get(thread, id) {
                Ok(x) => x,
                Err(r) => return refused(r),
            };
            let inline = files::is_inline(&file.content_type);
            let len = bytes.len();
            let body = if *req.method() == Method::HEAD {
                Bytes::new()
            } else {
                Bytes::from_owner(bytes)
            };
            let mut resp = Response::new(Full::new(body));
            let h = resp.headers_mut();
            let header = |v: &str| {
                HeaderValue::from_str(v)
                    .unwrap_or_else(|_| HeaderValue::from_static("application/octet-stream"))
            };
            h.insert(CONTENT_TYPE, header(&file.content_type));
            h.insert(
                "content-disposition",
                HeaderValue::from_str(&files::disposition(inline, &file.name))
                    .unwrap_or_else(|_| HeaderValue::from_static("attachment")),
            );
            if *req.method() == Method::HEAD {
                h.insert("content-length", HeaderValue::from(len));
            }
            h.insert(
                "x-content-type-options",
                HeaderValue::from_static("nosniff"),
            );
            h.insert(
                "content-security-policy",
                HeaderValue::from_static("default-src 'none'; sandbox"),
            );
            h.insert(
                "cache-control",
                HeaderValue::from_static("private, max-age=3600"),
            );
            h.insert(
                "cross-origin-resource-policy",
                HeaderValue::from_static("cross-origin"),
            );
            cors(&mut resp);
            resp
        }
        _ => {
            let mut resp = empty_with(
                StatusCode::METHOD_NOT_ALLOWED,
                "use PUT or POST to upload, GET to download",
            );
            cors(&mut resp);
            resp
        }
    }
}
