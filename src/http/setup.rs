//! First run: while no staff account exists, the server prints a one-time link
//! (`/setup?token=…`); the page it opens creates the first staff account in the built-in
//! principal store (`POST /api/setup` with the token, an authid and a password). The token is
//! random, compared in constant time, and spent by its first successful use.

use super::{empty_with, Body};
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use parking_lot::Mutex;
use std::sync::Arc;

/// The one-time setup token and what the account it creates gets.
pub struct Setup {
    token: Mutex<Option<String>>,
    /// The role of the first account (the chat service's first staff role).
    pub role: String,
}

impl Setup {
    /// A setup token when `needed` (no staff account exists yet).
    pub fn new(needed: bool, role: &str) -> Arc<Setup> {
        let token = needed.then(|| {
            let bytes: [u8; 24] = rand::random();
            crate::auth::cryptosign::to_hex(&bytes)
        });
        Arc::new(Setup {
            token: Mutex::new(token),
            role: role.to_owned(),
        })
    }

    /// The token while setup is pending.
    pub fn token(&self) -> Option<String> {
        self.token.lock().clone()
    }
}

fn reply(status: StatusCode, json: serde_json::Value) -> Response<Body> {
    let mut r = Response::new(Full::new(Bytes::from(json.to_string())));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

fn refuse(status: StatusCode, why: &str) -> Response<Body> {
    reply(status, serde_json::json!({ "error": why }))
}

/// `POST /api/setup` {token, authid, password}.
pub async fn handle(
    setup: &Setup,
    router: &crate::router::Router,
    req: Request<hyper::body::Incoming>,
) -> Response<Body> {
    if req.method() != Method::POST {
        return empty_with(StatusCode::METHOD_NOT_ALLOWED, "only POST is allowed here");
    }
    if setup.token().is_none() {
        return refuse(
            StatusCode::GONE,
            "setup is done: a staff account exists (add more with `switchboard user add`)",
        );
    }
    let body = match tokio::time::timeout(
        std::time::Duration::from_secs(10),
        Limited::new(req.into_body(), 4096).collect(),
    )
    .await
    {
        Ok(Ok(b)) => b.to_bytes(),
        _ => return refuse(StatusCode::BAD_REQUEST, "send a JSON body of at most 4 KiB"),
    };
    let v: serde_json::Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => return refuse(StatusCode::BAD_REQUEST, &format!("invalid JSON: {e}")),
    };
    let field = |k: &str| v.get(k).and_then(|x| x.as_str()).unwrap_or("");
    let (token, authid, password) = (field("token"), field("authid"), field("password"));
    {
        use subtle::ConstantTimeEq;
        let guard = setup.token.lock();
        let ok = guard
            .as_deref()
            .is_some_and(|t| bool::from(t.as_bytes().ct_eq(token.as_bytes())));
        if !ok {
            return refuse(StatusCode::FORBIDDEN, "the setup token is wrong");
        }
    }
    if password.chars().count() < 8 {
        return refuse(
            StatusCode::BAD_REQUEST,
            "the password needs at least 8 characters",
        );
    }
    let Some(principals) = router.principals.clone() else {
        return refuse(StatusCode::SERVICE_UNAVAILABLE, "no principal store");
    };
    if let Err(e) = crate::store::principals::validate(authid, None, &setup.role) {
        return refuse(StatusCode::BAD_REQUEST, &e.to_string());
    }
    let (authid, password, role) = (authid.to_owned(), password.to_owned(), setup.role.clone());
    // Key derivation (argon2id) and the flush are blocking work.
    let added = tokio::task::spawn_blocking(move || {
        let rec =
            crate::store::principals::PrincipalRecord::new(&authid, None, &role, &password, true);
        principals.add(&rec).map(|()| (authid, role))
    })
    .await;
    match added {
        Ok(Ok((authid, role))) => {
            *setup.token.lock() = None;
            tracing::info!(%authid, %role, "first-run setup: staff account created");
            reply(
                StatusCode::CREATED,
                serde_json::json!({ "authid": authid, "role": role }),
            )
        }
        Ok(Err(e)) => refuse(StatusCode::CONFLICT, &e.to_string()),
        Err(_) => refuse(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the account could not be created",
        ),
    }
}
