//! The accept loop of every listener: TLS when configured, a bound on open connections, a
//! timeout on headers, on idle connections and on answers the peer does not read, and a
//! graceful stop.
//!
//! `axum::serve` has none of these knobs; hyper's connection builders have most of them, and
//! `drive` adds what hyper lacks: an idle timeout for HTTP/2 and a deadline for closing.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::ConnectInfo;
use axum::http::HeaderValue;
use hyper::body::Incoming;
use hyper::server::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulConnection;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_rustls::server::TlsStream;
use tower::ServiceExt;

/// How long in-flight requests may run on after a stop was asked for.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// The client certificate a TLS peer presented (and the listener's verifier accepted), as a
/// request extension: who it belongs to is for authentication to find out.
#[derive(Debug, Clone)]
pub struct PeerCertificate {
    /// SHA-256 of the leaf's DER, lowercase hex.
    pub fingerprint: Arc<str>,
    /// The leaf's SubjectPublicKeyInfo, DER: what a secret for this peer is sealed to.
    pub public_key: Arc<[u8]>,
}

/// Limits and transport of one listener.
#[derive(Clone)]
pub struct ServeOptions {
    /// Time to send a request's headers; also the longest a connection may sit with no request
    /// running, and the longest a closing connection may take to deliver its last answer.
    pub header_timeout: Duration,
    /// Connections served at once; the next ones wait in the kernel's backlog.
    pub max_connections: usize,
    /// TLS, or plain HTTP when `None`.
    pub tls: Option<tokio_rustls::TlsAcceptor>,
}

/// Serves `router` on `listener` until `stop` turns true, then lets open requests finish for
/// up to `DRAIN_TIMEOUT`.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    options: ServeOptions,
    mut stop: watch::Receiver<bool>,
) {
    let builders = Arc::new(Builders::new(options.header_timeout));
    let slots = Arc::new(Semaphore::new(options.max_connections));
    let mut connections = JoinSet::new();
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
        // Spawned as it is, not awaited in a wrapper: a wrapping future would hold the
        // connection's state twice (once captured, once awaited), and an agent's held poll
        // keeps its connection for up to a minute.
        connections.spawn(serve_connection(
            builders.clone(),
            router.clone(),
            stream,
            peer,
            options.clone(),
            stop.clone(),
            permit,
        ));
        // Reap finished connections so that the set holds only open ones.
        while connections.try_join_next().is_some() {}
    }
    drop(listener);
    // Every connection closes itself within the drain timeout; the margin covers the last
    // answer's delivery, after which a connection is dropped anyway.
    let drained = async { while connections.join_next().await.is_some() {} };
    if tokio::time::timeout(DRAIN_TIMEOUT + options.header_timeout, drained).await.is_err() {
        tracing::warn!("connections still open after the stop; closing them");
        connections.abort_all();
    }
}

/// Connection builders for each protocol. The protocol is chosen before any byte is read
/// (HTTP/1.1 in plain HTTP; by ALPN over TLS): hyper-util's sniffing of the first bytes has no
/// timeout, so a client that never sends one would hold its connection forever.
struct Builders {
    http1: http1::Builder,
    http2: http2::Builder<TokioExecutor>,
}

impl Builders {
    fn new(header_timeout: Duration) -> Builders {
        let mut http1 = http1::Builder::new();
        http1.timer(TokioTimer::new()).header_read_timeout(header_timeout).max_buf_size(64 * 1024);
        let mut http2 = http2::Builder::new(TokioExecutor::new());
        // Pings find dead peers; `drive` closes live ones that stay idle.
        http2
            .timer(TokioTimer::new())
            .keep_alive_interval(header_timeout)
            .keep_alive_timeout(header_timeout)
            .max_concurrent_streams(64);
        Builders { http1, http2 }
    }
}

/// One connection: the TLS handshake (bounded by the header timeout), then HTTP. Its slot
/// (`_permit`) is given back when it ends.
async fn serve_connection(
    builders: Arc<Builders>,
    router: Router,
    stream: TcpStream,
    peer: SocketAddr,
    options: ServeOptions,
    stop: watch::Receiver<bool>,
    _permit: OwnedSemaphorePermit,
) {
    let activity = Arc::new(Activity::new());
    let make_service = |peer_certificate: Option<PeerCertificate>| {
        let activity = activity.clone();
        let router = router.clone();
        hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
            detach_head(&mut request);
            request.extensions_mut().insert(ConnectInfo(peer));
            if let Some(certificate) = &peer_certificate {
                request.extensions_mut().insert(certificate.clone());
            }
            let running = activity.begin();
            let answer = router.clone().oneshot(request);
            async move {
                let answer = answer.await;
                drop(running);
                answer
            }
        })
    };
    let idle = options.header_timeout;
    let result = match options.tls {
        None => {
            let service = make_service(None);
            let connection = builders.http1.serve_connection(TokioIo::new(stream), service);
            drive(Box::pin(connection), &activity, idle, stop).await.map_err(|e| e.to_string())
        }
        Some(acceptor) => {
            // Boxed, and so freed once done: the handshake's state would otherwise be the
            // largest part of every open connection's task.
            let handshake = Box::pin(tokio::time::timeout(idle, acceptor.accept(stream)));
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
            // Moved through, never borrowed here: a local that is borrowed keeps its room in
            // this future until the connection ends, and the TLS state is over a kilobyte.
            let (tls, peer_certificate, h2) = peer_of(tls);
            let service = make_service(peer_certificate);
            let io = TokioIo::new(tls);
            if h2 {
                let connection = builders.http2.serve_connection(io, service);
                drive(Box::pin(connection), &activity, idle, stop).await.map_err(|e| e.to_string())
            } else {
                let connection = builders.http1.serve_connection(io, service);
                drive(Box::pin(connection), &activity, idle, stop).await.map_err(|e| e.to_string())
            }
        }
    };
    if let Err(e) = result {
        tracing::debug!(%peer, error = %e, "connection ended with an error");
    }
}

/// What the TLS session says of its peer: the client certificate it presented, and whether it
/// chose HTTP/2.
fn peer_of(tls: TlsStream<TcpStream>) -> (TlsStream<TcpStream>, Option<PeerCertificate>, bool) {
    let session = tls.get_ref().1;
    let peer_certificate =
        session.peer_certificates().and_then(|c| c.first()).map(|leaf| PeerCertificate {
            fingerprint: cmp_pki::sha256_hex(leaf.as_ref()).into(),
            public_key: cmp_pki::certificate_public_key(leaf.as_ref()).unwrap_or_default().into(),
        });
    let h2 = session.alpn_protocol() == Some(b"h2");
    (tls, peer_certificate, h2)
}

/// Gives the request's URI and header values storage of their own. hyper hands them out as
/// slices of its read buffer, which stays shared while the request lives: when hyper then reads
/// on (to notice a peer that hangs up), it has to take a new 8 KB buffer, and a long poll would
/// hold both for its whole wait. Copying the few hundred bytes of a request head frees the
/// buffer for hyper to reuse (heaptrack, 2,000 held polls: 1.7 read buffers per connection).
fn detach_head<B>(request: &mut hyper::Request<B>) {
    // Origin-form only (what servers are sent): an absolute URI, as to a proxy, stays as it is.
    if request.uri().scheme().is_none()
        && let Some(path) = request.uri().path_and_query()
        && let Ok(owned) =
            hyper::Uri::from_maybe_shared(Bytes::copy_from_slice(path.as_str().as_bytes()))
    {
        *request.uri_mut() = owned;
    }
    for value in request.headers_mut().values_mut() {
        if let Ok(mut owned) = HeaderValue::from_bytes(value.as_bytes()) {
            owned.set_sensitive(value.is_sensitive());
            *value = owned;
        }
    }
}

/// Runs `connection` to its end. It is asked to close (hyper finishes the answers under way and
/// takes no new request) when the listener stops, or when no request has run on it for `idle`:
/// an HTTP/2 peer that answers pings but sends nothing would otherwise hold its slot forever.
/// A closing connection that has not finished in time (the drain timeout after a stop, `idle`
/// otherwise: a peer that does not read its answer) is dropped, which closes the socket.
///
/// The connection comes boxed: its state is then allocated once at its own size, where a
/// connection moved into this future would have its room reserved both in the caller's state
/// and in this one's. With the other boxes of `serve_connection`, each open connection's task
/// went from 13.9 KB to 2.8 KB (heaptrack, 2,000 held polls).
async fn drive<C: GracefulConnection>(
    mut connection: Pin<Box<C>>,
    activity: &Activity,
    idle: Duration,
    mut stop: watch::Receiver<bool>,
) -> Result<(), C::Error> {
    let mut close_by: Option<Instant> = None;
    loop {
        let wake_at = close_by.unwrap_or_else(|| activity.next_check(idle));
        tokio::select! {
            result = connection.as_mut() => return result,
            () = stopped(&mut stop), if close_by.is_none() => {
                close(connection.as_mut(), &mut close_by, DRAIN_TIMEOUT);
            }
            () = tokio::time::sleep_until(wake_at) => {
                if close_by.is_some() {
                    return Ok(());
                }
                if activity.is_idle_for(idle) {
                    close(connection.as_mut(), &mut close_by, idle);
                }
            }
        }
    }
}

fn close<C: GracefulConnection>(
    connection: Pin<&mut C>,
    close_by: &mut Option<Instant>,
    within: Duration,
) {
    connection.graceful_shutdown();
    *close_by = Some(Instant::now() + within);
}

/// The requests running on one connection, and since when it has had none (in milliseconds
/// after the connection opened).
struct Activity {
    opened: Instant,
    running: AtomicUsize,
    idle_since_ms: AtomicU64,
}

impl Activity {
    fn new() -> Activity {
        Activity { opened: Instant::now(), running: AtomicUsize::new(0), idle_since_ms: 0.into() }
    }

    /// Counts a request as running until the returned guard is dropped.
    fn begin(self: &Arc<Self>) -> Running {
        self.running.fetch_add(1, Ordering::SeqCst);
        Running(self.clone())
    }

    fn is_idle_for(&self, idle: Duration) -> bool {
        self.running.load(Ordering::SeqCst) == 0 && self.idle_since().elapsed() >= idle
    }

    /// When to look again: when the idle time runs out, or (a request running) one `idle`
    /// from now, since nothing wakes the connection's task when a request ends.
    fn next_check(&self, idle: Duration) -> Instant {
        if self.running.load(Ordering::SeqCst) > 0 {
            Instant::now() + idle
        } else {
            self.idle_since() + idle
        }
    }

    fn idle_since(&self) -> Instant {
        self.opened + Duration::from_millis(self.idle_since_ms.load(Ordering::SeqCst))
    }
}

struct Running(Arc<Activity>);

impl Drop for Running {
    fn drop(&mut self) {
        let activity = &self.0;
        let now_ms = u64::try_from(activity.opened.elapsed().as_millis()).unwrap_or(u64::MAX);
        activity.idle_since_ms.store(now_ms, Ordering::SeqCst);
        activity.running.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Resolves once a stop was asked for (or the sender is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// Each open connection's task is this future, and an agent's held poll keeps it for up to
    /// a minute, ten thousand at a time. A hyper connection moved in unboxed, or a TLS stream
    /// borrowed in it, made it 6 to 8.6 KB in a release build (PERFORMANCE.md, "Fleet"). In
    /// this test's build it is 736 bytes; the handshake unboxed makes it 1,672, the TLS stream
    /// borrowed 1,960.
    #[tokio::test]
    async fn a_connection_task_stays_small() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (accepted, _client) = tokio::join!(listener.accept(), TcpStream::connect(addr));
        let (stream, peer) = accepted.unwrap();
        let options =
            ServeOptions { header_timeout: Duration::from_secs(1), max_connections: 1, tls: None };
        let permit = Arc::new(Semaphore::new(1)).acquire_owned().await.unwrap();
        let (_stop, stop) = watch::channel(false);
        let builders = Arc::new(Builders::new(options.header_timeout));
        let task = serve_connection(builders, Router::new(), stream, peer, options, stop, permit);
        let size = std::mem::size_of_val(&task);
        assert!(size <= 1024, "a connection's task takes {size} bytes");
    }

    #[test]
    fn a_request_head_is_copied_out_of_the_read_buffer() {
        // As hyper hands a request over: its URI and header values are slices of one buffer.
        let buffer = Bytes::from_static(b"/api/v1/agent/jobs/next?wait_secs=55 trace-me-42");
        let within = |p: *const u8| buffer.as_ptr_range().contains(&p);
        let mut request = hyper::Request::new(());
        *request.uri_mut() = hyper::Uri::from_maybe_shared(buffer.slice(..36)).unwrap();
        let value = HeaderValue::from_maybe_shared(buffer.slice(37..)).unwrap();
        request.headers_mut().insert("x-request-id", value);
        assert!(within(request.uri().path().as_ptr()));

        detach_head(&mut request);
        assert_eq!(request.uri(), "/api/v1/agent/jobs/next?wait_secs=55");
        assert_eq!(request.uri().query(), Some("wait_secs=55"));
        assert_eq!(request.headers()["x-request-id"], "trace-me-42");
        assert!(!within(request.uri().path().as_ptr()));
        assert!(!within(request.headers()["x-request-id"].as_bytes().as_ptr()));

        // An absolute URI (as a proxy is sent) is left as it is.
        let absolute = Bytes::from_static(b"http://example.test/healthz");
        let mut request = hyper::Request::new(());
        *request.uri_mut() = hyper::Uri::from_maybe_shared(absolute.clone()).unwrap();
        detach_head(&mut request);
        assert_eq!(request.uri(), "http://example.test/healthz");
    }
}
