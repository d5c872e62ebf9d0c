//! Bytes on the wire of the broker's connections (TLS records, HTTP/2 frames and all), counted
//! under the TLS layer: what a hub's agents cost its network, heartbeats included.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tonic::transport::server::Connected;

/// Bytes received and sent, summed over every connection.
#[derive(Debug, Default)]
pub struct WireBytes {
    received: AtomicU64,
    sent: AtomicU64,
}

impl WireBytes {
    pub fn received(&self) -> u64 {
        self.received.load(Ordering::Relaxed)
    }

    pub fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }
}

/// A connection whose bytes are added to a [`WireBytes`], holding the broker's connection slot
/// (if given) for as long as it lives.
#[derive(Debug)]
pub struct Counted<T> {
    inner: T,
    bytes: Arc<WireBytes>,
    _slot: Option<tokio::sync::OwnedSemaphorePermit>,
}

impl<T> Counted<T> {
    pub fn new(inner: T, bytes: Arc<WireBytes>) -> Self {
        Self {
            inner,
            bytes,
            _slot: None,
        }
    }

    /// Keeps `slot` until the connection is dropped.
    pub fn holding(mut self, slot: tokio::sync::OwnedSemaphorePermit) -> Self {
        self._slot = Some(slot);
        self
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Counted<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        let read = buf.filled().len().saturating_sub(before);
        self.bytes
            .received
            .fetch_add(u64::try_from(read).unwrap_or(u64::MAX), Ordering::Relaxed);
        polled
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Counted<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.count_sent(&polled);
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.count_sent(&polled);
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

impl<T> Counted<T> {
    fn count_sent(&self, polled: &Poll<std::io::Result<usize>>) {
        if let Poll::Ready(Ok(written)) = polled {
            self.bytes.sent.fetch_add(
                u64::try_from(*written).unwrap_or(u64::MAX),
                Ordering::Relaxed,
            );
        }
    }
}

impl<T: Connected> Connected for Counted<T> {
    type ConnectInfo = T::ConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.inner.connect_info()
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    use super::*;

    #[tokio::test]
    async fn bytes_read_and_written_are_counted() {
        let (near, mut far) = tokio::io::duplex(64);
        let bytes = Arc::new(WireBytes::default());
        let mut counted = Counted::new(near, Arc::clone(&bytes));
        counted.write_all(b"hello").await.unwrap();
        far.write_all(b"hi!").await.unwrap();
        let mut got = [0u8; 3];
        counted.read_exact(&mut got).await.unwrap();
        assert_eq!((bytes.received(), bytes.sent()), (3, 5));
    }
}
