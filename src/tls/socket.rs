//! `TlsSocket`: a TLS connection (after its handshake) with the readiness-based, non-blocking
//! operations of `transport::socket::Socket`, so WebSocket and RawSocket over TLS run the same
//! connection loop as plain TCP.
//!
//! rustls is used sans-I/O: reads pull TLS records from the TCP socket with `try_read` until
//! plaintext comes out; writes encrypt into rustls' buffer and push records with `try_write`.
//! Records that did not fit into the socket stay in rustls (`has_buffered_output`), and the loop
//! waits for `writable` until they are out — encrypted bytes are never lost, and a peer that
//! stops reading stalls only its own connection. The lock is uncontended (one task per
//! connection) and never held across an await.

use crate::transport::socket::Socket;
use bytes::BytesMut;
use parking_lot::Mutex;
use rustls::ServerConnection;
use std::io::{self, IoSlice, Read, Write};
use tokio::io::{AsyncWriteExt, Interest};
use tokio::net::TcpStream;

/// Plaintext read per call when the caller reserved less.
const MIN_READ: usize = 4096;
/// At most this much of the caller's reservation is zeroed per call (a big message is read in
/// several calls instead of zeroing the rest of its buffer each time).
const MAX_READ: usize = 64 << 10;

pub struct TlsSocket {
    tcp: TcpStream,
    tls: Mutex<ServerConnection>,
}

/// `std::io::Read`/`Write` over a tokio `TcpStream` without blocking (WouldBlock when not ready).
struct Nonblocking<'a>(&'a TcpStream);

impl Read for Nonblocking<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.try_read(buf)
    }
}

impl Write for Nonblocking<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.try_write(buf)
    }
    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        self.0.try_write_vectored(bufs)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Pushes rustls' pending records into the socket until it would block. Ok whether or not
/// everything went out (`wants_write` tells).
fn push(tcp: &TcpStream, conn: &mut ServerConnection) -> io::Result<()> {
    while conn.wants_write() {
        match conn.write_tls(&mut Nonblocking(tcp)) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Whether decrypted bytes wait to be read (errors say yes: the next read reports them).
fn has_plaintext(conn: &mut ServerConnection) -> bool {
    match conn.process_new_packets() {
        Ok(state) => state.plaintext_bytes_to_read() > 0 || state.peer_has_closed(),
        Err(_) => true,
    }
}

impl TlsSocket {
    pub fn new(tcp: TcpStream, conn: ServerConnection) -> TlsSocket {
        TlsSocket {
            tcp,
            tls: Mutex::new(conn),
        }
    }
}

impl Socket for TlsSocket {
    async fn readable(&self) -> io::Result<()> {
        loop {
            let wants_write = {
                let mut c = self.tls.lock();
                if has_plaintext(&mut c) {
                    return Ok(());
                }
                c.wants_write()
            };
            if !wants_write {
                return self.tcp.readable().await;
            }
            // Records are waiting to go out (a session ticket, a key update reply): send them
            // as the socket allows while waiting for input.
            let ready = self
                .tcp
                .ready(Interest::READABLE | Interest::WRITABLE)
                .await?;
            if ready.is_readable() {
                return Ok(());
            }
            push(&self.tcp, &mut self.tls.lock())?;
        }
    }

    async fn writable(&self) -> io::Result<()> {
        loop {
            self.tcp.writable().await?;
            let mut c = self.tls.lock();
            push(&self.tcp, &mut c)?;
            if !c.wants_write() {
                return Ok(());
            }
        }
    }

    fn try_read_buf(&self, buf: &mut BytesMut) -> io::Result<usize> {
        let mut c = self.tls.lock();
        loop {
            // A connection that failed stays failed (and must not look readable forever).
            if let Err(e) = c.process_new_packets() {
                let _ = push(&self.tcp, &mut c);
                return Err(io::Error::new(io::ErrorKind::InvalidData, e));
            }
            let start = buf.len();
            let room = (buf.capacity() - start).clamp(MIN_READ, MAX_READ);
            buf.resize(start + room, 0);
            let got = c.reader().read(&mut buf[start..]);
            match got {
                Ok(n) => {
                    buf.truncate(start + n);
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => buf.truncate(start),
                Err(e) => {
                    buf.truncate(start);
                    return Err(e);
                }
            }
            // No plaintext yet: more records from the socket.
            match c.read_tls(&mut Nonblocking(&self.tcp)) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    push(&self.tcp, &mut c)?;
                    return Err(e);
                }
                Err(e) => return Err(e),
            }
            // Decrypted at the top of the loop; handshake-level replies go out now.
            if let Err(e) = c.process_new_packets() {
                // The alert rustls queued goes out if the socket takes it.
                let _ = push(&self.tcp, &mut c);
                return Err(io::Error::new(io::ErrorKind::InvalidData, e));
            }
            push(&self.tcp, &mut c)?;
        }
    }

    fn try_write_vectored(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        let mut c = self.tls.lock();
        push(&self.tcp, &mut c)?;
        if c.wants_write() {
            // Earlier records are still waiting for the socket: back-pressure.
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let n = c.writer().write_vectored(bufs)?;
        push(&self.tcp, &mut c)?;
        Ok(n)
    }

    fn has_buffered_output(&self) -> bool {
        self.tls.lock().wants_write()
    }

    async fn shutdown(&mut self) -> io::Result<()> {
        self.tls.get_mut().send_close_notify();
        loop {
            {
                let c = self.tls.get_mut();
                push(&self.tcp, c)?;
                if !c.wants_write() {
                    break;
                }
            }
            self.tcp.writable().await?;
        }
        AsyncWriteExt::shutdown(&mut self.tcp).await
    }
}
