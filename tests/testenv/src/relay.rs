//! A TCP relay for cutting a connection on purpose: tests put it between a client and a server
//! (an agent and the hub's broker) to prove that what crosses it survives a network failure.
//!
//! [`Relay::start`] listens on `127.0.0.1` (a port the kernel picks) and forwards every
//! connection, byte for byte in both directions, to its target. [`Relay::cut`] is the failure:
//! every live connection is closed at once and, until [`Relay::restore`], new connections are
//! accepted and closed straight away without reaching the target — the client sees its
//! connection reset during its handshake, as behind a firewall that rejects. The relay never
//! looks into the bytes, so TLS (mutual TLS included) passes through it end to end.
//!
//! ```no_run
//! # async fn demo(broker: std::net::SocketAddr) -> Result<(), ocm_testenv::TestEnvError> {
//! let relay = ocm_testenv::Relay::start(broker).await?;
//! // … point the client at `relay.address()` …
//! relay.cut();
//! // … the client is disconnected and cannot reconnect …
//! relay.restore();
//! # Ok(()) }
//! ```
//!
//! Dropping the relay stops it: it stops listening and closes every connection.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

use crate::error::TestEnvError;

/// A running relay; see the [module documentation](self).
#[derive(Debug)]
pub struct Relay {
    address: SocketAddr,
    target: SocketAddr,
    /// `true` while cut.
    cut: watch::Sender<bool>,
    counters: Arc<Counters>,
    accepting: JoinHandle<()>,
}

#[derive(Debug, Default)]
struct Counters {
    forwarded: AtomicU64,
    refused: AtomicU64,
    live: AtomicUsize,
}

impl Relay {
    /// Starts a relay on `127.0.0.1` forwarding to `target`. The target need not be listening
    /// yet: each connection connects to it when it is accepted (and is closed if it cannot).
    pub async fn start(target: SocketAddr) -> Result<Self, TestEnvError> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .map_err(TestEnvError::NoFreePort)?;
        let address = listener.local_addr().map_err(TestEnvError::NoFreePort)?;
        let (cut, _) = watch::channel(false);
        let counters = Arc::new(Counters::default());
        let accepting = tokio::spawn(accept(listener, target, cut.clone(), Arc::clone(&counters)));
        tracing::debug!(%address, %target, "relay listening");
        Ok(Self {
            address,
            target,
            cut,
            counters,
            accepting,
        })
    }

    /// Where clients connect: `127.0.0.1:<port>`.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// The port clients connect to.
    pub fn port(&self) -> u16 {
        self.address.port()
    }

    /// Where connections are forwarded.
    pub fn target(&self) -> SocketAddr {
        self.target
    }

    /// Closes every live connection and refuses new ones (accepted, then closed without reaching
    /// the target) until [`Self::restore`]. Cutting a cut relay changes nothing.
    pub fn cut(&self) {
        self.cut.send_replace(true);
        tracing::info!(address = %self.address, target = %self.target, "relay cut");
    }

    /// Forwards new connections again. Connections closed by [`Self::cut`] stay closed: clients
    /// reconnect as they would after a real network failure.
    pub fn restore(&self) {
        self.cut.send_replace(false);
        tracing::info!(address = %self.address, target = %self.target, "relay restored");
    }

    /// Whether the relay is cut.
    pub fn is_cut(&self) -> bool {
        *self.cut.borrow()
    }

    /// Connections forwarded to the target so far.
    pub fn forwarded(&self) -> u64 {
        self.counters.forwarded.load(Ordering::Relaxed)
    }

    /// Connections refused (closed on arrival) while cut.
    pub fn refused(&self) -> u64 {
        self.counters.refused.load(Ordering::Relaxed)
    }

    /// Connections being forwarded right now.
    pub fn live(&self) -> usize {
        self.counters.live.load(Ordering::Relaxed)
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        // Aborting the accept loop drops the listener and its JoinSet, which aborts (and so
        // closes) every connection.
        self.accepting.abort();
    }
}

async fn accept(
    listener: TcpListener,
    target: SocketAddr,
    cut: watch::Sender<bool>,
    counters: Arc<Counters>,
) {
    let mut connections = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            // Reap finished connections so the set does not grow without bound.
            Some(_) = connections.join_next() => continue,
        };
        let (client, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                // Per-connection errors (ECONNABORTED, EMFILE, …): keep listening.
                tracing::debug!(%error, "relay accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                continue;
            }
        };
        if *cut.borrow() {
            counters.refused.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(%peer, "relay cut: connection refused");
            drop(client);
            continue;
        }
        connections.spawn(forward(
            client,
            target,
            cut.subscribe(),
            Arc::clone(&counters),
        ));
    }
}

/// Forwards one connection until either side closes it or the relay is cut.
async fn forward(
    mut client: TcpStream,
    target: SocketAddr,
    mut cut: watch::Receiver<bool>,
    counters: Arc<Counters>,
) {
    let mut upstream = tokio::select! {
        connected = TcpStream::connect(target) => match connected {
            Ok(upstream) => upstream,
            Err(error) => {
                tracing::debug!(%target, %error, "relay target unreachable; connection closed");
                return;
            }
        },
        // Cut while connecting: the client's connection is closed with the others.
        _ = cut.wait_for(|cut| *cut) => return,
    };
    let _ = client.set_nodelay(true);
    let _ = upstream.set_nodelay(true);
    counters.forwarded.fetch_add(1, Ordering::Relaxed);
    counters.live.fetch_add(1, Ordering::Relaxed);
    let _live = LiveGuard(Arc::clone(&counters));
    tokio::select! {
        copied = tokio::io::copy_bidirectional(&mut client, &mut upstream) => {
            if let Err(error) = copied {
                tracing::debug!(%target, %error, "relayed connection ended");
            }
        }
        _ = cut.wait_for(|cut| *cut) => {}
    }
    // Both streams are dropped here: closed towards the client and towards the target.
}

/// Counts a connection as live for as long as it is forwarded, however its task ends.
struct LiveGuard(Arc<Counters>);

impl Drop for LiveGuard {
    fn drop(&mut self) {
        self.0.live.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::time::Duration;

    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    use super::*;

    /// An echo server: what the relay forwards to.
    async fn echo() -> SocketAddr {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let (mut reader, mut writer) = stream.split();
                    let _ = tokio::io::copy(&mut reader, &mut writer).await;
                });
            }
        });
        address
    }

    /// Sends `message` and reads as many bytes back, both at once (so a message larger than
    /// the socket buffers cannot deadlock).
    async fn round_trip(stream: &mut TcpStream, message: &[u8]) -> Vec<u8> {
        let (mut reader, mut writer) = stream.split();
        let mut answer = vec![0; message.len()];
        let (written, read) = tokio::time::timeout(Duration::from_secs(5), async {
            tokio::join!(writer.write_all(message), reader.read_exact(&mut answer))
        })
        .await
        .expect("no echo within 5 s");
        written.unwrap();
        read.unwrap();
        answer
    }

    /// The stream is closed by the other end: a read sees end of file or a reset, promptly.
    async fn assert_closed(stream: &mut TcpStream) {
        let mut buffer = [0u8; 16];
        let read = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buffer))
            .await
            .expect("the connection was not closed within 5 s");
        assert!(
            matches!(read, Ok(0) | Err(_)),
            "the connection still delivers data: {read:?}"
        );
    }

    async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
        crate::eventually(what, Duration::from_secs(5), async || check().then_some(())).await;
    }

    #[tokio::test]
    async fn bytes_pass_both_ways_to_the_target() {
        let relay = Relay::start(echo().await).await.unwrap();
        assert_eq!(relay.address().ip(), Ipv4Addr::LOCALHOST);
        let mut stream = TcpStream::connect(relay.address()).await.unwrap();
        assert_eq!(round_trip(&mut stream, b"hello").await, b"hello");
        let big: Vec<u8> = (0..256 * 1024).map(|i| (i % 251) as u8).collect();
        assert_eq!(round_trip(&mut stream, &big).await, big);
        assert_eq!(
            (relay.forwarded(), relay.live(), relay.refused()),
            (1, 1, 0)
        );
        drop(stream);
        eventually("the closed connection no longer live", || relay.live() == 0).await;
    }

    #[tokio::test]
    async fn a_cut_closes_live_connections_refuses_new_ones_until_restored() {
        let relay = Relay::start(echo().await).await.unwrap();
        let mut first = TcpStream::connect(relay.address()).await.unwrap();
        let mut second = TcpStream::connect(relay.address()).await.unwrap();
        assert_eq!(round_trip(&mut first, b"one").await, b"one");
        assert_eq!(round_trip(&mut second, b"two").await, b"two");

        relay.cut();
        assert!(relay.is_cut());
        assert_closed(&mut first).await;
        assert_closed(&mut second).await;
        eventually("no live connection after the cut", || relay.live() == 0).await;
        // Still listening, but nothing gets through.
        let mut during = TcpStream::connect(relay.address()).await.unwrap();
        let _ = during.write_all(b"lost").await;
        assert_closed(&mut during).await;
        assert_eq!(relay.refused(), 1);
        assert_eq!(relay.forwarded(), 2);

        relay.restore();
        assert!(!relay.is_cut());
        let mut after = TcpStream::connect(relay.address()).await.unwrap();
        assert_eq!(round_trip(&mut after, b"back").await, b"back");
        assert_eq!(relay.forwarded(), 3);
    }

    #[tokio::test]
    async fn an_unreachable_target_closes_the_client_connection() {
        // A port nothing listens on: bound, then released.
        let target = {
            let listener = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
            listener.local_addr().unwrap()
        };
        let relay = Relay::start(target).await.unwrap();
        let mut stream = TcpStream::connect(relay.address()).await.unwrap();
        assert_closed(&mut stream).await;
        assert_eq!(relay.forwarded(), 0);
    }

    #[tokio::test]
    async fn dropping_the_relay_closes_its_connections_and_stops_listening() {
        let relay = Relay::start(echo().await).await.unwrap();
        let address = relay.address();
        let mut stream = TcpStream::connect(address).await.unwrap();
        assert_eq!(round_trip(&mut stream, b"ping").await, b"ping");
        drop(relay);
        assert_closed(&mut stream).await;
        // The listener is gone: connecting is refused by the kernel (give the aborted task a
        // moment to be dropped on its worker thread).
        crate::eventually(
            "the relay's port closed",
            Duration::from_secs(5),
            async || TcpStream::connect(address).await.is_err().then_some(()),
        )
        .await;
    }
}
