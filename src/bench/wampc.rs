//! A small WAMP client over WebSocket for the load tool: connect (optionally from a chosen
//! loopback source address), join, send and receive typed messages. Frames are decoded with
//! the crate's own codec; the server side never runs through here.

use crate::wamp::value::dict;
use crate::wamp::{Message, Serializer, Value};
use futures_util::{SinkExt, StreamExt};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::WebSocketStream;

pub type Ws = WebSocketStream<TcpStream>;

pub fn parse_serializer(name: &str) -> Result<Serializer, String> {
    match name {
        "json" => Ok(Serializer::Json),
        "msgpack" => Ok(Serializer::MsgPack),
        "cbor" => Ok(Serializer::Cbor),
        other => Err(format!(
            "unknown serializer '{other}' (json, msgpack, cbor)"
        )),
    }
}

/// Host and port of a `ws://` (WebSocket) or `rs://` (RawSocket over TCP) URL.
pub fn url_addr(url: &str) -> Result<SocketAddr, String> {
    let rest = url
        .strip_prefix("ws://")
        .or_else(|| url.strip_prefix("rs://"))
        .ok_or_else(|| format!("only ws:// and rs:// URLs are supported, got '{url}'"))?;
    let hostport = rest.split('/').next().unwrap_or("");
    let hostport = hostport.replace("localhost", "127.0.0.1");
    hostport
        .parse()
        .map_err(|_| format!("'{hostport}' is not an IP:port"))
}

/// The transport under a client session.
enum Conn {
    Ws(Box<Ws>),
    /// RawSocket: the stream, bytes read but not yet parsed, frames not yet flushed.
    Raw {
        stream: TcpStream,
        rbuf: bytes::BytesMut,
        wbuf: Vec<u8>,
    },
}

pub struct Client {
    conn: Conn,
    pub ser: Serializer,
    pub session: u64,
}

impl Client {
    /// Connects from `source` (any port) if given, and negotiates the serializer: the WebSocket
    /// subprotocol for `ws://`, the RawSocket handshake for `rs://`. Each WebSocket message is
    /// written when it is sent — no write buffer is kept, which matters with thousands of
    /// connections.
    pub async fn connect(
        url: &str,
        ser: Serializer,
        source: Option<IpAddr>,
    ) -> Result<Client, String> {
        Client::connect_with(url, ser, source, 0).await
    }

    /// As `connect`, for the few busy connections of a scenario that `feed`s several messages
    /// and then `flush`es: WebSocket frames gather in a buffer until `flush` (or until
    /// `write_buffer` bytes), so they go out in one write, as RawSocket's already do.
    pub async fn connect_batching(
        url: &str,
        ser: Serializer,
        source: Option<IpAddr>,
    ) -> Result<Client, String> {
        Client::connect_with(url, ser, source, 64 * 1024).await
    }

    async fn connect_with(
        url: &str,
        ser: Serializer,
        source: Option<IpAddr>,
        write_buffer: usize,
    ) -> Result<Client, String> {
        let addr = url_addr(url)?;
        let socket = if addr.is_ipv4() {
            TcpSocket::new_v4()
        } else {
            TcpSocket::new_v6()
        }
        .map_err(|e| format!("socket: {e}"))?;
        if let Some(ip) = source {
            socket
                .bind(SocketAddr::new(ip, 0))
                .map_err(|e| format!("bind {ip}: {e}"))?;
        }
        let mut stream = socket
            .connect(addr)
            .await
            .map_err(|e| format!("connect {addr}: {e}"))?;
        let _ = stream.set_nodelay(true);
        if url.starts_with("rs://") {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let code = match ser {
                Serializer::Json => 1,
                Serializer::MsgPack => 2,
                Serializer::Cbor => 3,
            };
            stream
                .write_all(&[0x7F, 0xF0 | code, 0, 0])
                .await
                .map_err(|e| format!("rawsocket handshake: {e}"))?;
            let mut reply = [0u8; 4];
            stream
                .read_exact(&mut reply)
                .await
                .map_err(|e| format!("rawsocket handshake: {e}"))?;
            if reply[0] != 0x7F || reply[1] & 0x0F != code {
                return Err(format!("rawsocket handshake refused: {reply:02x?}"));
            }
            return Ok(Client {
                conn: Conn::Raw {
                    stream,
                    rbuf: bytes::BytesMut::new(),
                    wbuf: Vec::new(),
                },
                ser,
                session: 0,
            });
        }
        let mut req = url.into_client_request().map_err(|e| e.to_string())?;
        req.headers_mut().insert(
            "Sec-WebSocket-Protocol",
            HeaderValue::from_static(ser.subprotocol()),
        );
        let config = WebSocketConfig::default()
            .read_buffer_size(8192)
            .write_buffer_size(write_buffer);
        let (ws, _) = tokio_tungstenite::client_async_with_config(req, stream, Some(config))
            .await
            .map_err(|e| format!("handshake: {e}"))?;
        Ok(Client {
            conn: Conn::Ws(Box::new(ws)),
            ser,
            session: 0,
        })
    }

    fn frame(&self, m: &Message) -> Result<WsMessage, String> {
        let bytes = self.ser.encode(m).map_err(|e| e.to_string())?;
        Ok(if self.ser.is_text() {
            WsMessage::Text(String::from_utf8(bytes).map_err(|e| e.to_string())?.into())
        } else {
            WsMessage::Binary(bytes.into())
        })
    }

    pub async fn send(&mut self, m: &Message) -> Result<(), String> {
        self.feed(m).await?;
        self.flush().await
    }

    /// Queues a message without flushing (for pipelining); `flush` sends.
    pub async fn feed(&mut self, m: &Message) -> Result<(), String> {
        if let Conn::Raw { wbuf, .. } = &mut self.conn {
            let start = wbuf.len();
            wbuf.extend_from_slice(&[0, 0, 0, 0]);
            self.ser.encode_into(m, wbuf).map_err(|e| e.to_string())?;
            let len = ((wbuf.len() - start - 4) as u32).to_be_bytes();
            wbuf[start + 1..start + 4].copy_from_slice(&len[1..]);
            return Ok(());
        }
        let frame = self.frame(m)?;
        match &mut self.conn {
            Conn::Ws(ws) => ws.feed(frame).await.map_err(|e| e.to_string()),
            Conn::Raw { .. } => Ok(()),
        }
    }

    pub async fn flush(&mut self) -> Result<(), String> {
        match &mut self.conn {
            Conn::Ws(ws) => ws.flush().await.map_err(|e| e.to_string()),
            Conn::Raw { stream, wbuf, .. } => {
                use tokio::io::AsyncWriteExt;
                stream.write_all(wbuf).await.map_err(|e| e.to_string())?;
                wbuf.clear();
                Ok(())
            }
        }
    }

    /// A message that has already arrived, without waiting (`None`: nothing yet). A scenario
    /// answers everything that came in together and then flushes once — what an event-loop
    /// client (Twisted, a browser) does with writes made in one turn.
    pub fn try_recv(&mut self) -> Option<Result<Message, String>> {
        futures_util::FutureExt::now_or_never(self.recv())
    }

    /// The next WAMP message (pings are answered on the way). Cancel-safe: a partly read
    /// frame stays buffered.
    pub async fn recv(&mut self) -> Result<Message, String> {
        let ser = self.ser;
        match &mut self.conn {
            Conn::Ws(ws) => loop {
                match ws.next().await {
                    None => return Err("connection closed".into()),
                    Some(Err(e)) => return Err(e.to_string()),
                    Some(Ok(WsMessage::Text(t))) => {
                        return ser.decode(t.as_bytes()).map_err(|e| e.to_string())
                    }
                    Some(Ok(WsMessage::Binary(b))) => {
                        return ser.decode(&b).map_err(|e| e.to_string())
                    }
                    Some(Ok(WsMessage::Close(c))) => {
                        return Err(format!("closed by the router: {c:?}"))
                    }
                    Some(Ok(_)) => continue,
                }
            },
            Conn::Raw { stream, rbuf, .. } => loop {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                if rbuf.len() >= 4 {
                    let len = u32::from_be_bytes([0, rbuf[1], rbuf[2], rbuf[3]]) as usize;
                    if rbuf.len() >= 4 + len {
                        let kind = rbuf[0] & 0x07;
                        let frame = rbuf.split_to(4 + len);
                        match kind {
                            0 => return ser.decode(&frame[4..]).map_err(|e| e.to_string()),
                            1 => {
                                let mut pong = frame.to_vec();
                                pong[0] = 2;
                                stream.write_all(&pong).await.map_err(|e| e.to_string())?;
                            }
                            _ => {}
                        }
                        continue;
                    }
                }
                rbuf.reserve(8192);
                match stream.read_buf(rbuf).await {
                    Ok(0) => return Err("connection closed".into()),
                    Ok(_) => {}
                    Err(e) => return Err(e.to_string()),
                }
            },
        }
    }

    pub async fn join(&mut self, join: &Join) -> Result<(), String> {
        let roles =
            ["publisher", "subscriber", "caller", "callee"].map(|r| (r, Value::Dict(vec![])));
        let mut details = dict([(
            "roles",
            Value::Dict(roles.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()),
        )]);
        if let Some(m) = &join.authmethod {
            details.push(("authmethods".into(), Value::List(vec![m.as_str().into()])));
        }
        if let Some(id) = &join.authid {
            details.push(("authid".into(), id.as_str().into()));
        }
        self.send(&Message::Hello {
            realm: join.realm.clone(),
            details,
        })
        .await?;
        loop {
            match self.recv().await? {
                Message::Welcome { session, .. } => {
                    self.session = session;
                    return Ok(());
                }
                Message::Challenge { authmethod, extra } => {
                    let signature = join.answer(&authmethod, &extra)?;
                    self.send(&Message::Authenticate {
                        signature,
                        extra: vec![],
                    })
                    .await?;
                }
                Message::Abort { reason, details } => {
                    return Err(format!("ABORT {reason}: {details:?}"))
                }
                other => return Err(format!("expected WELCOME, got {}", other.name())),
            }
        }
    }

    pub async fn subscribe(&mut self, request: u64, topic: &str) -> Result<u64, String> {
        self.send(&Message::Subscribe {
            request,
            options: vec![],
            topic: topic.to_owned(),
        })
        .await?;
        match self.recv().await? {
            Message::Subscribed { subscription, .. } => Ok(subscription),
            other => Err(format!("expected SUBSCRIBED, got {other:?}")),
        }
    }

    pub async fn register(
        &mut self,
        request: u64,
        procedure: &str,
        invoke: &str,
    ) -> Result<u64, String> {
        self.send(&Message::Register {
            request,
            options: dict([("invoke", invoke.into())]),
            procedure: procedure.to_owned(),
        })
        .await?;
        match self.recv().await? {
            Message::Registered { registration, .. } => Ok(registration),
            other => Err(format!("expected REGISTERED, got {other:?}")),
        }
    }

    /// Calls `switchboard.chat.open` (a chat visitor's thread) and returns the thread id.
    pub async fn open_chat_thread(&mut self, request: u64) -> Result<u64, String> {
        self.send(&Message::Call {
            request,
            options: vec![],
            procedure: "switchboard.chat.open".into(),
            payload: crate::wamp::Payload::default(),
        })
        .await?;
        loop {
            match self.recv().await? {
                Message::Result { payload, .. } => {
                    return payload
                        .args
                        .as_deref()
                        .and_then(|a| a.first())
                        .and_then(Value::as_dict)
                        .and_then(|d| crate::wamp::value::dict_get(d, "thread"))
                        .and_then(Value::as_u64)
                        .ok_or_else(|| "open() returned no thread".to_owned())
                }
                Message::Error { error, .. } => return Err(format!("open(): {error}")),
                _ => continue,
            }
        }
    }

    pub async fn close(self) {
        match self.conn {
            Conn::Ws(mut ws) => {
                // The closing handshake as real clients do it (RFC 6455 §7.1.1): our close frame,
                // then wait for the router's close frame and for it to end TCP first.
                if (*ws).close(None).await.is_ok() {
                    let _ = tokio::time::timeout(Duration::from_secs(2), async {
                        while let Some(Ok(_)) = ws.next().await {}
                    })
                    .await;
                }
            }
            Conn::Raw { mut stream, .. } => {
                use tokio::io::AsyncWriteExt;
                let _ = stream.shutdown().await;
            }
        }
    }
}

/// Source addresses for `n` connections: 127.0.0.1, .2, ... so more than the ~28k ephemeral
/// ports of one address can reach one server port.
pub fn source_for(i: usize, per_address: usize) -> Option<IpAddr> {
    let k = i / per_address.max(1);
    if k == 0 {
        return None;
    }
    let k = k as u32 + 1;
    Some(IpAddr::from([
        127,
        ((k >> 16) & 0xff) as u8,
        ((k >> 8) & 0xff) as u8,
        (k & 0xff) as u8,
    ]))
}

/// What a session joins with: the realm, and credentials for ticket or WAMP-CRA.
#[derive(Clone, Debug, Default)]
pub struct Join {
    pub realm: String,
    pub authmethod: Option<String>,
    pub authid: Option<String>,
    pub secret: Option<String>,
}

impl Join {
    /// The AUTHENTICATE signature for a CHALLENGE.
    fn answer(&self, method: &str, extra: &crate::wamp::Dict) -> Result<String, String> {
        use crate::wamp::value::dict_get;
        let secret = self
            .secret
            .as_deref()
            .ok_or("the router asked for credentials: pass --secret")?;
        match method {
            "ticket" => Ok(secret.to_owned()),
            "wampcra" => {
                let challenge = dict_get(extra, "challenge")
                    .and_then(Value::as_str)
                    .ok_or("WAMP-CRA challenge without a challenge string")?;
                let key = match dict_get(extra, "salt").and_then(Value::as_str) {
                    Some(salt) => {
                        let iterations = dict_get(extra, "iterations")
                            .and_then(Value::as_u64)
                            .unwrap_or(1000) as u32;
                        let keylen = dict_get(extra, "keylen")
                            .and_then(Value::as_u64)
                            .unwrap_or(32) as u32;
                        crate::auth::wampcra::derive_key(secret, salt, iterations, keylen)
                    }
                    None => secret.to_owned(),
                };
                Ok(crate::auth::wampcra::sign(key.as_bytes(), challenge))
            }
            other => Err(format!(
                "the router challenged with '{other}', which the load tool does not speak"
            )),
        }
    }
}
