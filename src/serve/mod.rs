//! Serving: `lstm-tch serve`, a trained checkpoint behind HTTP, with dynamic batching.
//!
//! - [`ServeConfig`]: the flags, as plain values;
//! - `engine`: the model thread and its queue: a batch forms whenever the model is free, up to
//!   `--max-batch-size` texts and `--max-batch-tokens` padded tokens;
//! - `api`: the routes' bodies and handlers (text-embeddings-inference's shapes), errors as
//!   `{"error", "error_type"}`;
//! - `routes`: the router and its layers (limits, time-outs, request ids, CORS, API key,
//!   metrics);
//! - `metrics`: the Prometheus metrics.
//!
//! [`serve`] loads the checkpoint, warms the model up with one forward pass, binds, and serves
//! until SIGTERM or Ctrl-C; then readiness turns 503, no new connection is accepted, every
//! accepted request is answered, and it returns. docs/serving.md has the routes and knobs.

mod api;
mod config;
mod engine;
mod metrics;
mod routes;

use std::{
    net::SocketAddr,
    sync::{atomic::Ordering, Arc},
    time::Instant,
};

use anyhow::{Context, Result};
use tokio::sync::Semaphore;

pub use config::ServeConfig;

use self::{
    api::{AppState, Info},
    engine::{BatchLimits, Engine},
    metrics::Metrics,
};
use crate::{checkpoint, infer::TextEncoder};

/// Runs `lstm-tch serve` until SIGTERM or Ctrl-C: every accepted request answered, then `Ok`.
/// A bad checkpoint or an address that cannot be bound is an error before anything is served.
pub fn serve(config: &ServeConfig) -> Result<()> {
    config.validate()?;
    let device = config.runtime.init()?;
    let ckpt = checkpoint::load(&config.checkpoint, device)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
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
        let (state, model_thread) = start(config, ckpt, device)?;
        warm_up(&state).await?;
        state.ready.store(true, Ordering::SeqCst);
        eprintln!(
            "lstm-tch serve: listening on http://{local} (checkpoint {}, {} cell, {} labels)",
            config.checkpoint.display(),
            state.info.cell,
            state.labels.len()
        );
        let app = routes::router(state.clone());
        let draining = state.clone();
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                signal.await;
                draining.ready.store(false, Ordering::SeqCst);
                eprintln!("lstm-tch serve: shutting down: answering the requests in flight");
            })
            .await
            .context("the HTTP server failed")?;
        drop(state);
        let _ = tokio::task::spawn_blocking(move || model_thread.join()).await;
        eprintln!("lstm-tch serve: stopped");
        Ok(())
    })
}

/// The handlers' shared state, with the engine started on `ckpt`'s model (the thread it runs
/// on is returned, to be joined once every handle is dropped).
fn start(
    config: &ServeConfig,
    ckpt: checkpoint::Checkpoint,
    device: tch::Device,
) -> Result<(Arc<AppState>, std::thread::JoinHandle<()>)> {
    let metrics = Arc::new(Metrics::default());
    let info = info(config, &ckpt);
    let (encoder, labels) = (TextEncoder::of(&ckpt), ckpt.labels.names().to_vec());
    let limits = BatchLimits {
        max_texts: config.max_batch_size,
        max_tokens: config.max_batch_tokens,
        max_delay: config.batch_delay(),
    };
    let (engine, model_thread) = Engine::start(ckpt.model, device, limits, metrics.clone())?;
    let state = AppState {
        engine,
        encoder,
        labels,
        info,
        config: config.clone(),
        permits: Arc::new(Semaphore::new(config.max_concurrent_requests)),
        metrics,
        ready: false.into(),
    };
    Ok((Arc::new(state), model_thread))
}

/// One forward pass before the server is ready, so the first request does not pay libtorch's
/// first-call costs. Not bound by `--request-timeout` (it may wait out `--max-batch-delay`).
async fn warm_up(state: &AppState) -> Result<()> {
    let ids = vec![state.encoder.encode("warm up")];
    let deadline = Instant::now() + std::time::Duration::from_secs(600);
    state.engine.submit(ids, deadline).await.map_err(|e| anyhow::anyhow!("warm-up failed: {e}"))?;
    Ok(())
}

/// `GET /info`'s body for `ckpt` served as `config` says.
fn info(config: &ServeConfig, ckpt: &checkpoint::Checkpoint) -> Info {
    Info {
        model_id: config.checkpoint.display().to_string(),
        cell: ckpt.config.model.architecture.cell.to_string(),
        labels: ckpt.labels.names().to_vec(),
        tokenizer: serde_json::to_value(ckpt.config.tokenizer).unwrap_or_default(),
        max_input_length: ckpt.config.max_len,
        max_batch_size: config.max_batch_size,
        max_batch_tokens: config.max_batch_tokens,
        max_concurrent_requests: config.max_concurrent_requests,
        max_client_batch_size: config.max_client_batch_size,
        payload_limit: config.payload_limit,
        version: env!("CARGO_PKG_VERSION"),
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
