//! TCP settings for the local stack's own HTTP hops (the emulators' gateway, the fault
//! proxy, the Lambda Runtime API host, the local server).
//!
//! Nagle's algorithm is off on every socket they open or accept. A hop that forwards a body
//! as it arrives writes it in pieces; with Nagle on, the last piece waits for the peer's
//! ACK of the first, and on loopback (one 64 KB segment, so no "every second segment" ACK)
//! the peer delays that ACK by ~40 ms. Every request over 16 KB (a shard log item of a
//! batch of 1,000) took 44 ms instead of 1 ms. The SDKs' own clients already set
//! `TCP_NODELAY`, as AWS' endpoints do.

use axum::serve::{ListenerExt as _, TapIo};
use hyper_util::client::legacy::connect::HttpConnector;
use tokio::net::{TcpListener, TcpStream};

/// A connector for forwarding to an upstream, with `TCP_NODELAY`.
pub(crate) fn connector() -> HttpConnector {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    connector
}

/// Sets `TCP_NODELAY` on a listener that is handed to a server we cannot tap (the DynamoDB
/// emulator's): Linux copies it to every connection the listener accepts.
pub(crate) fn nodelay_on_accepted(listener: &TcpListener) {
    if let Err(e) = socket2::SockRef::from(listener).set_tcp_nodelay(true) {
        tracing::debug!(error = %e, "cannot set TCP_NODELAY");
    }
}

/// `listener`, setting `TCP_NODELAY` on each accepted connection.
pub(crate) fn nodelay(listener: TcpListener) -> TapIo<TcpListener, fn(&mut TcpStream)> {
    listener.tap_io(set_nodelay as fn(&mut TcpStream))
}

fn set_nodelay(tcp: &mut TcpStream) {
    // Only latency rides on it; a socket that refuses still works.
    if let Err(e) = tcp.set_nodelay(true) {
        tracing::debug!(error = %e, "cannot set TCP_NODELAY");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::serve::Listener as _;
    use tower::Service as _;

    async fn listener() -> TcpListener {
        TcpListener::bind("127.0.0.1:0").await.expect("bind")
    }

    #[tokio::test]
    async fn a_tapped_listener_accepts_with_nodelay() {
        let inner = listener().await;
        let addr = inner.local_addr().expect("addr");
        let mut tapped = nodelay(inner);
        let _client = TcpStream::connect(addr).await.expect("connect");
        let (accepted, _) = tapped.accept().await;
        assert!(accepted.nodelay().expect("read TCP_NODELAY"));
    }

    #[tokio::test]
    async fn a_listener_handed_on_gives_its_connections_nodelay() {
        let inner = listener().await;
        let addr = inner.local_addr().expect("addr");
        nodelay_on_accepted(&inner);
        let _client = TcpStream::connect(addr).await.expect("connect");
        let (accepted, _) = inner.accept().await.expect("accept");
        assert!(accepted.nodelay().expect("read TCP_NODELAY"));
    }

    #[tokio::test]
    async fn the_forwarding_connector_connects_with_nodelay() {
        let upstream = listener().await;
        let uri = format!("http://{}", upstream.local_addr().expect("addr"))
            .parse()
            .expect("uri");
        let stream = connector().call(uri).await.expect("connect");
        assert!(stream.inner().nodelay().expect("read TCP_NODELAY"));
    }
}
