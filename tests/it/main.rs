#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The single integration-test binary: the real server on an ephemeral port, driven by an
//! independent WebSocket client (tokio-tungstenite) with independent encoders.

mod support;

/// Ticket and WAMP-CRA authentication.
mod auth;
/// `switchboard backup` / `restore` with the real binary.
mod backup;
/// `switchboard bench` scenarios at small scale.
mod bench;
mod calls;
/// Session caps and connection caps.
mod caps;
/// Crossbar-style configuration: permissions, universal transport, check-config.
mod chat;
mod chat_calls;
/// `switchboard chat export|forget`.
mod chat_cli;
/// Chat attachments: upload slots, signed downloads, refusals.
mod chat_files;
mod config;
/// SIGKILL under mixed chat + history load, many rounds.
mod crash;
mod dynamic_auth;
/// Status API, embedded web UI, upgrade negotiation, echo endpoint.
mod history;
mod http_api;
/// HTTP bridge (publish, call, signatures, limits) and webhooks.
mod http_bridge;
/// TLS (wss, RawSocket over TLS), SIGHUP reload, redirect, security headers, public-bind refusal.
mod https;
/// Message size, slow consumers, HELLO deadline, keep-alive.
mod limits;
mod local_client;
mod meta;
/// `/metrics` (parsed), `/healthz`, `/readyz`.
mod metrics;
/// The binary itself: zero-config start, warning, graceful shutdown.
mod process;
/// SUBSCRIBE/PUBLISH/EVENT and the Advanced Profile pub/sub features.
mod pubsub;
/// WAMP RawSocket over TCP and Unix sockets.
mod rawsocket;
/// SIGHUP and `Running::reload`: new rules for connected sessions, realms added and removed.
mod reload;
/// REGISTER/CALL/YIELD and the Advanced Profile RPC features.
mod rpc;
/// HELLO/WELCOME/ABORT/GOODBYE, phases and protocol violations.
mod session;
/// Per-session message counters in the meta API.
mod session_counters;
mod setup;
/// The built-in TURN relay: a raw client over UDP and TCP.
mod turn;
/// `switchboard user …`: the built-in principal store from the shell.
mod user_cli;
