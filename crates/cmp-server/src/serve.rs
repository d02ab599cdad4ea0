//! The accept loop of every listener: TLS when configured, a bound on open connections, a
//! timeout on headers and on idle kept-alive connections, and a graceful stop.
//!
//! `axum::serve` has none of these knobs; hyper's connection builder has them, so the loop is
//! hyper-util's auto (HTTP/1.1 and, over TLS with ALPN, HTTP/2) builder around the router.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tower::ServiceExt;

/// How long in-flight requests may run on after a stop was asked for.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// Limits and transport of one listener.
#[derive(Clone)]
pub struct ServeOptions {
    /// Time to send a request's headers, and the longest idle gap between two requests on a
    /// kept-alive connection (hyper starts the header timer when a connection goes idle).
    pub header_timeout: Duration,
    /// Connections served at once; the next ones wait in the kernel's backlog.
    pub max_connections: usize,
    /// TLS, or plain HTTP when `None`.
    pub tls: Option<tokio_rustls::TlsAcceptor>,
}

/// Serves `router` on `listener` until `stop` turns true, then lets open requests finish.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    options: ServeOptions,
    mut stop: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let builders = Arc::new(Builders::new(options.header_timeout));
    let slots = Arc::new(Semaphore::new(options.max_connections));
    let graceful = GracefulShutdown::new();
    loop {
        let permit = tokio::select! {
            permit = slots.clone().acquire_owned() => match permit {
                Ok(p) => p,
                Err(_) => break,
            },
            () = stopped(&mut stop) => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: wait instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = stopped(&mut stop) => break,
        };
        let _ = stream.set_nodelay(true);
        let connection = serve_connection(
            builders.clone(),
            router.clone(),
            stream,
            peer,
            options.clone(),
            graceful.watcher(),
        );
        tokio::spawn(async move {
            connection.await;
            drop(permit);
        });
    }
    drop(listener);
    if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown()).await.is_err() {
        tracing::warn!("requests still running {DRAIN_TIMEOUT:?} after the stop; closing them");
    }
    Ok(())
}

/// Connection builders for each protocol. The protocol is chosen before any byte is read
/// (HTTP/1.1 in plain HTTP; by ALPN over TLS): hyper-util's sniffing of the first bytes has no
/// timeout, so a client that never sends one would hold its connection forever.
struct Builders {
    http1: Builder<TokioExecutor>,
    http2: Builder<TokioExecutor>,
}

impl Builders {
    fn new(header_timeout: Duration) -> Builders {
        let mut http1 = Builder::new(TokioExecutor::new()).http1_only();
        http1
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(header_timeout)
            .max_buf_size(64 * 1024);
        let mut http2 = Builder::new(TokioExecutor::new()).http2_only();
        // Pings find dead peers; a peer that is alive but idle keeps its (one) connection.
        http2
            .http2()
            .timer(TokioTimer::new())
            .keep_alive_interval(header_timeout)
            .keep_alive_timeout(header_timeout)
            .max_concurrent_streams(64);
        Builders { http1, http2 }
    }
}

/// One connection: the TLS handshake (bounded by the header timeout), then HTTP.
async fn serve_connection(
    builders: Arc<Builders>,
    router: Router,
    stream: TcpStream,
    peer: SocketAddr,
    options: ServeOptions,
    watcher: hyper_util::server::graceful::Watcher,
) {
    let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
        request.extensions_mut().insert(ConnectInfo(peer));
        router.clone().oneshot(request)
    });
    let result = match options.tls {
        None => {
            let connection = builders.http1.serve_connection(TokioIo::new(stream), service);
            watcher.watch(connection.into_owned()).await
        }
        Some(acceptor) => {
            let handshake = tokio::time::timeout(options.header_timeout, acceptor.accept(stream));
            let tls = match handshake.await {
                Ok(Ok(tls)) => tls,
                Ok(Err(e)) => {
                    tracing::debug!(%peer, error = %e, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::debug!(%peer, "TLS handshake timed out");
                    return;
                }
            };
            let builder = match tls.get_ref().1.alpn_protocol() {
                Some(b"h2") => &builders.http2,
                _ => &builders.http1,
            };
            let connection = builder.serve_connection(TokioIo::new(tls), service);
            watcher.watch(connection.into_owned()).await
        }
    };
    if let Err(e) = result {
        tracing::debug!(%peer, error = %e, "connection ended with an error");
    }
}

/// Resolves once a stop was asked for (or the sender is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}
