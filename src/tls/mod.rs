//! TLS on listeners (rustls with the `ring` provider): certificates from PEM files or from ACME,
//! held by a `CertResolver` that can be swapped at any time (SIGHUP, an ACME renewal) without
//! touching established connections; the acceptor; `TlsSocket`, the connection loop's view of
//! a TLS stream; `Prefixed`, a TLS stream with bytes already read put back in front.

pub mod acme;
pub mod der;
pub mod socket;

use parking_lot::RwLock;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

pub use socket::TlsSocket;

/// Where a TLS listener's certificate comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TlsSource {
    /// PEM files, read at start and again on every SIGHUP.
    Files(TlsFiles),
    /// The node's ACME-managed certificate (`NodeConfig::acme`).
    Acme,
}

/// A certificate (chain) and its private key as PEM files (Crossbar's `endpoint.tls`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles {
    /// The server certificate; may already contain the intermediates after it.
    pub certificate: PathBuf,
    pub key: PathBuf,
    /// Intermediate certificates appended after `certificate`.
    pub chain: Vec<PathBuf>,
}

/// The ring crypto provider, the only one compiled in.
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Makes ring the process-wide default (for the ACME client, which asks for the default).
pub fn install_default_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Reads a certificate chain and key into a signing key rustls can serve, checking that the key
/// belongs to the certificate.
pub fn load_files(files: &TlsFiles) -> Result<CertifiedKey, String> {
    let mut chain = read_certs(&files.certificate)?;
    for c in &files.chain {
        chain.extend(read_certs(c)?);
    }
    let key = PrivateKeyDer::from_pem_file(&files.key)
        .map_err(|e| format!("{}: no usable private key: {e}", files.key.display()))?;
    certified_key(chain, key).map_err(|e| {
        format!(
            "{} with {}: {e}",
            files.certificate.display(),
            files.key.display()
        )
    })
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("{}: {e}", path.display()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: no certificate in it", path.display()));
    }
    Ok(certs)
}

/// The self-signed certificate a TLS-ALPN-01 validation expects for `domain` (RFC 8737: the
/// SHA-256 of the key authorization in the critical acmeIdentifier extension).
pub fn alpn_challenge_cert(domain: &str, digest: &[u8]) -> Result<CertifiedKey, String> {
    if digest.len() != 32 {
        return Err("the key authorization digest is not SHA-256".into());
    }
    let mut params =
        rcgen::CertificateParams::new(vec![domain.to_owned()]).map_err(|e| e.to_string())?;
    params.custom_extensions = vec![rcgen::CustomExtension::new_acme_identifier(digest)];
    let key = rcgen::KeyPair::generate().map_err(|e| e.to_string())?;
    let cert = params.self_signed(&key).map_err(|e| e.to_string())?;
    let key_der = PrivateKeyDer::Pkcs8(key.serialize_der().into());
    // Not `CertifiedKey::from_der`: its key check parses the certificate with webpki, which
    // refuses the critical acmeIdentifier extension. The key was made for this certificate.
    let signer = provider()
        .key_provider
        .load_private_key(key_der)
        .map_err(|e| e.to_string())?;
    Ok(CertifiedKey::new(vec![cert.der().clone()], signer))
}

/// A chain and key (PEM text) as a signing key; used for ACME certificates.
pub fn load_pem(chain_pem: &[u8], key_pem: &[u8]) -> Result<CertifiedKey, String> {
    let chain = CertificateDer::pem_slice_iter(chain_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("certificate chain: {e}"))?;
    if chain.is_empty() {
        return Err("no certificate in the chain".into());
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| format!("private key: {e}"))?;
    certified_key(chain, key)
}

fn certified_key(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<CertifiedKey, String> {
    let ck = CertifiedKey::from_der(chain, key, &provider()).map_err(|e| e.to_string())?;
    Ok(ck)
}

/// The ALPN protocol of ACME's TLS-ALPN-01 validation (RFC 8737).
pub const ACME_TLS_ALPN: &[u8] = b"acme-tls/1";

/// The certificate a listener presents, replaceable while it serves: each TLS handshake takes
/// the current one; connections already established keep theirs. While an ACME TLS-ALPN-01
/// validation is pending, handshakes that offer only `acme-tls/1` get that name's challenge
/// certificate instead.
#[derive(Debug, Default)]
pub struct CertResolver {
    current: RwLock<Option<Arc<CertifiedKey>>>,
    alpn_challenges: RwLock<std::collections::HashMap<String, Arc<CertifiedKey>>>,
}

impl CertResolver {
    pub fn new(initial: Option<CertifiedKey>) -> Arc<CertResolver> {
        Arc::new(CertResolver {
            current: RwLock::new(initial.map(Arc::new)),
            alpn_challenges: RwLock::default(),
        })
    }

    pub fn set_alpn_challenge(&self, domain: &str, key: CertifiedKey) {
        self.alpn_challenges
            .write()
            .insert(domain.to_ascii_lowercase(), Arc::new(key));
    }

    pub fn clear_alpn_challenges(&self) {
        self.alpn_challenges.write().clear();
    }

    pub fn set(&self, key: CertifiedKey) {
        *self.current.write() = Some(Arc::new(key));
    }

    pub fn has_certificate(&self) -> bool {
        self.current.read().is_some()
    }

    /// The leaf certificate served now (DER).
    pub fn leaf(&self) -> Option<CertificateDer<'static>> {
        self.current.read().as_ref()?.cert.first().cloned()
    }
}

impl ResolvesServerCert for CertResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let acme = hello
            .alpn()
            .is_some_and(|mut protocols| protocols.any(|p| p == ACME_TLS_ALPN));
        if acme {
            let name = hello.server_name()?.to_ascii_lowercase();
            return self.alpn_challenges.read().get(&name).cloned();
        }
        self.current.read().clone()
    }
}

/// ALPN of TURN over TLS (RFC 7443), for `turns:` clients that name it.
pub const TURN_ALPN: &[u8] = b"stun.turn";

/// The server side of TLS for one listener: TLS 1.2 and 1.3, ALPN `http/1.1` offered (clients
/// that send no ALPN, like RawSocket ones, are served too), `stun.turn` where the listener also
/// serves TURN, and `acme-tls/1` on ACME listeners.
pub fn acceptor(
    resolver: Arc<CertResolver>,
    acme: bool,
    turn: bool,
) -> Result<tokio_rustls::TlsAcceptor, String> {
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    if turn {
        config.alpn_protocols.push(TURN_ALPN.to_vec());
    }
    if acme {
        config.alpn_protocols.push(ACME_TLS_ALPN.to_vec());
    }
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

/// The TLS stream type hyper serves (bytes read to tell RawSocket from HTTP are put back).
pub type ServerStream = Prefixed<tokio_rustls::server::TlsStream<tokio::net::TcpStream>>;

/// A stream with some bytes already read from it put back in front.
pub struct Prefixed<S> {
    prefix: bytes::Bytes,
    inner: S,
}

impl<S> Prefixed<S> {
    pub fn new(prefix: bytes::Bytes, inner: S) -> Prefixed<S> {
        Prefixed { prefix, inner }
    }

    /// The bytes not yet read again, and the stream.
    pub fn into_parts(self) -> (bytes::Bytes, S) {
        (self.prefix, self.inner)
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Prefixed<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if !self.prefix.is_empty() {
            let n = self.prefix.len().min(buf.remaining());
            let head = self.prefix.split_to(n);
            buf.put_slice(&head);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Prefixed<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// A TLS stream after an HTTP upgrade or a RawSocket handshake, as the connection loop's socket,
/// with the bytes read past the handshake (`leftover` first, then what `Prefixed` kept).
pub fn into_socket(stream: ServerStream, leftover: &[u8]) -> (TlsSocket, bytes::Bytes) {
    let (prefix, tls) = stream.into_parts();
    let (tcp, conn) = tls.into_inner();
    let mut rest = Vec::with_capacity(leftover.len() + prefix.len());
    rest.extend_from_slice(leftover);
    rest.extend_from_slice(&prefix);
    (TlsSocket::new(tcp, conn), bytes::Bytes::from(rest))
}
