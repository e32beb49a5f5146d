//! `Socket`: the readiness-based, non-blocking operations the connection loop needs, for TCP
//! and Unix-domain streams alike.

use bytes::BytesMut;
use std::future::Future;
use std::io::{self, IoSlice};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpStream, UnixStream};

pub trait Socket: Send + 'static {
    fn readable(&self) -> impl Future<Output = io::Result<()>> + Send;
    fn writable(&self) -> impl Future<Output = io::Result<()>> + Send;
    fn try_read_buf(&self, buf: &mut BytesMut) -> io::Result<usize>;
    fn try_write_vectored(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize>;
    /// The last write before `shutdown`: a transport that can hold it back lets the FIN ride
    /// in the same segment (TCP: `MSG_MORE`, released by the shutdown).
    fn try_write_last(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        self.try_write_vectored(bufs)
    }
    fn shutdown(&mut self) -> impl Future<Output = io::Result<()>> + Send;
    /// Bytes accepted by `try_write_vectored` but not yet handed to the kernel (TLS records
    /// waiting for the socket); the loop waits on `writable` until they are out.
    fn has_buffered_output(&self) -> bool {
        false
    }
}

macro_rules! socket_impl {
    ($t:ty $(, $extra:item)?) => {
        impl Socket for $t {
            fn readable(&self) -> impl Future<Output = io::Result<()>> + Send {
                <$t>::readable(self)
            }
            fn writable(&self) -> impl Future<Output = io::Result<()>> + Send {
                <$t>::writable(self)
            }
            fn try_read_buf(&self, buf: &mut BytesMut) -> io::Result<usize> {
                <$t>::try_read_buf(self, buf)
            }
            fn try_write_vectored(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
                <$t>::try_write_vectored(self, bufs)
            }
            fn shutdown(&mut self) -> impl Future<Output = io::Result<()>> + Send {
                AsyncWriteExt::shutdown(self)
            }
            $($extra)?
        }
    };
}

socket_impl!(
    TcpStream,
    fn try_write_last(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        self.try_io(tokio::io::Interest::WRITABLE, || {
            socket2::SockRef::from(self).send_vectored_with_flags(bufs, nix::libc::MSG_MORE)
        })
    }
);
socket_impl!(UnixStream);
