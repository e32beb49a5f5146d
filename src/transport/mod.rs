//! Bytes ⇄ messages: WebSocket (after hyper's upgrade) framing, the per-connection task, and
//! the registry that runs keep-alive for all connections.

pub mod connections;
pub mod websocket;
pub mod ws_codec;
