//! The accept loop: HTTP/1.1 over TCP with the limits a listener on an open network needs.
//!
//! - **Header timeout.** A request's head must arrive within `header_timeout` of its first byte
//!   (of the connection's opening, for the first request): a client that trickles headers, or
//!   connects and says nothing, is disconnected.
//! - **Idle timeout.** A keep-alive connection with no request and no traffic for
//!   `idle_timeout` is closed; so is one whose client stopped reading its response.
//! - **Connection limit.** At most `max_connections` at once, kept below the process's file
//!   descriptor limit. A connection beyond it is answered `503` and closed at once rather than
//!   left to wait, so the listener never stops answering.
//! - **Accept errors** (out of descriptors, …) back off instead of spinning.
//!
//! hyper's own header timeout also runs while a keep-alive connection waits for its next
//! request, which would make the idle timeout as short as the header timeout. So both are kept
//! here: the connection's reads and writes, and the requests in flight, are watched, and the
//! connection is dropped when one of the two runs out. How long a request may take once it has
//! arrived is the router's request timeout.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::Request;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tower::ServiceExt;

/// How the listener protects itself.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    pub header_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_connections: usize,
}

/// What a connection beyond the limit gets before it is closed.
const OVER_CAPACITY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n\
Content-Length: 65\r\nConnection: close\r\nRetry-After: 1\r\n\r\n\
{\"error\":\"the server has too many connections open; retry later\"}";

/// Serves `app` on `listener` until `shutdown` completes, then gives the connections `grace` to
/// finish what they are doing.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
    grace: Duration,
) -> io::Result<()> {
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let (stopping_tx, stopping) = watch::channel(false);
    let mut connections = JoinSet::new();
    let mut backoff = Backoff::default();
    tokio::pin!(shutdown);
    loop {
        let (stream, _peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => {
                    backoff.reset();
                    accepted
                }
                Err(error) => {
                    backoff.wait(&error).await;
                    continue;
                }
            },
            // Reap finished connections as we go so the set does not grow without bound.
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
        };
        let _ = stream.set_nodelay(true);
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            connections.spawn(refuse(stream));
            continue;
        };
        let (app, stopping) = (app.clone(), stopping.clone());
        connections.spawn(async move {
            serve_connection(stream, app, limits, stopping).await;
            drop(permit);
        });
    }
    tracing::info!("shutting down: finishing in-flight requests");
    let _ = stopping_tx.send(true);
    drop(listener);
    let drained =
        tokio::time::timeout(grace, async { while connections.join_next().await.is_some() {} }).await;
    if drained.is_err() {
        tracing::warn!(?grace, "grace period over; dropping unfinished requests");
        connections.shutdown().await;
    }
    Ok(())
}

/// Answers a connection over the limit without handling its request, and closes it.
async fn refuse(mut stream: TcpStream) {
    use tokio::io::AsyncReadExt;
    tracing::warn!("connection limit reached; refusing a connection");
    let _ = tokio::time::timeout(Duration::from_secs(1), stream.write_all(OVER_CAPACITY)).await;
    let _ = stream.shutdown().await;
    // Closing a socket with unread request bytes would reset it, and the client could lose the
    // answer: read (and drop) what it sent until it closes too, for half a second at most.
    let mut sink = [0u8; 1024];
    let _ = tokio::time::timeout(Duration::from_millis(500), async {
        while matches!(stream.read(&mut sink).await, Ok(n) if n > 0) {}
    })
    .await;
}

async fn serve_connection(
    stream: TcpStream,
    app: Router,
    limits: ConnectionLimits,
    mut stopping: watch::Receiver<bool>,
) {
    let activity = Arc::new(Activity::new());
    let io = TokioIo::new(Watched { inner: stream, activity: activity.clone() });
    let service = hyper::service::service_fn({
        let activity = activity.clone();
        move |request: Request<hyper::body::Incoming>| {
            let guard = activity.request_started();
            let app = app.clone();
            async move {
                let response = app.oneshot(request.map(axum::body::Body::new)).await;
                drop(guard);
                response
            }
        }
    });
    let connection = hyper::server::conn::http1::Builder::new().serve_connection(io, service);
    tokio::pin!(connection);
    // Checked eight times a timeout: a connection is closed at most an eighth late.
    let tick = (limits.header_timeout.min(limits.idle_timeout) / 8).max(Duration::from_millis(25));
    let mut ticks = tokio::time::interval(tick);
    let mut shutting_down = *stopping.borrow();
    if shutting_down {
        connection.as_mut().graceful_shutdown();
    }
    loop {
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(error) = result {
                    tracing::debug!(%error, "connection ended with an error");
                }
                return;
            }
            _ = ticks.tick() => {
                if let Some(why) = activity.expired(limits) {
                    tracing::debug!(why, "closing a connection");
                    return;
                }
            }
            changed = stopping.changed(), if !shutting_down => {
                if changed.is_ok() {
                    shutting_down = true;
                    connection.as_mut().graceful_shutdown();
                }
            }
        }
    }
}

/// What a connection has been doing, in milliseconds since it was opened.
struct Activity {
    opened: Instant,
    /// The last read or write that moved bytes.
    last_io: AtomicU64,
    /// When the head of the next request began (its first byte, or the opening of the
    /// connection for the first request); `u64::MAX` while no request is awaited with bytes
    /// on the way.
    head_since: AtomicU64,
    in_flight: AtomicUsize,
}

const NONE: u64 = u64::MAX;

impl Activity {
    fn new() -> Self {
        Self {
            opened: Instant::now(),
            last_io: AtomicU64::new(0),
            head_since: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
        }
    }

    fn now(&self) -> u64 {
        self.opened.elapsed().as_millis() as u64
    }

    fn moved_bytes(&self, read: bool) {
        self.moved_bytes_at(self.now(), read);
    }

    fn moved_bytes_at(&self, now: u64, read: bool) {
        self.last_io.store(now, Ordering::Relaxed);
        if read && self.in_flight.load(Ordering::Acquire) == 0 {
            // The first byte of a request head starts its clock; later bytes do not reset it.
            let _ = self.head_since.compare_exchange(NONE, now, Ordering::AcqRel, Ordering::Relaxed);
        }
    }

    fn request_started(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.head_since.store(NONE, Ordering::Release);
        InFlight(self.clone())
    }

    /// Why the connection should be closed now, if it should.
    fn expired(&self, limits: ConnectionLimits) -> Option<&'static str> {
        self.expired_at(self.now(), limits)
    }

    fn expired_at(&self, now: u64, limits: ConnectionLimits) -> Option<&'static str> {
        if self.in_flight.load(Ordering::Acquire) > 0 {
            // The handler is at work; the router's request timeout bounds it.
            return None;
        }
        let head_since = self.head_since.load(Ordering::Acquire);
        if head_since != NONE && now.saturating_sub(head_since) > limits.header_timeout.as_millis() as u64 {
            return Some("the request head did not arrive within the header timeout");
        }
        if now.saturating_sub(self.last_io.load(Ordering::Relaxed)) > limits.idle_timeout.as_millis() as u64 {
            return Some("idle");
        }
        None
    }
}

/// A request being handled; dropping it (answered or cancelled) ends it.
struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let activity = &self.0;
        activity.last_io.store(activity.now(), Ordering::Relaxed);
        activity.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The TCP stream, reporting every read and write that moves bytes.
struct Watched {
    inner: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.moved_bytes(true);
        }
        polled
    }
}

impl AsyncWrite for Watched {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.moved_bytes(false);
        }
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.moved_bytes(false);
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Waits after an accept error: 10 ms, doubling up to 1 s while errors continue. Out of file
/// descriptors, accepting again at once would fail again at once.
#[derive(Default)]
struct Backoff {
    delay: Option<Duration>,
    logged: Option<Instant>,
}

impl Backoff {
    async fn wait(&mut self, error: &io::Error) {
        let delay = self.delay.map_or(Duration::from_millis(10), |d| (d * 2).min(Duration::from_secs(1)));
        self.delay = Some(delay);
        if self.logged.is_none_or(|at| at.elapsed() >= Duration::from_secs(1)) {
            tracing::error!(%error, retry_in = ?delay, "accept error");
            self.logged = Some(Instant::now());
        }
        tokio::time::sleep(delay).await;
    }

    fn reset(&mut self) {
        self.delay = None;
    }
}

/// The most connections this process can hold: `wanted`, or fewer when the file descriptor
/// limit leaves less room (`reserve` descriptors are kept for the database, plugins and logs).
pub fn connection_budget(wanted: usize, reserve: usize) -> usize {
    match rustix::process::getrlimit(rustix::process::Resource::Nofile).current {
        Some(limit) => wanted.min((limit as usize).saturating_sub(reserve).max(1)),
        None => wanted,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: ConnectionLimits = ConnectionLimits {
        header_timeout: Duration::from_millis(100),
        idle_timeout: Duration::from_millis(1000),
        max_connections: 1,
    };

    #[test]
    fn a_new_connection_must_send_its_head_within_the_header_timeout() {
        let activity = Activity::new();
        assert_eq!(activity.expired_at(100, LIMITS), None);
        activity.moved_bytes_at(50, true); // trickling bytes do not restart the clock
        assert!(activity.expired_at(101, LIMITS).unwrap().contains("header"));
    }

    #[test]
    fn an_idle_keep_alive_connection_gets_the_idle_timeout_and_a_new_head_the_header_timeout() {
        let activity = Arc::new(Activity::new());
        drop(activity.request_started());
        let answered = activity.last_io.load(Ordering::Relaxed);
        assert_eq!(activity.expired_at(answered + 500, LIMITS), None, "idle, but not for long");
        assert_eq!(activity.expired_at(answered + 1001, LIMITS), Some("idle"));
        activity.moved_bytes_at(answered + 500, true);
        assert_eq!(activity.expired_at(answered + 600, LIMITS), None);
        assert!(activity.expired_at(answered + 601, LIMITS).unwrap().contains("header"));
    }

    #[test]
    fn a_request_in_flight_is_never_expired_here() {
        let activity = Arc::new(Activity::new());
        let request = activity.request_started();
        assert_eq!(activity.expired_at(60_000, LIMITS), None);
        drop(request);
        assert!(activity.expired_at(60_000, LIMITS).is_some());
    }

    #[test]
    fn the_refusal_is_a_complete_http_response() {
        let text = std::str::from_utf8(OVER_CAPACITY).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 503 "));
        assert!(head.contains(&format!("Content-Length: {}", body.len())), "{head}");
        serde_json::from_str::<serde_json::Value>(body).unwrap();
    }
}
