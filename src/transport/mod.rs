//! Bytes ⇄ messages: WebSocket (after hyper's upgrade) framing, the per-connection task, and
//! the registry that runs keep-alive for all connections.

pub mod admission;
pub mod connection;
pub mod connections;
pub mod frames;
pub mod rawsocket;
pub mod socket;
