//! The connection loop: accepts connections and serves each with hyper's HTTP/1 server under a
//! header-read time-out, until shutdown; then stops accepting and lets every connection finish
//! what it accepted.
//!
//! axum's own `serve` sets no timer, so a client trickling its headers in (slowloris) would hold
//! a connection forever; here a client whose request headers have not all arrived within
//! `--header-timeout` is disconnected (counted in `lstm_tch_connection_errors`). A body that
//! trickles in is bounded by `--request-timeout` (408), in the router.
//!
//! Shutdown loses no request a client could think accepted:
//! 1. connections the kernel completed before the signal (its accept queue) are accepted and
//!    served, not reset; then the listener closes: a new client is refused at once;
//! 2. only then (`listener_closed`) do answers carry `Connection: close` (the router adds it),
//!    so a client told to reconnect finds the port closed rather than a listener about to
//!    close; for [`DRAIN_GRACE`], open connections may send more requests, each answered so,
//!    and a client is told before its connection goes rather than having a request in flight
//!    as it closes;
//! 3. then the connections still idle are closed, those with a request finish it, and this
//!    returns.

use std::{
    future::Future,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::Duration,
};

use anyhow::Result;
use axum::Router;
use hyper::server::conn::http1;
use hyper_util::{
    rt::{TokioIo, TokioTimer},
    server::graceful::GracefulShutdown,
    service::TowerToHyperService,
};
use tokio::net::{TcpListener, TcpStream};

use super::metrics::{Metrics, Reason};

/// After shutdown, how long open connections may go on sending requests before the idle ones
/// are closed.
pub const DRAIN_GRACE: Duration = Duration::from_secs(1);

/// The connections being served, and how to serve one more.
struct Connections {
    builder: http1::Builder,
    app: Router,
    graceful: GracefulShutdown,
    open: Arc<AtomicUsize>,
    metrics: Arc<Metrics>,
}

impl Connections {
    /// Serves `stream` on a task of its own.
    fn serve(&self, stream: TcpStream) {
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(self.app.clone());
        let connection = self.graceful.watch(self.builder.serve_connection(TokioIo::new(stream), service));
        let (open, metrics) = (self.open.clone(), self.metrics.clone());
        open.fetch_add(1, Ordering::SeqCst);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                let reason = if e.is_timeout() { "header_timeout" } else { "other" };
                metrics.connection_errors.get_or_create(&Reason { reason }).inc();
                tracing::debug!(reason, "connection closed: {e}");
            }
            open.fetch_sub(1, Ordering::SeqCst);
        });
    }

    /// Waits until every connection has closed by itself, for at most `grace`.
    async fn wait_closed(&self, grace: Duration) {
        let _ = tokio::time::timeout(grace, async {
            while self.open.load(Ordering::SeqCst) > 0 {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await;
    }
}

/// Serves `app` on `listener` until `shutdown` resolves, then drains as the module says
/// (calling `listener_closed` once the listener is closed) and returns.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    header_timeout: Duration,
    metrics: Arc<Metrics>,
    shutdown: impl Future<Output = ()>,
    listener_closed: impl FnOnce(),
) -> Result<()> {
    let mut builder = http1::Builder::new();
    builder.timer(TokioTimer::new()).header_read_timeout(header_timeout);
    let connections =
        Connections { builder, app, graceful: GracefulShutdown::new(), open: Arc::default(), metrics };
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => connections.serve(stream),
                Err(e) => {
                    // Out of file descriptors, or a connection reset before it was accepted:
                    // wait a little rather than spin, and go on.
                    tracing::warn!("cannot accept a connection: {e}");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            },
            () = &mut shutdown => break,
        }
    }
    // The accept queue: `timeout` polls `accept` once before its zero deadline.
    while let Ok(Ok((stream, _))) = tokio::time::timeout(Duration::ZERO, listener.accept()).await {
        connections.serve(stream);
    }
    drop(listener);
    listener_closed();
    connections.wait_closed(DRAIN_GRACE).await;
    connections.graceful.shutdown().await;
    Ok(())
}
