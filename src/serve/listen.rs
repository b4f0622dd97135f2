//! The connection loop: accepts connections and serves each with hyper's HTTP/1 server under a
//! header-read time-out, until shutdown; then stops accepting and waits for every connection
//! to finish what it accepted.
//!
//! axum's own `serve` sets no timer, so a client trickling its headers in (slowloris) would hold
//! a connection forever; here a client whose request headers have not all arrived within
//! `--header-timeout` is disconnected (counted in `lstm_tch_connection_errors`). A body that
//! trickles in is bounded by `--request-timeout` (408), in the router.

use std::{future::Future, sync::Arc, time::Duration};

use anyhow::Result;
use axum::Router;
use hyper::server::conn::http1;
use hyper_util::{
    rt::{TokioIo, TokioTimer},
    server::graceful::GracefulShutdown,
    service::TowerToHyperService,
};
use tokio::net::TcpListener;

use super::metrics::Metrics;

/// Serves `app` on `listener` until `shutdown` resolves, then answers what every open
/// connection has accepted and returns.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    header_timeout: Duration,
    metrics: Arc<Metrics>,
    shutdown: impl Future<Output = ()>,
) -> Result<()> {
    let mut builder = http1::Builder::new();
    builder.timer(TokioTimer::new()).header_read_timeout(header_timeout);
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file descriptors, or a connection reset before it was accepted:
                    // wait a little rather than spin, and go on.
                    tracing::warn!("cannot accept a connection: {e}");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let connection =
            builder.serve_connection(TokioIo::new(stream), TowerToHyperService::new(app.clone()));
        let connection = graceful.watch(connection);
        let metrics = metrics.clone();
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                let reason = if e.is_timeout() { "header_timeout" } else { "other" };
                metrics.connection_errors.get_or_create(&vec![("reason", reason)]).inc();
                tracing::debug!(reason, "connection closed: {e}");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}
