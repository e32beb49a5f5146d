//! HTTPS: WAMP over `wss://` and RawSocket over TLS with a certificate made here (rcgen),
//! certificate reload on SIGHUP without dropping sessions, the plain-HTTP redirect listener,
//! security headers, cross-site POST refusal, and the public-bind refusal of the zero-config
//! default.

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use switchboard::config::{Endpoint, ListenerConfig, WampEndpoint};
use switchboard::tls::{TlsFiles, TlsSource};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use crate::support::TestServer;

const T: Duration = Duration::from_secs(10);

/// A self-signed certificate for `localhost`: (cert PEM, key PEM, cert DER).
fn make_cert() -> (String, String, Vec<u8>) {
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).expect("rcgen");
    (
        ck.cert.pem(),
        ck.signing_key.serialize_pem(),
        ck.cert.der().to_vec(),
    )
}

pub(crate) fn write_cert(dir: &Path) -> (PathBuf, PathBuf, Vec<u8>) {
    let (cert, key, der) = make_cert();
    let (c, k) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&c, cert).unwrap();
    std::fs::write(&k, key).unwrap();
    (c, k, der)
}

pub(crate) fn client_config(roots: &[&[u8]]) -> Arc<rustls::ClientConfig> {
    let mut store = rustls::RootCertStore::empty();
    for r in roots {
        store
            .add(rustls::pki_types::CertificateDer::from(r.to_vec()))
            .unwrap();
    }
    let cfg = rustls::ClientConfig::builder_with_provider(switchboard::tls::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(store)
        .with_no_client_auth();
    Arc::new(cfg)
}

/// A TLS connection to `addr` verified against `roots` as `localhost`; the leaf it presented.
pub(crate) async fn tls_connect(
    addr: SocketAddr,
    roots: &[&[u8]],
) -> (TlsStream<TcpStream>, Vec<u8>) {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let tls = tokio::time::timeout(
        T,
        tokio_rustls::TlsConnector::from(client_config(roots)).connect(name, tcp),
    )
    .await
    .expect("handshake in time")
    .expect("TLS handshake");
    let leaf = tls.get_ref().1.peer_certificates().unwrap()[0].to_vec();
    (tls, leaf)
}

type Wss = WebSocketStream<TlsStream<TcpStream>>;

/// `wss://localhost/ws`, HELLO → WELCOME; the socket, the session id and the leaf seen.
async fn wss_join(addr: SocketAddr, roots: &[&[u8]]) -> (Wss, u64, Vec<u8>) {
    let (tls, leaf) = tls_connect(addr, roots).await;
    let mut req = format!("wss://localhost:{}/ws", addr.port())
        .into_client_request()
        .unwrap();
    req.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        HeaderValue::from_static("wamp.2.json"),
    );
    let (mut ws, resp) = tokio_tungstenite::client_async(req, tls)
        .await
        .expect("websocket over TLS");
    assert_eq!(resp.headers()["sec-websocket-protocol"], "wamp.2.json");
    let hello = json!([1, "realm1", {"roles": {"publisher": {}, "subscriber": {}, "caller": {}}}]);
    ws.send(Message::text(hello.to_string())).await.unwrap();
    let welcome = wss_recv(&mut ws).await;
    assert_eq!(welcome[0], 2, "WELCOME, got {welcome}");
    let session = welcome[1].as_u64().unwrap();
    (ws, session, leaf)
}

async fn wss_recv(ws: &mut Wss) -> Value {
    loop {
        match tokio::time::timeout(T, ws.next()).await.expect("in time") {
            Some(Ok(Message::Text(t))) => return serde_json::from_str(&t).unwrap(),
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            other => panic!("expected a WAMP message, got {other:?}"),
        }
    }
}

/// An acknowledged PUBLISH: proves the session is alive.
async fn wss_publish_acked(ws: &mut Wss, request: u64) {
    let msg = json!([16, request, {"acknowledge": true}, "com.test.alive", ["x"]]);
    ws.send(Message::text(msg.to_string())).await.unwrap();
    let published = wss_recv(ws).await;
    assert_eq!(published[0], 17, "PUBLISHED, got {published}");
    assert_eq!(published[1], request);
}

/// A listener with TLS from files serving WebSocket at /ws, the web UI and RawSocket (a
/// universal transport: the first decrypted byte tells them apart).
pub(crate) fn universal_tls(cert: &Path, key: &Path) -> ListenerConfig {
    ListenerConfig {
        endpoint: Endpoint::Tcp("127.0.0.1:0".parse().unwrap()),
        websocket: vec![("/ws".into(), WampEndpoint::development())],
        rawsocket: Some(WampEndpoint::development()),
        web: true,
        bridge: Vec::new(),
        tls: Some(TlsSource::Files(TlsFiles {
            certificate: cert.to_path_buf(),
            key: key.to_path_buf(),
            chain: Vec::new(),
        })),
        origin: "test".into(),
    }
}

#[tokio::test]
async fn wss_hello_welcome_and_rawsocket_over_tls() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key, der) = write_cert(dir.path());
    let server = TestServer::with(|o| o.node.listeners = vec![universal_tls(&cert, &key)]).await;
    let (mut ws, session, leaf) = wss_join(server.addr, &[&der]).await;
    assert!(session > 0);
    assert_eq!(leaf, der, "the configured certificate is served");
    // Pub/sub over TLS, with a payload bigger than one TLS record (16 KiB).
    let sub = json!([32, 1, {}, "com.test.big"]);
    ws.send(Message::text(sub.to_string())).await.unwrap();
    assert_eq!(wss_recv(&mut ws).await[0], 33);
    let big = "x".repeat(100_000);
    let (mut other, _, _) = wss_join(server.addr, &[&der]).await;
    let msg = json!([16, 1, {}, "com.test.big", [big]]);
    other.send(Message::text(msg.to_string())).await.unwrap();
    let event = wss_recv(&mut ws).await;
    assert_eq!(event[0], 36);
    assert_eq!(event[4][0].as_str().unwrap().len(), 100_000);

    // RawSocket on the same TLS listener.
    let (mut tls, _) = tls_connect(server.addr, &[&der]).await;
    tls.write_all(&[0x7F, 0xF1, 0, 0]).await.unwrap();
    let mut reply = [0u8; 4];
    tls.read_exact(&mut reply).await.unwrap();
    assert_eq!(reply[0], 0x7F);
    assert_eq!(reply[1] & 0x0F, 1, "JSON accepted: {reply:?}");
    let hello = json!([1, "realm1", {"roles": {"caller": {}}}]).to_string();
    let len = (hello.len() as u32).to_be_bytes();
    tls.write_all(&[0, len[1], len[2], len[3]]).await.unwrap();
    tls.write_all(hello.as_bytes()).await.unwrap();
    let mut head = [0u8; 4];
    tokio::time::timeout(T, tls.read_exact(&mut head))
        .await
        .unwrap()
        .unwrap();
    let n = u32::from_be_bytes([0, head[1], head[2], head[3]]) as usize;
    let mut body = vec![0u8; n];
    tls.read_exact(&mut body).await.unwrap();
    let welcome: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(welcome[0], 2, "RawSocket over TLS: WELCOME, got {welcome}");

    // Plain HTTP on the TLS port is not served (it fails the TLS handshake).
    let (head, _) = {
        let mut s = TcpStream::connect(server.addr).await.unwrap();
        s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut out = Vec::new();
        let _ = tokio::time::timeout(T, s.read_to_end(&mut out)).await;
        (String::from_utf8_lossy(&out).to_string(), ())
    };
    assert!(!head.starts_with("HTTP/1.1 200"), "{head}");
}

/// A minimal HTTPS request; returns the whole response head and body.
async fn https(addr: SocketAddr, der: &[u8], request: &str) -> String {
    let (mut tls, _) = tls_connect(addr, &[der]).await;
    tls.write_all(request.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(T, tls.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).to_string()
}

#[tokio::test]
async fn security_headers_hsts_and_cross_site_posts() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key, der) = write_cert(dir.path());
    let server = TestServer::with(|o| o.node.listeners = vec![universal_tls(&cert, &key)]).await;
    for page in ["/", "/admin", "/inbox", "/setup"] {
        let r = https(
            server.addr,
            &der,
            &format!("GET {page} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"),
        )
        .await
        .to_ascii_lowercase();
        assert!(r.starts_with("http/1.1 200"), "{page}: {r}");
        for h in [
            "strict-transport-security: max-age=31536000",
            "x-content-type-options: nosniff",
            "x-frame-options: deny",
            "referrer-policy: no-referrer",
            "script-src 'self'",
            "object-src 'none'",
            "frame-ancestors 'none'",
        ] {
            assert!(r.contains(h), "{page} lacks {h}: {r}");
        }
        assert!(!r.contains("unsafe-inline"), "{page}");
    }
    // The widget script loads on other sites: a plain script, no cross-origin restriction.
    let r = https(
        server.addr,
        &der,
        "GET /widget.js HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    )
    .await
    .to_ascii_lowercase();
    assert!(r.starts_with("http/1.1 200"), "{r}");
    assert!(r.contains("content-type: text/javascript") || r.contains("application/javascript"));
    assert!(!r.contains("cross-origin-resource-policy"), "{r}");

    // A cross-site POST is refused before the handler, with a reason.
    let body = r#"{"token":"x","authid":"a","password":"12345678"}"#;
    let post = |origin: &str| {
        format!(
            "POST /api/setup HTTP/1.1\r\nHost: localhost:{}\r\nOrigin: {origin}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            server.addr.port(),
            body.len()
        )
    };
    let r = https(server.addr, &der, &post("https://evil.example")).await;
    assert!(r.starts_with("HTTP/1.1 403"), "{r}");
    assert!(r.contains("cross-site request refused"), "{r}");
    // Same origin reaches the handler (which refuses the wrong token itself).
    let same = format!("https://localhost:{}", server.addr.port());
    let r = https(server.addr, &der, &post(&same)).await;
    assert!(!r.contains("cross-site"), "{r}");
    assert!(
        r.contains("the setup token is wrong") || r.contains("setup is done"),
        "{r}"
    );
    // Behind a proxy that rewrites Host: X-Forwarded-Host, or the browser's Sec-Fetch-Site.
    for extra in [
        "X-Forwarded-Host: chat.example.com\r\n",
        "Sec-Fetch-Site: same-origin\r\n",
    ] {
        let req = post("https://chat.example.com").replacen(
            "Connection: close\r\n",
            &format!("{extra}Connection: close\r\n"),
            1,
        );
        let r = https(server.addr, &der, &req).await;
        assert!(!r.contains("cross-site"), "{extra}: {r}");
    }
    let req = post("https://evil.example").replacen(
        "Connection: close\r\n",
        "Sec-Fetch-Site: cross-site\r\nX-Forwarded-Host: chat.example.com\r\nConnection: close\r\n",
        1,
    );
    assert!(https(server.addr, &der, &req)
        .await
        .starts_with("HTTP/1.1 403"));

    // Plain HTTP: no HSTS.
    let plain = TestServer::start().await;
    let (head, _) = crate::support::http_get(plain.addr, "/").await;
    let head = head.to_ascii_lowercase();
    assert!(head.contains("x-frame-options: deny"), "{head}");
    assert!(!head.contains("strict-transport-security"), "{head}");
}

#[tokio::test]
async fn plain_http_redirects_to_https() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key, _) = write_cert(dir.path());
    let server = TestServer::with(|o| {
        o.node.listeners = vec![universal_tls(&cert, &key)];
        o.node.http_redirect = Some("127.0.0.1:0".parse().unwrap());
    })
    .await;
    let redirect = server.running.as_ref().unwrap().redirect_addr.unwrap();
    let get = |path: &'static str| async move {
        let mut s = TcpStream::connect(redirect).await.unwrap();
        s.write_all(
            format!("GET {path} HTTP/1.1\r\nHost: sb.test:8080\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .await
        .unwrap();
        let mut out = Vec::new();
        tokio::time::timeout(T, s.read_to_end(&mut out))
            .await
            .unwrap()
            .unwrap();
        String::from_utf8_lossy(&out).to_string()
    };
    let r = get("/inbox?thread=1").await;
    assert!(r.starts_with("HTTP/1.1 308"), "{r}");
    let want = format!(
        "location: https://sb.test:{}/inbox?thread=1",
        server.addr.port()
    );
    assert!(r.to_ascii_lowercase().contains(&want), "{r}");
    // ACME challenges are not redirected (none pending: 404).
    let r = get("/.well-known/acme-challenge/abc").await;
    assert!(r.starts_with("HTTP/1.1 404"), "{r}");
}

#[tokio::test]
async fn bad_certificate_files_stop_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, _, _) = write_cert(dir.path());
    let (_, other_key, _) = {
        let d2 = dir.path().join("other");
        std::fs::create_dir_all(&d2).unwrap();
        write_cert(&d2)
    };
    let mut opts = switchboard::app::Options::development(
        "127.0.0.1:0".parse().unwrap(),
        dir.path().join("data"),
    );
    opts.node.listeners = vec![universal_tls(&cert, &other_key)];
    let err = switchboard::app::start(opts).await.err().expect("refused");
    assert!(err.to_string().contains("TLS"), "{err}");
}

// --- the binary: SIGHUP reload, public-bind refusal ---

struct Proc {
    child: std::process::Child,
    addr: SocketAddr,
    /// Everything the server logged so far (stderr, read by a thread).
    log: Arc<std::sync::Mutex<String>>,
}

impl Proc {
    /// Waits until the log contains `needle`.
    fn wait_log(&self, needle: &str) {
        let deadline = Instant::now() + T;
        while !self.log.lock().unwrap().contains(needle) {
            assert!(
                Instant::now() < deadline,
                "log lacks {needle:?}: {}",
                self.log.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn_tls(dir: &Path, cert: &Path, key: &Path) -> Proc {
    let mut child = Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .args(["--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.join("data"))
        .arg("--tls-cert")
        .arg(cert)
        .arg("--tls-key")
        .arg(key)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("binary starts");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .trim()
        .strip_prefix("switchboard listening on https://")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .parse()
        .unwrap();
    let log = Arc::new(std::sync::Mutex::new(String::new()));
    let (sink, stderr) = (log.clone(), child.stderr.take().unwrap());
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let mut l = sink.lock().unwrap();
            l.push_str(&line);
            l.push('\n');
        }
    });
    Proc { child, addr, log }
}

fn signal(p: &Proc, sig: &str) {
    let ok = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(p.child.id().to_string())
        .status()
        .unwrap()
        .success();
    assert!(ok);
}

/// Waits until a new connection presents `want` as its leaf.
async fn wait_for_leaf(addr: SocketAddr, roots: &[&[u8]], want: &[u8]) {
    let deadline = Instant::now() + T;
    loop {
        let (_, leaf) = tls_connect(addr, roots).await;
        if leaf == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the new certificate is not served"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn sighup_reloads_the_certificate_and_keeps_sessions() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key, old) = write_cert(dir.path());
    let mut p = spawn_tls(dir.path(), &cert, &key);
    let (mut ws, _, leaf) = wss_join(p.addr, &[&old]).await;
    assert_eq!(leaf, old);

    // New files in place (as certbot/ACME tooling does), then SIGHUP.
    let (new_cert, new_key, new) = make_cert();
    std::fs::write(&cert, new_cert).unwrap();
    std::fs::write(&key, new_key).unwrap();
    signal(&p, "HUP");
    p.wait_log("certificate reloaded");
    wait_for_leaf(p.addr, &[&old, &new], &new).await;
    let (mut ws2, _, leaf2) = wss_join(p.addr, &[&new]).await;
    assert_eq!(leaf2, new, "a new connection sees the new certificate");
    // The session from before the reload still works.
    wss_publish_acked(&mut ws, 7).await;
    wss_publish_acked(&mut ws2, 1).await;

    // A broken certificate is refused with an error; the current one stays.
    std::fs::write(&cert, "-----BEGIN CERTIFICATE-----\nnot base64\n").unwrap();
    signal(&p, "HUP");
    p.wait_log("reload failed, keeping the old state");
    let (_, leaf3) = tls_connect(p.addr, &[&old, &new]).await;
    assert_eq!(leaf3, new, "the old certificate is kept");
    wss_publish_acked(&mut ws, 8).await;

    signal(&p, "TERM");
    let deadline = Instant::now() + T;
    while p.child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "did not stop");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn zero_config_refuses_a_public_address() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .args(["--listen", "0.0.0.0:0", "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("refusing to start — --listen 0.0.0.0:0"),
        "{err}"
    );
    assert!(err.contains("--allow-public-anonymous"), "{err}");

    let out = Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .args(["--rawsocket-listen", "0.0.0.0:0", "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--rawsocket-listen 0.0.0.0:0"));
}

#[test]
fn allow_public_anonymous_starts_with_a_loud_warning() {
    let dir = tempfile::tempdir().unwrap();
    let (child, line) = start_or_refuse(&[
        "--listen".into(),
        "0.0.0.0:0".into(),
        "--allow-public-anonymous".into(),
        "--data-dir".into(),
        dir.path().into(),
    ])
    .expect("starts when asked");
    assert!(
        line.starts_with("switchboard listening on http://0.0.0.0:"),
        "{line}"
    );
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--allow-public-anonymous"), "{err}");
    assert!(err.contains("ANONYMOUS"), "{err}");
}

/// A config on 0.0.0.0 whose anonymous role may subscribe everywhere, and publish too if asked.
fn public_anonymous_config(publish: bool) -> String {
    format!(
        r#"{{"version": 2, "workers": [{{"type": "router",
  "realms": [{{"name": "realm1", "roles": [{{"name": "anonymous", "permissions": [
     {{"uri": "", "match": "prefix", "allow": {{"subscribe": true, "publish": {publish}}}}}]}}]}}],
  "transports": [{{"type": "websocket", "endpoint": {{"type": "tcp", "port": 0, "interface": "0.0.0.0"}}}}]}}]}}"#
    )
}

/// Starts the binary with `args`; Ok((child, its ready line)) once it says it listens,
/// Err(stderr) if it exits.
fn start_or_refuse(args: &[std::ffi::OsString]) -> Result<(std::process::Child, String), String> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    if line.starts_with("switchboard listening on") {
        return Ok((child, line));
    }
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success());
    Err(String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn a_config_letting_anonymous_strangers_publish_everywhere_is_refused_unless_asked_for() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("node.json");
    let data = dir.path().join("data");
    let args = |extra: Option<&str>| {
        let mut a: Vec<std::ffi::OsString> = vec![
            "--config".into(),
            file.clone().into(),
            "--data-dir".into(),
            data.clone().into(),
        ];
        a.extend(extra.map(Into::into));
        a
    };
    let stop = |mut child: std::process::Child| {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status();
        let _ = child.wait();
    };

    std::fs::write(&file, public_anonymous_config(true)).unwrap();
    let err = start_or_refuse(&args(None)).expect_err("refused");
    assert!(
        err.contains("anonymous clients get role 'anonymous' in realm 'realm1', which may publish on every URI"),
        "{err}"
    );
    assert!(err.contains("--allow-public-anonymous"), "{err}");
    stop(
        start_or_refuse(&args(Some("--allow-public-anonymous")))
            .expect("starts when asked")
            .0,
    );

    // Anonymous read access on a public address is a legitimate choice (a public feed).
    std::fs::write(&file, public_anonymous_config(false)).unwrap();
    let (child, _) = start_or_refuse(&args(None)).expect("read-only anonymous starts");
    // ... and a reload cannot open it up behind the start-up check's back.
    std::fs::write(&file, public_anonymous_config(true)).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .arg("reload")
        .arg("--data-dir")
        .arg(&data)
        .env_remove("SWITCHBOARD_DATA_DIR")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("rejected") && err.contains("may publish on every URI"),
        "{err}"
    );
    stop(child);
}

#[test]
fn certificate_validity_is_read_from_der() {
    let (_, _, der) = make_cert();
    let (from, to) = switchboard::tls::der::validity(&der).expect("validity");
    assert!(to > from);
}

#[tokio::test]
async fn stalled_tls_subscriber_is_cut_off_and_others_keep_going() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key, der) = write_cert(dir.path());
    let server = TestServer::with(|o| {
        o.node.router.limits.max_queue_bytes = 256 << 10;
        o.node.listeners = vec![universal_tls(&cert, &key)];
    })
    .await;
    let (mut stalled, _, _) = wss_join(server.addr, &[&der]).await;
    let sub = json!([32, 1, {}, "com.flood"]);
    stalled.send(Message::text(sub.to_string())).await.unwrap();
    assert_eq!(wss_recv(&mut stalled).await[0], 33);
    let (mut fast, _, _) = wss_join(server.addr, &[&der]).await;
    fast.send(Message::text(sub.to_string())).await.unwrap();
    assert_eq!(wss_recv(&mut fast).await[0], 33);
    let (mut p, _, _) = wss_join(server.addr, &[&der]).await;
    let payload = "y".repeat(3000);
    for i in 0..8000u64 {
        let m = json!([16, i + 1, {}, "com.flood", [payload]]);
        p.send(Message::text(m.to_string())).await.unwrap();
        if i % 20 == 19 {
            for _ in 0..20 {
                assert_eq!(wss_recv(&mut fast).await[0], 36);
            }
        }
    }
    wss_publish_acked(&mut p, 999_999).await;
    // The stalled one was cut off as a slow consumer: 2 sessions left.
    let deadline = Instant::now() + T;
    loop {
        let r = https(
            server.addr,
            &der,
            "GET /api/status HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
        )
        .await;
        let body = r.split_once("\r\n\r\n").map(|x| x.1).unwrap_or("");
        let status: Value = serde_json::from_str(body).unwrap();
        if status["sessions"] == 2 {
            break;
        }
        assert!(Instant::now() < deadline, "the stalled TLS session stays");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
