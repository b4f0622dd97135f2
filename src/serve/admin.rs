//! Reloading the model without downtime: `POST /admin/reload` and SIGHUP.
//!
//! The new checkpoint (the same directory or another) is read and warmed up in the background
//! while the old model keeps serving; then it is swapped in at once. Requests in flight finish
//! on the model they started with (each holds its [`Served`]); the old model's thread ends when
//! the last of them is answered. A checkpoint that fails to load leaves the old model serving,
//! and the reply (or, on SIGHUP, the log) says why. One reload runs at a time.

use std::{path::PathBuf, sync::Arc};

use anyhow::{Context, Result};
use axum::{body::Bytes, extract::rejection::BytesRejection, extract::State, http::StatusCode, Json};
use serde::Deserialize;
use utoipa::ToSchema;

use super::{
    api::{body_error, ApiError, AppState, ErrorBody},
    metrics::Outcome,
    served::{self, Info, Served},
};

/// `POST /admin/reload`'s body (optional: an empty body reloads the directory served now).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReloadRequest {
    /// The checkpoint directory to serve from now on (default: the one served now).
    #[schema(value_type = Option<String>)]
    pub checkpoint: Option<PathBuf>,
}

/// Loads a checkpoint in the background and swaps it in; answers the new `/info` once it
/// serves. On failure the old model keeps serving and the error says why.
#[utoipa::path(
    post, path = "/admin/reload", tag = "admin", request_body(content = Option<ReloadRequest>),
    responses(
        (status = 200, body = Info, description = "the new model serves"),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 413, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "another reload is running"),
        (status = 422, body = ErrorBody, description = "the checkpoint did not load; the old model keeps serving"),
    ),
    security(("api_key" = []))
)]
pub async fn reload(
    State(state): State<Arc<AppState>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Info>, ApiError> {
    let body = body.map_err(body_error)?;
    let request: ReloadRequest = if body.iter().all(u8::is_ascii_whitespace) {
        ReloadRequest::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| {
            let status = if e.is_data() { StatusCode::UNPROCESSABLE_ENTITY } else { StatusCode::BAD_REQUEST };
            ApiError::new(status, "validation", format!("invalid reload request: {e}"))
        })?
    };
    let Ok(_one_at_a_time) = state.reloading.try_lock() else {
        return Err(ApiError::new(StatusCode::CONFLICT, "reload", "a reload is already running"));
    };
    let info = reload_from(&state, request.checkpoint).await.map_err(|e| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "reload",
            format!("{e:#}; the old model keeps serving"),
        )
    })?;
    Ok(Json(info))
}

/// Reloads on every SIGHUP (the directory served now), logging the outcome, while the server
/// runs. The handler is installed before this returns, so a SIGHUP never kills the server. The
/// task holds no strong reference to `state`: at shutdown it does not keep the model alive.
#[cfg(unix)]
pub fn reload_on_sighup(state: &Arc<AppState>) -> Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut hangups = signal(SignalKind::hangup()).context("cannot handle SIGHUP")?;
    let state = Arc::downgrade(state);
    tokio::spawn(async move {
        while hangups.recv().await.is_some() {
            let Some(state) = state.upgrade() else { break };
            let _one_at_a_time = state.reloading.lock().await;
            if let Err(e) = reload_from(&state, None).await {
                tracing::error!("reload on SIGHUP failed: {e:#}; the old model keeps serving");
            }
        }
    });
    Ok(())
}

/// Loads `dir` (default: the directory served now), warms it up and swaps it in; counts the
/// outcome in the metrics. The caller holds [`AppState::reloading`].
async fn reload_from(state: &AppState, dir: Option<PathBuf>) -> Result<Info> {
    let dir = dir.unwrap_or_else(|| state.served().dir.clone());
    let outcome = load(state, dir.clone()).await;
    let result = if outcome.is_ok() { "ok" } else { "error" };
    state.metrics.reloads.get_or_create(&Outcome { result }).inc();
    let served = outcome?;
    let info = served.info.clone();
    state.swap(served);
    tracing::info!(checkpoint = %dir.display(), cell = %info.cell, "reloaded: the new model serves");
    Ok(info)
}

/// `dir`'s checkpoint, read on a blocking thread, started and warmed up.
async fn load(state: &AppState, dir: PathBuf) -> Result<Served> {
    let device = state.device;
    let (read, count, kernel) = (dir.clone(), state.config.worker_count(), state.config.lstm_kernel);
    let replicas = tokio::task::spawn_blocking(move || served::load_replicas(&read, count, device, kernel))
        .await
        .context("the loading thread failed")??;
    let served = Served::start(&dir, replicas, &state.config, device, state.metrics.clone())?;
    served.warm_up().await?;
    Ok(served)
}
