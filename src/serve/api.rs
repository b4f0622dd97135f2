//! What the handlers share: the state, the errors (`{"error", "error_type"}`), the JSON
//! extractor, admission (the concurrency permit and the text-count limits), the timing headers;
//! and the small routes (`/info`, the health checks, `/metrics`, the 404).

use std::{
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, RwLock,
    },
    time::Duration,
};

use axum::{
    extract::{
        rejection::{BytesRejection, JsonRejection},
        FromRequest, FromRequestParts, Path, Request, State,
    },
    http::{header, request::Parts, HeaderName, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    Json,
};
use serde::Serialize;
use tch::Device;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::{
    answer::EngineError,
    metrics::{Metrics, Reason},
    served::{Info, Served},
    ServeConfig,
};

/// What the handlers share.
pub struct AppState {
    /// The checkpoint being served; a reload swaps it.
    served: RwLock<Arc<Served>>,
    /// The server's limits and knobs.
    pub config: ServeConfig,
    /// The device models run on.
    pub device: Device,
    /// One permit per request in the system ([`ServeConfig::max_concurrent_requests`]).
    pub permits: Arc<Semaphore>,
    /// The metrics.
    pub metrics: Arc<Metrics>,
    /// Ready for traffic: the model is warm and the server is not draining.
    pub ready: AtomicBool,
    /// Shutting down with the listener closed: every answer says `Connection: close`.
    pub closing: AtomicBool,
    /// Held while a reload runs (one at a time).
    pub reloading: tokio::sync::Mutex<()>,
}

impl AppState {
    /// The state of a server serving `served` as `config` says (not ready yet).
    pub fn new(served: Served, config: &ServeConfig, device: Device, metrics: Arc<Metrics>) -> Self {
        Self {
            served: RwLock::new(Arc::new(served)),
            config: config.clone(),
            device,
            permits: Arc::new(Semaphore::new(config.max_concurrent_requests)),
            metrics,
            ready: false.into(),
            closing: false.into(),
            reloading: tokio::sync::Mutex::new(()),
        }
    }

    /// The checkpoint served now: a request keeps this one to its end, whatever is reloaded.
    pub fn served(&self) -> Arc<Served> {
        self.served.read().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
    }

    /// Serves `next` from now on; requests in flight finish on the model they started with.
    pub fn swap(&self, next: Served) {
        *self.served.write().unwrap_or_else(|poisoned| poisoned.into_inner()) = Arc::new(next);
    }

    /// Admits a request of `texts` texts for `served`'s model: a permit of
    /// `--max-concurrent-requests` and a backlog within `--max-queue-time` (429 at once
    /// otherwise), at least one text (400), at most `--max-client-batch-size` (413).
    pub fn admit(&self, served: &Served, texts: usize) -> Result<OwnedSemaphorePermit, ApiError> {
        let overloaded = |reason: &'static str, message: String| {
            self.metrics.refused.get_or_create(&Reason { reason }).inc();
            ApiError::new(StatusCode::TOO_MANY_REQUESTS, "overloaded", message)
        };
        let Ok(permit) = self.permits.clone().try_acquire_owned() else {
            let limit = self.config.max_concurrent_requests;
            return Err(overloaded(
                "concurrency",
                format!("too many requests in flight (--max-concurrent-requests {limit}); retry later"),
            ));
        };
        let backlog = served.engine.backlog();
        if let Err(threshold) = served.engine.admits(backlog) {
            let message = format!(
                "the model is {:.1} ms behind, over the {:.1} ms it admits now (--max-queue-time {} ms); retry later",
                backlog.as_secs_f64() * 1e3,
                threshold.as_secs_f64() * 1e3,
                self.config.max_queue_time
            );
            return Err(overloaded("queue_time", message));
        }
        if texts == 0 {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "validation",
                "no text given: the input list is empty",
            ));
        }
        let limit = self.config.max_client_batch_size;
        if texts > limit {
            let message = format!("{texts} texts in one request; --max-client-batch-size is {limit}");
            return Err(ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "validation", message));
        }
        Ok(permit)
    }
}

/// An error answered as `{"error": message, "error_type": kind}` with its status code.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    kind: &'static str,
    message: String,
}

impl ApiError {
    /// An error of status `status`, kind `kind` (`validation`, `overloaded`, ...).
    pub fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> Self {
        Self { status, kind, message: message.into() }
    }
}

/// The body of every error.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorBody<'a> {
    /// What went wrong, in one line.
    error: &'a str,
    /// Its kind: `validation`, `payload_too_large`, `overloaded`, `timeout`, `unavailable`,
    /// `unauthorized`, `not_found`, `method_not_allowed`, `reload`, `backend`, `unsupported`.
    error_type: &'a str,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Json(ErrorBody { error: &self.message, error_type: self.kind });
        let mut response = (self.status, body).into_response();
        if self.status == StatusCode::TOO_MANY_REQUESTS || self.status == StatusCode::SERVICE_UNAVAILABLE {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> Self {
        let (status, kind) = match e {
            EngineError::TimedOut => (StatusCode::SERVICE_UNAVAILABLE, "timeout"),
            EngineError::Stopped => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            EngineError::Unsupported(_) => (StatusCode::NOT_IMPLEMENTED, "unsupported"),
            EngineError::Model(_) => (StatusCode::FAILED_DEPENDENCY, "backend"),
        };
        Self::new(status, kind, e.to_string())
    }
}

/// `Json<T>` whose rejections are [`ApiError`]s: malformed JSON 400, wrong types 422, a body
/// over `--payload-limit` 413, a missing JSON content type 415.
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(value)) => Ok(Self(value)),
            Err(rejection) => Err(json_error(rejection)),
        }
    }
}

/// The [`ApiError`] for a rejected JSON body.
fn json_error(rejection: JsonRejection) -> ApiError {
    let (status, kind) = match &rejection {
        JsonRejection::JsonDataError(_) => (StatusCode::UNPROCESSABLE_ENTITY, "validation"),
        JsonRejection::JsonSyntaxError(_) => (StatusCode::BAD_REQUEST, "validation"),
        JsonRejection::MissingJsonContentType(_) => (StatusCode::UNSUPPORTED_MEDIA_TYPE, "validation"),
        _ => return rejected(rejection.status(), rejection.body_text()),
    };
    ApiError::new(status, kind, rejection.body_text())
}

/// The [`ApiError`] for a body that could not be read: over `--payload-limit` (413) or cut off.
pub fn body_error(rejection: BytesRejection) -> ApiError {
    rejected(rejection.status(), rejection.body_text())
}

/// An extractor's rejection of status `status` and text `message` as an [`ApiError`].
fn rejected(status: StatusCode, message: String) -> ApiError {
    let kind = if status == StatusCode::PAYLOAD_TOO_LARGE { "payload_too_large" } else { "validation" };
    ApiError::new(status, kind, message)
}

/// `Path<T>` whose rejections (a segment that is not UTF-8, ...) are [`ApiError`]s.
pub struct ApiPath<T>(pub T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned + Send> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match Path::<T>::from_request_parts(parts, state).await {
            Ok(Path(value)) => Ok(Self(value)),
            Err(rejection) => Err(rejected(rejection.status(), rejection.body_text())),
        }
    }
}

/// `value` as JSON, with the `x-queue-time` and `x-inference-time` headers (milliseconds).
pub fn timed_json(value: &impl Serialize, queue_time: Duration, inference_time: Duration) -> Response {
    let mut response = Json(value).into_response();
    let headers = response.headers_mut();
    for (name, time) in [("x-queue-time", queue_time), ("x-inference-time", inference_time)] {
        if let Ok(value) = HeaderValue::from_str(&format!("{:.3}", time.as_secs_f64() * 1e3)) {
            headers.insert(HeaderName::from_static(name), value);
        }
    }
    response
}

/// The model, its limits and the server's version.
#[utoipa::path(get, path = "/info", tag = "model", responses((status = 200, body = Info)))]
pub async fn info(State(state): State<Arc<AppState>>) -> Json<Info> {
    Json(state.served().info.clone())
}

/// Liveness: the process is up (also `GET /v2/health/live`).
#[utoipa::path(get, path = "/health", tag = "health", responses((status = 200, description = "alive")))]
pub async fn health() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "status": "ok" }))
}

/// Readiness: 200 once the model is warm, 503 while draining (also `GET /v2/health/ready`).
#[utoipa::path(
    get, path = "/ready", tag = "health",
    responses((status = 200, description = "ready"), (status = 503, body = ErrorBody, description = "not ready"))
)]
pub async fn ready(State(state): State<Arc<AppState>>) -> Result<Json<serde_json::Value>, ApiError> {
    if state.ready.load(Ordering::SeqCst) {
        Ok(Json(serde_json::json!({ "status": "ready" })))
    } else {
        Err(ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "not ready"))
    }
}

/// The Prometheus metrics, in the OpenMetrics text format.
#[utoipa::path(get, path = "/metrics", tag = "health", responses((status = 200, content_type = "application/openmetrics-text")))]
pub async fn metrics(State(state): State<Arc<AppState>>) -> Result<Response, ApiError> {
    state.metrics.queue_depth.set(state.served().engine.queue_depth() as i64);
    let text = state
        .metrics
        .render()
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))?;
    let content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8";
    Ok(([(header::CONTENT_TYPE, content_type)], text).into_response())
}

/// Any other route: 404 with the JSON error body.
pub async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such route")
}

/// A route asked with a method it does not take: 405 with the JSON error body (the router adds
/// the `Allow` header).
pub async fn method_not_allowed(request: Request) -> ApiError {
    let message = format!("{} does not take {}", request.uri().path(), request.method());
    ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", message)
}
