//! Reads the server's memory and CPU time: from /proc when its pid is known (any router,
//! e.g. Crossbar for the comparison), else from Switchboard's own `/api/status`.

use crate::procfs;
use std::net::SocketAddr;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[derive(Clone, Debug)]
pub struct Probe {
    pid: Option<u32>,
    status_addr: Option<SocketAddr>,
}

#[derive(Clone, Copy, Debug, Default, serde::Serialize)]
pub struct Sample {
    pub rss_bytes: Option<u64>,
    pub cpu_seconds: Option<f64>,
}

impl Probe {
    pub fn new(pid: Option<u32>, url: &str) -> Probe {
        Probe {
            pid,
            status_addr: super::wampc::url_addr(url).ok(),
        }
    }

    pub async fn sample(&self) -> Sample {
        if let Some(pid) = self.pid {
            return Sample {
                rss_bytes: procfs::rss_bytes(pid),
                cpu_seconds: procfs::cpu_seconds(pid),
            };
        }
        let Some(addr) = self.status_addr else {
            return Sample::default();
        };
        match fetch_status(addr).await {
            Some(v) => Sample {
                rss_bytes: v.get("rss_bytes").and_then(serde_json::Value::as_u64),
                cpu_seconds: v.get("cpu_seconds").and_then(serde_json::Value::as_f64),
            },
            None => Sample::default(),
        }
    }
}

async fn fetch_status(addr: SocketAddr) -> Option<serde_json::Value> {
    let fut = async {
        let mut s = TcpStream::connect(addr).await.ok()?;
        s.write_all(b"GET /api/status HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
            .await
            .ok()?;
        let mut out = Vec::new();
        s.read_to_end(&mut out).await.ok()?;
        let text = String::from_utf8(out).ok()?;
        let (_, body) = text.split_once("\r\n\r\n")?;
        serde_json::from_str(body).ok()
    };
    tokio::time::timeout(std::time::Duration::from_secs(5), fut)
        .await
        .ok()
        .flatten()
}

/// CPU seconds the server spent between two samples.
pub fn cpu_between(a: &Sample, b: &Sample) -> Option<f64> {
    Some(b.cpu_seconds? - a.cpu_seconds?)
}
