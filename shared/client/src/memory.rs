//! Connections inside one process: the all-in-one serves its own services'
//! calls to each other over in-memory pipes instead of loopback TCP. Each
//! connection is still HTTP/2 to the same server, through the same layers
//! (authentication, deadlines, rate limits, tracing), so a call between two
//! services keeps exactly the contract it has between two processes; only
//! the kernel's socket work is skipped.

use std::future::Ready;
use std::pin::Pin;
use std::task::{Context, Poll};

use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, DuplexStream, ReadBuf};
use tokio::sync::mpsc;

/// Bytes one direction of a pipe holds before the writer waits (HTTP/2's
/// flow control keeps a connection's data in flight well below it).
const PIPE_BYTES: usize = 256 * 1024;

/// The client side: every connection it makes is a new pipe whose other end
/// goes to the [`MemoryIncoming`] it was made with.
#[derive(Clone, Debug)]
pub struct MemoryConnector {
    server_ends: mpsc::UnboundedSender<DuplexStream>,
}

/// The server side: the pipes clients opened, as a stream of connections.
#[derive(Debug)]
pub struct MemoryIncoming {
    server_ends: mpsc::UnboundedReceiver<DuplexStream>,
}

/// A connector and the incoming connections it makes.
pub fn memory_transport() -> (MemoryConnector, MemoryIncoming) {
    let (tx, rx) = mpsc::unbounded_channel();
    (MemoryConnector { server_ends: tx }, MemoryIncoming { server_ends: rx })
}

impl MemoryIncoming {
    /// As a stream of connections, for `serve_with_incoming`.
    pub fn into_stream(self) -> impl tokio_stream::Stream<Item = DuplexStream> + Send + 'static {
        tokio_stream::wrappers::UnboundedReceiverStream::new(self.server_ends)
    }
}

impl tower::Service<http::Uri> for MemoryConnector {
    type Response = TokioIo<DuplexStream>;
    type Error = std::io::Error;
    type Future = Ready<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: http::Uri) -> Self::Future {
        let (client, server) = tokio::io::duplex(PIPE_BYTES);
        let sent =
            self.server_ends.send(server).map(|()| TokioIo::new(client)).map_err(|_| {
                std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "the in-process server stopped")
            });
        std::future::ready(sent)
    }
}

/// A connection a server accepts: from a socket or from a pipe.
#[derive(Debug)]
pub enum Connection<S> {
    Socket(S),
    Memory(DuplexStream),
}

impl<S: AsyncRead + Unpin> AsyncRead for Connection<S> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Connection::Socket(s) => Pin::new(s).poll_read(cx, buf),
            Connection::Memory(m) => Pin::new(m).poll_read(cx, buf),
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Connection<S> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Connection::Socket(s) => Pin::new(s).poll_write(cx, buf),
            Connection::Memory(m) => Pin::new(m).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Connection::Socket(s) => Pin::new(s).poll_flush(cx),
            Connection::Memory(m) => Pin::new(m).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Connection::Socket(s) => Pin::new(s).poll_shutdown(cx),
            Connection::Memory(m) => Pin::new(m).poll_shutdown(cx),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Connection::Socket(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Connection::Memory(m) => Pin::new(m).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Connection::Socket(s) => s.is_write_vectored(),
            Connection::Memory(m) => m.is_write_vectored(),
        }
    }
}

impl<S> tonic::transport::server::Connected for Connection<S> {
    // Nothing reads where a call came from; a socket's address is not kept.
    type ConnectInfo = ();

    fn connect_info(&self) -> Self::ConnectInfo {}
}
