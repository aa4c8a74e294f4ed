//! The accept loop: every connection held to the limits of `server` in `config.json`, which
//! `axum::serve` has no place for.
//!
//! - at most `max_connections` at once (the others wait in the listen backlog), below the
//!   open-files limit, whose soft value is raised at start where the hard one allows;
//! - a request's head must arrive within `header_timeout_seconds` (hyper's header read timer,
//!   which also runs while a kept-alive connection waits for its next request, so it is the
//!   keep-alive limit too);
//! - a connection with no handler running on which nothing was read or written for
//!   `idle_timeout_seconds` (a client that stopped reading its response, say) is closed:
//!   gracefully first, at once if it still does not move for as long again. A request being
//!   recognized is not idle, however long it takes (`request_timeout_seconds` bounds it);
//! - each request body is held to [`Pace`] (`body_timeout_seconds`,
//!   `min_body_bytes_per_second`);
//! - on shutdown every connection finishes the request in progress and closes.
//!
//! hyper's HTTP/1 connection and hyper-util's Tokio glue do the protocol; this file only wires
//! them to the limits.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tokio::time::Instant;
use tower::Service;

use crate::body::{Pace, PacedBody};
use crate::config::ServerConfig;

/// The limits of one server's connections, from `server` in `config.json`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub(crate) max_connections: usize,
    pub(crate) header_timeout: Duration,
    pub(crate) idle_timeout: Duration,
    pub(crate) pace: Pace,
}

impl Limits {
    pub(crate) fn of(config: &ServerConfig) -> Limits {
        Limits {
            max_connections: config.max_connections,
            header_timeout: Duration::from_secs_f64(config.header_timeout_seconds),
            idle_timeout: Duration::from_secs_f64(config.idle_timeout_seconds),
            pace: Pace {
                total: Duration::from_secs_f64(config.body_timeout_seconds),
                min_bytes_per_second: config.min_body_bytes_per_second,
            },
        }
    }
}

/// Raises the soft open-files limit towards what `max_connections` needs (each connection
/// is a descriptor; the model, logs and storage need a few more), as far as the hard limit
/// allows, and returns how many connections fit under the limit in force.
pub(crate) fn fit_open_files(max_connections: usize) -> usize {
    const RESERVED: u64 = 64;
    let wanted = max_connections as u64 + RESERVED;
    match rlimit::increase_nofile_limit(wanted) {
        Ok(limit) => {
            let fits = limit.saturating_sub(RESERVED).max(1) as usize;
            if fits < max_connections {
                log::warn!(
                    "the open-files limit is {limit}: at most {fits} connections at once \
                     (server.max_connections is {max_connections}; raise the hard limit, \
                     `ulimit -Hn`, to allow more)"
                );
            }
            fits.min(max_connections)
        }
        // Not a Unix, or not allowed: keep the configured number.
        Err(_) => max_connections,
    }
}

/// Accepts connections until `shutdown` completes, then lets every connection finish the
/// request in progress and returns once all are closed.
pub(crate) async fn accept_loop(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) {
    let max_connections = fit_open_files(limits.max_connections);
    let slots = Arc::new(Semaphore::new(max_connections));
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            permit = Arc::clone(&slots).acquire_owned() => permit.expect("never closed"),
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of descriptors or a connection reset before it was taken: wait a
                    // little instead of spinning.
                    log::debug!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let stop = stop_rx.clone();
        tokio::spawn(async move {
            serve_connection(stream, peer, app, limits, stop).await;
            drop(permit);
        });
    }
    drop(listener);
    let _ = stop_tx.send(true);
    // Every connection holds a slot until it is closed: all slots back means all closed.
    let _ = slots.acquire_many(max_connections as u32).await;
}

/// One connection: HTTP/1.1 with upgrades (WebSockets), the header timer, the idle watchdog
/// and each body paced.
async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    app: Router,
    limits: Limits,
    mut stop: watch::Receiver<bool>,
) {
    let activity = Arc::new(Activity::new());
    let io = TokioIo::new(Watched {
        inner: stream,
        activity: Arc::clone(&activity),
    });
    let handlers = Arc::clone(&activity);
    let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
        let mut request = request.map(|body| Body::new(PacedBody::new(body, limits.pace)));
        request.extensions_mut().insert(ConnectInfo(peer));
        let mut app = app.clone();
        let running = Running::start(Arc::clone(&handlers));
        async move {
            let response = app.call(request).await;
            drop(running);
            response
        }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .keep_alive(true);
    let connection = builder.serve_connection(io, service).with_upgrades();
    let mut connection = std::pin::pin!(connection);
    let mut closing = false;
    let mut stopping = false;
    loop {
        let idle_until = activity.last() + limits.idle_timeout;
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(e) = result {
                    log::debug!("connection from {peer}: {e}");
                }
                return;
            }
            () = tokio::time::sleep_until(idle_until) => {
                if activity.handlers.load(Ordering::Relaxed) > 0 {
                    // A handler at work is activity (a recognition may take minutes).
                    activity.touch();
                    continue;
                }
                let idle = activity.last() + limits.idle_timeout <= Instant::now();
                if idle && closing {
                    // Asked to close and still nothing moves: a peer that does not read.
                    log::debug!("connection from {peer}: closed, idle");
                    return;
                }
                if idle {
                    // Close once the response in progress, if any, is done; its clock starts
                    // again.
                    closing = true;
                    activity.touch();
                    connection.as_mut().graceful_shutdown();
                }
            }
            changed = stop.changed(), if !stopping => {
                stopping = true;
                if (changed.is_err() || *stop.borrow()) && !closing {
                    closing = true;
                    connection.as_mut().graceful_shutdown();
                }
            }
        }
    }
}

/// When bytes last moved on a connection, in milliseconds since it was opened, and how many
/// of its requests a handler is working on.
struct Activity {
    opened: Instant,
    last_millis: AtomicU64,
    handlers: AtomicUsize,
}

/// A handler at work on one request of a connection (counted until dropped, also when the
/// request is abandoned).
struct Running(Arc<Activity>);

impl Running {
    fn start(activity: Arc<Activity>) -> Running {
        activity.handlers.fetch_add(1, Ordering::Relaxed);
        Running(activity)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.0.handlers.fetch_sub(1, Ordering::Relaxed);
        self.0.touch();
    }
}

impl Activity {
    fn new() -> Self {
        Activity {
            opened: Instant::now(),
            last_millis: AtomicU64::new(0),
            handlers: AtomicUsize::new(0),
        }
    }

    fn touch(&self) {
        let now = self.opened.elapsed().as_millis() as u64;
        self.last_millis.fetch_max(now, Ordering::Relaxed);
    }

    fn last(&self) -> Instant {
        self.opened + Duration::from_millis(self.last_millis.load(Ordering::Relaxed))
    }
}

/// A socket that records when bytes moved (for the idle watchdog).
struct Watched {
    inner: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let result = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.touch();
        }
        result
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(result, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        result
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(result, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        result
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
