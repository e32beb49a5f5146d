//! The TURN relay (`calls::turn::server::Server::on_client`): one packet from anyone, over UDP
//! or TCP — STUN requests and indications, ChannelData. An answer, if any, must itself be a
//! whole STUN message (20-byte header, 4-byte aligned).
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::sync::{Arc, OnceLock};
use switchboard::calls::turn::server::{Server, Sink, Transport};

static SERVER: OnceLock<Arc<Server>> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let server = SERVER.get_or_init(|| {
        Arc::new(Server::new(
            Default::default(),
            "fuzz-secret",
            Arc::default(),
            "127.0.0.1".parse().expect("address"),
            Box::new(|_, _| {}),
        ))
    });
    let (tx, _rx) = tokio::sync::mpsc::channel(64);
    let sink = Sink::Tcp(tx);
    for (transport, from) in [
        (Transport::Udp, "192.0.2.1:3478"),
        (Transport::Tcp, "[2001:db8::1]:50000"),
    ] {
        let from = from.parse().expect("address");
        if let Some(answer) = server.on_client(data, transport, from, &sink) {
            assert!(answer.len() >= 20 && answer.len() % 4 == 0);
        }
    }
});
