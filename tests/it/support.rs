//! Test support: the real server on an ephemeral port, and an independent WAMP client built on
//! tokio-tungstenite with its own encoders (serde_json, rmpv, ciborium) — nothing from the
//! crate's own codec, so a symmetric encoding bug cannot hide.

#![allow(dead_code)]

use base64::Engine as _;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::time::Duration;
use switchboard::app::{self, Options, Running};
use switchboard::config::{Limits, RouterConfig};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub const TIMEOUT: Duration = Duration::from_secs(10);

pub struct TestServer {
    pub running: Option<Running>,
    pub addr: SocketAddr,
    _dir: tempfile::TempDir,
}

impl TestServer {
    pub async fn start() -> TestServer {
        Self::with_limits(Limits::default()).await
    }

    pub async fn with_limits(limits: Limits) -> TestServer {
        Self::with(|o| o.node.router = RouterConfig::development(limits)).await
    }

    pub async fn with(f: impl FnOnce(&mut Options)) -> TestServer {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut opts = Options::development(
            "127.0.0.1:0".parse().expect("addr"),
            dir.path().to_path_buf(),
        );
        f(&mut opts);
        let running = app::start(opts).await.expect("server starts");
        let addr = running.addr;
        TestServer {
            running: Some(running),
            addr,
            _dir: dir,
        }
    }

    /// The server's data directory (its admin socket is there).
    pub fn data_dir(&self) -> &std::path::Path {
        self._dir.path()
    }

    pub fn ws_url(&self) -> String {
        format!("ws://{}/ws", self.addr)
    }

    pub async fn client(&self, ser: Ser) -> Client {
        Client::connect(&self.ws_url(), ser).await
    }

    /// A client that has joined realm1.
    pub async fn joined(&self, ser: Ser) -> Client {
        self.joined_realm(ser, "realm1").await
    }

    pub async fn joined_realm(&self, ser: Ser, realm: &str) -> Client {
        let mut c = self.client(ser).await;
        c.join(realm).await;
        c
    }

    pub async fn status(&self) -> Value {
        let body = http_get(self.addr, "/api/status").await.1;
        serde_json::from_str(&body).expect("status is JSON")
    }
}

/// The serializers, as the test client encodes them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ser {
    Json,
    MsgPack,
    Cbor,
}

pub const ALL: [Ser; 3] = [Ser::Json, Ser::MsgPack, Ser::Cbor];

impl Ser {
    pub fn subprotocol(self) -> &'static str {
        match self {
            Ser::Json => "wamp.2.json",
            Ser::MsgPack => "wamp.2.msgpack",
            Ser::Cbor => "wamp.2.cbor",
        }
    }

    /// Encodes a message given in JSON form; strings starting with "\0" carry base64 bytes
    /// and become native byte strings for MessagePack and CBOR.
    pub fn encode(self, v: &Value) -> WsMessage {
        match self {
            Ser::Json => WsMessage::Text(v.to_string().into()),
            Ser::MsgPack => {
                let mut out = Vec::new();
                rmpv::encode::write_value(&mut out, &to_rmpv(v)).expect("msgpack encode");
                WsMessage::Binary(out.into())
            }
            Ser::Cbor => {
                let mut out = Vec::new();
                ciborium::into_writer(&to_cbor(v), &mut out).expect("cbor encode");
                WsMessage::Binary(out.into())
            }
        }
    }

    pub fn decode(self, m: &WsMessage) -> Value {
        match (self, m) {
            (Ser::Json, WsMessage::Text(t)) => {
                serde_json::from_str(t).expect("router sent valid JSON")
            }
            (Ser::MsgPack, WsMessage::Binary(b)) => from_rmpv(
                &rmpv::decode::read_value(&mut &b[..]).expect("router sent valid msgpack"),
            ),
            (Ser::Cbor, WsMessage::Binary(b)) => from_cbor(
                &ciborium::from_reader::<ciborium::Value, _>(&b[..])
                    .expect("router sent valid CBOR"),
            ),
            (s, other) => panic!("{s:?}: unexpected frame {other:?}"),
        }
    }
}

fn b64(s: &str) -> Option<Vec<u8>> {
    s.strip_prefix('\0').map(|b| {
        base64::engine::general_purpose::STANDARD
            .decode(b)
            .expect("base64")
    })
}

fn unb64(b: &[u8]) -> Value {
    Value::String(format!(
        "\0{}",
        base64::engine::general_purpose::STANDARD.encode(b)
    ))
}

fn to_rmpv(v: &Value) -> rmpv::Value {
    match v {
        Value::Null => rmpv::Value::Nil,
        Value::Bool(b) => rmpv::Value::Boolean(*b),
        Value::Number(n) => {
            if let Some(u) = n.as_u64() {
                rmpv::Value::from(u)
            } else if let Some(i) = n.as_i64() {
                rmpv::Value::from(i)
            } else {
                rmpv::Value::F64(n.as_f64().unwrap_or(0.0))
            }
        }
        Value::String(s) => match b64(s) {
            Some(b) => rmpv::Value::Binary(b),
            None => rmpv::Value::from(s.as_str()),
        },
        Value::Array(a) => rmpv::Value::Array(a.iter().map(to_rmpv).collect()),
        Value::Object(o) => rmpv::Value::Map(
            o.iter()
                .map(|(k, v)| (rmpv::Value::from(k.as_str()), to_rmpv(v)))
                .collect(),
        ),
    }
}

fn from_rmpv(v: &rmpv::Value) -> Value {
    match v {
        rmpv::Value::Nil => Value::Null,
        rmpv::Value::Boolean(b) => json!(b),
        rmpv::Value::Integer(i) => i
            .as_u64()
            .map(|u| json!(u))
            .or_else(|| i.as_i64().map(|i| json!(i)))
            .unwrap_or(Value::Null),
        rmpv::Value::F32(f) => json!(f),
        rmpv::Value::F64(f) => json!(f),
        rmpv::Value::String(s) => json!(s.as_str().expect("utf8")),
        rmpv::Value::Binary(b) => unb64(b),
        rmpv::Value::Array(a) => Value::Array(a.iter().map(from_rmpv).collect()),
        rmpv::Value::Map(m) => Value::Object(
            m.iter()
                .map(|(k, v)| (k.as_str().expect("string key").to_owned(), from_rmpv(v)))
                .collect(),
        ),
        rmpv::Value::Ext(..) => panic!("unexpected ext"),
    }
}

fn to_cbor(v: &Value) -> ciborium::Value {
    match v {
        Value::Null => ciborium::Value::Null,
        Value::Bool(b) => ciborium::Value::Bool(*b),
        Value::Number(n) => {
            if let Some(u) = n.as_u64() {
                ciborium::Value::Integer(u.into())
            } else if let Some(i) = n.as_i64() {
                ciborium::Value::Integer(i.into())
            } else {
                ciborium::Value::Float(n.as_f64().unwrap_or(0.0))
            }
        }
        Value::String(s) => match b64(s) {
            Some(b) => ciborium::Value::Bytes(b),
            None => ciborium::Value::Text(s.clone()),
        },
        Value::Array(a) => ciborium::Value::Array(a.iter().map(to_cbor).collect()),
        Value::Object(o) => ciborium::Value::Map(
            o.iter()
                .map(|(k, v)| (ciborium::Value::Text(k.clone()), to_cbor(v)))
                .collect(),
        ),
    }
}

fn from_cbor(v: &ciborium::Value) -> Value {
    match v {
        ciborium::Value::Null => Value::Null,
        ciborium::Value::Bool(b) => json!(b),
        ciborium::Value::Integer(i) => {
            let i: i128 = (*i).into();
            if i >= 0 {
                json!(i as u64)
            } else {
                json!(i as i64)
            }
        }
        ciborium::Value::Float(f) => json!(f),
        ciborium::Value::Text(s) => json!(s),
        ciborium::Value::Bytes(b) => unb64(b),
        ciborium::Value::Array(a) => Value::Array(a.iter().map(from_cbor).collect()),
        ciborium::Value::Map(m) => Value::Object(
            m.iter()
                .map(|(k, v)| (k.as_text().expect("text key").to_owned(), from_cbor(v)))
                .collect(),
        ),
        other => panic!("unexpected CBOR {other:?}"),
    }
}

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

pub struct Client {
    pub ws: Ws,
    pub ser: Ser,
    pub session: u64,
    next_request: u64,
}

/// How a read ended when it did not produce a WAMP message.
#[derive(Debug)]
pub enum Ended {
    Closed(Option<(u16, String)>),
    Timeout,
}

impl Client {
    pub async fn connect(url: &str, ser: Ser) -> Client {
        let mut req = url.into_client_request().expect("request");
        req.headers_mut().insert(
            "Sec-WebSocket-Protocol",
            HeaderValue::from_static(ser.subprotocol()),
        );
        let (ws, resp) = tokio::time::timeout(TIMEOUT, tokio_tungstenite::connect_async(req))
            .await
            .expect("connect in time")
            .expect("websocket handshake");
        assert_eq!(
            resp.headers()
                .get("sec-websocket-protocol")
                .and_then(|v| v.to_str().ok()),
            Some(ser.subprotocol()),
            "router picks the offered subprotocol"
        );
        Client {
            ws,
            ser,
            session: 0,
            next_request: 0,
        }
    }

    pub fn request_id(&mut self) -> u64 {
        self.next_request += 1;
        self.next_request
    }

    pub async fn send(&mut self, v: Value) {
        let m = self.ser.encode(&v);
        self.ws.send(m).await.expect("send");
    }

    pub async fn send_raw(&mut self, m: WsMessage) {
        self.ws.send(m).await.expect("send");
    }

    /// The next WAMP message, or how the connection ended.
    pub async fn next_within(&mut self, d: Duration) -> Result<Value, Ended> {
        let deadline = tokio::time::Instant::now() + d;
        loop {
            let frame = match tokio::time::timeout_at(deadline, self.ws.next()).await {
                Err(_) => return Err(Ended::Timeout),
                Ok(None) => return Err(Ended::Closed(None)),
                Ok(Some(Err(_))) => return Err(Ended::Closed(None)),
                Ok(Some(Ok(f))) => f,
            };
            match frame {
                WsMessage::Close(c) => {
                    return Err(Ended::Closed(
                        c.map(|c| (u16::from(c.code), c.reason.to_string())),
                    ))
                }
                WsMessage::Ping(_) | WsMessage::Pong(_) | WsMessage::Frame(_) => continue,
                m => return Ok(self.ser.decode(&m)),
            }
        }
    }

    pub async fn recv(&mut self) -> Value {
        match self.next_within(TIMEOUT).await {
            Ok(v) => v,
            Err(e) => panic!("expected a message, got {e:?}"),
        }
    }

    /// Asserts nothing arrives for a short while.
    pub async fn expect_silence(&mut self, d: Duration) {
        if let Ok(v) = self.next_within(d).await {
            panic!("expected nothing, got {v}");
        }
    }

    /// Waits for the connection to close; returns the close code and reason.
    pub async fn closed(&mut self) -> Option<(u16, String)> {
        loop {
            match self.next_within(TIMEOUT).await {
                Ok(_) => continue,
                Err(Ended::Closed(c)) => return c,
                Err(Ended::Timeout) => panic!("connection did not close"),
            }
        }
    }

    pub async fn join(&mut self, realm: &str) -> Value {
        self.send(json!([1, realm, {"roles": {
            "publisher": {"features": {}}, "subscriber": {"features": {}},
            "caller": {"features": {"progressive_call_results": true, "call_canceling": true}},
            "callee": {"features": {"progressive_call_results": true, "call_canceling": true, "caller_identification": true}}
        }}]))
        .await;
        let w = self.recv().await;
        assert_eq!(w[0], 2, "WELCOME expected, got {w}");
        self.session = w[1].as_u64().expect("session id");
        w
    }

    pub async fn subscribe(&mut self, topic: &str, options: Value) -> u64 {
        let r = self.request_id();
        self.send(json!([32, r, options, topic])).await;
        let m = self.recv().await;
        assert_eq!(m[0], 33, "SUBSCRIBED expected, got {m}");
        assert_eq!(m[1], r);
        m[2].as_u64().expect("subscription id")
    }

    pub async fn register(&mut self, procedure: &str, options: Value) -> u64 {
        let r = self.request_id();
        self.send(json!([64, r, options, procedure])).await;
        let m = self.recv().await;
        assert_eq!(m[0], 65, "REGISTERED expected, got {m}");
        assert_eq!(m[1], r);
        m[2].as_u64().expect("registration id")
    }

    /// Sends a request and expects ERROR; returns (error uri, message).
    pub async fn expect_error(&mut self, msg: Value) -> (String, Value) {
        let req = msg[1].clone();
        let typ = msg[0].clone();
        self.send(msg).await;
        let m = self.recv().await;
        assert_eq!(m[0], 8, "ERROR expected, got {m}");
        assert_eq!(m[1], typ, "{m}");
        assert_eq!(m[2], req, "{m}");
        (
            m[4].as_str().expect("error uri").to_owned(),
            m.get(5).cloned().unwrap_or(Value::Null),
        )
    }

    /// Expects ABORT with `reason`, then the connection closing.
    pub async fn expect_abort(&mut self, reason: &str) -> Value {
        let m = self.recv().await;
        assert_eq!(m[0], 3, "ABORT expected, got {m}");
        assert_eq!(m[2], reason, "{m}");
        assert!(
            m[1]["message"].as_str().is_some_and(|s| !s.is_empty()),
            "ABORT explains itself: {m}"
        );
        self.closed().await;
        m
    }
}

pub fn close_code_of(c: &Option<(u16, String)>) -> u16 {
    c.as_ref()
        .map(|(c, _)| *c)
        .unwrap_or(u16::from(CloseCode::Abnormal))
}

/// A minimal HTTP/1.1 GET; returns (status line, body).
pub async fn http_get(addr: SocketAddr, path: &str) -> (String, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = TcpStream::connect(addr).await.expect("connect");
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .expect("write");
    let mut out = Vec::new();
    tokio::time::timeout(TIMEOUT, s.read_to_end(&mut out))
        .await
        .expect("in time")
        .expect("read");
    let text = String::from_utf8_lossy(&out).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    (head.to_owned(), body.to_owned())
}

/// The real binary started with `--config CFG --data-dir DATA`, once it printed its ready line
/// (so its store opened cleanly); killed and reaped when dropped, so a failing assertion leaves
/// nothing running.
pub struct ServerProcess(pub std::process::Child);

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn start_process(cfg: &std::path::Path, data: &std::path::Path) -> ServerProcess {
    use std::io::BufRead;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .arg("--config")
        .arg(cfg)
        .arg("--data-dir")
        .arg(data)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("starts");
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("ready line");
    assert!(
        line.starts_with("switchboard listening"),
        "the server did not start (did its store open cleanly?): {line:?}"
    );
    ServerProcess(child)
}

/// A TCP port free on loopback right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}
