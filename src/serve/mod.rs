//! Serving: `lstm-tch serve`, a trained checkpoint behind HTTP, with dynamic batching.
//!
//! - [`ServeConfig`]: the flags, as plain values;
//! - `served`: one loaded checkpoint being served (engine, encoder, labels, `/info`);
//! - `engine`: the model threads and their queue: a batch forms whenever the model is free, up
//!   to `--max-batch-size` texts and `--max-batch-tokens` padded tokens; `batch`: which queued
//!   requests join it (the oldest, then the nearest in length); `answer`: what a request gets;
//! - `admission`: the `--max-queue-time` threshold, corrected by the waits measured;
//! - `api`: the shared state, errors as `{"error", "error_type"}`, admission and the small
//!   routes; `predict`: `/predict` and `/explain` (text-embeddings-inference's shapes); `v2`:
//!   the Open Inference Protocol; `admin`: reload (`/admin/reload`, SIGHUP); `openapi`: the
//!   OpenAPI document; `page`: the page at `/`;
//! - `routes`: the router and its layers (limits, time-outs, request ids, CORS, API key,
//!   metrics, logs); `listen`: the connection loop (header time-out, graceful shutdown);
//! - `metrics`: the Prometheus metrics.
//!
//! [`serve`] loads the checkpoint, warms the model up with one forward pass, binds, and serves
//! until SIGTERM or Ctrl-C; then readiness turns 503, no new connection is accepted, every
//! accepted request is answered, and it returns. docs/serving.md has the routes and knobs.

mod admin;
mod admission;
mod answer;
mod api;
mod batch;
mod config;
mod engine;
mod listen;
mod metrics;
mod openapi;
mod page;
mod predict;
mod routes;
mod served;
mod v2;

use std::{
    net::SocketAddr,
    sync::{atomic::Ordering, Arc},
};

use anyhow::{Context, Result};

pub use config::ServeConfig;

use self::{api::AppState, metrics::Metrics, served::Served};

/// Runs `lstm-tch serve` until SIGTERM or Ctrl-C: every accepted request answered, then `Ok`.
/// A bad checkpoint or an address that cannot be bound is an error before anything is served.
pub fn serve(config: &ServeConfig) -> Result<()> {
    config.validate()?;
    init_logs(config);
    // The warm-up runs the largest batch the limits allow; memory freed after it is kept for
    // the batches to come, so the resident set stays flat under load (docs/serving.md).
    crate::runtime::allocator::retain_freed_memory();
    let device = config.runtime.init()?;
    let replicas =
        served::load_replicas(&config.checkpoint, config.worker_count(), device, config.lstm_kernel)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(config.http_threads())
        .thread_name("lstm-tch-http")
        .enable_all()
        .build()
        .context("cannot start the HTTP runtime")?;
    runtime.block_on(async {
        let addr = format!("{}:{}", config.host, config.port);
        let signal = shutdown_signal()?;
        let listener =
            tokio::net::TcpListener::bind(&addr).await.with_context(|| format!("cannot listen on {addr}"))?;
        let local: SocketAddr = listener.local_addr()?;
        let metrics = Arc::new(Metrics::default());
        let served = Served::start(&config.checkpoint, replicas, config, device, metrics.clone())?;
        served.warm_up().await?;
        let state = Arc::new(AppState::new(served, config, device, metrics.clone()));
        #[cfg(unix)]
        admin::reload_on_sighup(&state)?;
        state.ready.store(true, Ordering::SeqCst);
        announce(&state, local);
        let draining = state.clone();
        let shutdown = async move {
            signal.await;
            draining.ready.store(false, Ordering::SeqCst);
            tracing::info!("shutting down: answering the requests in flight");
        };
        let app = routes::router(state.clone());
        let closing = state.clone();
        let listener_closed = move || closing.closing.store(true, Ordering::SeqCst);
        listen::serve(listener, app, config.header_timeout(), metrics, shutdown, listener_closed).await?;
        let model_threads = state.served().take_threads();
        drop(state);
        let _ =
            tokio::task::spawn_blocking(move || model_threads.into_iter().for_each(|t| drop(t.join()))).await;
        tracing::info!("stopped");
        Ok(())
    })
}

/// Logs to stderr at `--log-level`, as text or JSON (`--log-format`).
fn init_logs(config: &ServeConfig) {
    let level: tracing::Level = config.log_level.parse().unwrap_or(tracing::Level::INFO);
    let logs =
        tracing_subscriber::fmt().with_max_level(level).with_writer(std::io::stderr).with_target(false);
    // A subscriber set earlier in this process (a second server in one test) stays.
    let _ = if config.log_format == "json" { logs.json().try_init() } else { logs.try_init() };
}

/// Logs that the server is ready, where, and what it serves.
fn announce(state: &AppState, local: SocketAddr) {
    let info = state.served().info.clone();
    tracing::info!(
        checkpoint = %info.model_id,
        cell = %info.cell,
        labels = %info.labels.join(","),
        device = %info.device,
        http_threads = tokio::runtime::Handle::current().metrics().num_workers(),
        model_threads = state.config.worker_count(),
        "lstm-tch serve: listening on http://{local} (page at /, API at /api-doc/openapi.json)"
    );
    let loopback = local.ip().is_loopback();
    if !loopback && state.config.api_key.is_none() {
        tracing::warn!(
            "no --api-key on a non-loopback address: anyone who can reach it may POST /admin/reload"
        );
    }
}

/// A future resolving on SIGTERM or Ctrl-C (SIGINT). The handlers are installed when this is
/// called, not when the future is first polled, so a signal that comes in between is not lost
/// (nor does it kill the process with the default action).
fn shutdown_signal() -> Result<impl std::future::Future<Output = ()>> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut terminate = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;
        let mut interrupt = signal(SignalKind::interrupt()).context("cannot handle SIGINT")?;
        Ok(async move {
            tokio::select! {
                _ = terminate.recv() => {},
                _ = interrupt.recv() => {},
            }
        })
    }
    #[cfg(not(unix))]
    Ok(async {
        let _ = tokio::signal::ctrl_c().await;
    })
}
