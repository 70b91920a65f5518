//! One connection type for every route to the API server (direct, or through a proxy's tunnel,
//! see [`crate::api::proxy`]), so the HTTP stack above it (TLS, timeouts, hyper's client) is
//! compiled once instead of once per route (71 KB less in the static binary).

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use hyper::rt::{Read, ReadBufCursor, Write};
use hyper_util::client::legacy::connect::{Connected, Connection};

/// What a route's connector yields: a byte stream that says how it is connected.
pub trait Io: Read + Write + Connection + Send + Unpin + 'static {}

impl<T: Read + Write + Connection + Send + Unpin + 'static> Io for T {}

/// Any route's connection, boxed.
pub struct BoxedIo(Box<dyn Io>);

impl BoxedIo {
    pub fn new(io: impl Io) -> BoxedIo {
        BoxedIo(Box::new(io))
    }
}

/// The connector every route is turned into.
pub type Connector = tower::util::BoxCloneSyncService<http::Uri, BoxedIo, tower::BoxError>;

/// `connector`, yielding [`BoxedIo`].
pub fn boxed<C>(connector: C) -> Connector
where
    C: tower::Service<http::Uri> + Clone + Send + Sync + 'static,
    C::Response: Io,
    C::Future: Send + 'static,
    C::Error: Into<tower::BoxError>,
{
    use tower::ServiceExt;
    Connector::new(connector.map_response(BoxedIo::new).map_err(Into::into))
}

impl Connection for BoxedIo {
    fn connected(&self) -> Connected {
        self.0.connected()
    }
}

impl Read for BoxedIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0).poll_read(cx, buf)
    }
}

impl Write for BoxedIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut *self.0).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut *self.0).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0).poll_shutdown(cx)
    }
}
