//! Switchboard: a WAMP v2 router in one binary. See ARCHITECTURE.md for the map.

pub mod admin;
pub mod app;
pub mod auth;
pub mod bench;
pub mod calls;
pub mod chat;
pub mod cli_backup;
pub mod cli_chat;
pub mod cli_user;
pub mod clock;
pub mod config;
pub mod framing;
pub mod http;
pub mod metrics;
pub mod outbox;
pub mod procfs;
pub mod reload;
pub mod router;
pub mod session;
pub mod store;
pub mod tls;
pub mod transport;
pub mod wamp;
