//! The HTTP API's request and response bodies, its errors, and its handlers. The shapes are
//! text-embeddings-inference's, so its clients work unchanged (docs/serving.md).

use std::{
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::Instant,
};

use axum::{
    extract::{rejection::JsonRejection, FromRequest, Request, State},
    http::{header, HeaderName, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    Json,
};
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;

use super::{
    engine::{Answer, Engine, EngineError},
    metrics::Metrics,
    ServeConfig,
};
use crate::infer::TextEncoder;

/// What the handlers share.
pub struct AppState {
    /// The batching engine.
    pub engine: Engine,
    /// Text → ids as the served checkpoint reads it.
    pub encoder: TextEncoder,
    /// The class names, in the model's order.
    pub labels: Vec<String>,
    /// `GET /info`'s body.
    pub info: Info,
    /// The server's limits and knobs.
    pub config: ServeConfig,
    /// One permit per request in the system ([`ServeConfig::max_concurrent_requests`]).
    pub permits: Arc<Semaphore>,
    /// The metrics.
    pub metrics: Arc<Metrics>,
    /// Ready for traffic: the model is warm and the server is not draining.
    pub ready: AtomicBool,
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
#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
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
        match e {
            EngineError::TimedOut => Self::new(StatusCode::SERVICE_UNAVAILABLE, "timeout", e.to_string()),
            EngineError::Stopped => Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", e.to_string()),
            EngineError::Model(_) => Self::new(StatusCode::FAILED_DEPENDENCY, "backend", e.to_string()),
        }
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
        _ if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large")
        }
        _ => (rejection.status(), "validation"),
    };
    ApiError::new(status, kind, rejection.body_text())
}

/// `POST /predict`'s body: one text or a list (text-embeddings-inference's shape). Other
/// fields (`truncate`, `parameters`: what some clients send) are accepted and ignored: texts
/// longer than the checkpoint's `--max-len` are always truncated, as `predict` truncates them.
#[derive(Debug, Deserialize)]
pub struct PredictRequest {
    /// The text or texts.
    pub inputs: Inputs,
    /// Return the logits instead of the probabilities as each label's `score`.
    #[serde(default)]
    pub raw_scores: bool,
}

/// One text, or a list of them.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Inputs {
    /// `"inputs": "text"`: the answer is one list of labels.
    One(String),
    /// `"inputs": ["t1", "t2"]`: the answer is a list of lists.
    Many(Vec<String>),
}

/// A label and its score (probability, or logit with `raw_scores`).
#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub struct LabelScore {
    /// The class name.
    pub label: String,
    /// Its probability (or logit).
    pub score: f32,
}

/// `GET /info`'s body.
#[derive(Debug, Clone, Serialize)]
pub struct Info {
    /// The checkpoint directory served.
    pub model_id: String,
    /// `lstm`, `gru` or `rnn`.
    pub cell: String,
    /// The class names.
    pub labels: Vec<String>,
    /// The tokenizer mode and whether it lower-cases.
    pub tokenizer: serde_json::Value,
    /// Tokens kept per text (longer texts are truncated).
    pub max_input_length: usize,
    /// The batching and request limits.
    pub max_batch_size: usize,
    /// Padded tokens per batch.
    pub max_batch_tokens: usize,
    /// Requests in the system at once.
    pub max_concurrent_requests: usize,
    /// Texts per request.
    pub max_client_batch_size: usize,
    /// Largest request body, bytes.
    pub payload_limit: usize,
    /// `lstm-tch`'s version.
    pub version: &'static str,
}

/// `POST /predict`: each text's labels sorted by score, with `x-queue-time` and
/// `x-inference-time` (milliseconds) headers.
pub async fn predict(
    State(state): State<Arc<AppState>>,
    ApiJson(request): ApiJson<PredictRequest>,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    let _permit = state.permits.clone().try_acquire_owned().map_err(|_| {
        ApiError::new(StatusCode::TOO_MANY_REQUESTS, "overloaded", "too many requests in flight; retry later")
    })?;
    let (texts, one) = match request.inputs {
        Inputs::One(text) => (vec![text], true),
        Inputs::Many(texts) => (texts, false),
    };
    if texts.is_empty() {
        return Err(ApiError::new(StatusCode::BAD_REQUEST, "validation", "`inputs` is an empty list"));
    }
    let limit = state.config.max_client_batch_size;
    if texts.len() > limit {
        let message = format!("{} texts in one request; --max-client-batch-size is {limit}", texts.len());
        return Err(ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "validation", message));
    }
    let ids = texts.iter().map(|t| state.encoder.encode(t)).collect();
    let answer = state.engine.submit(ids, started + state.config.timeout()).await?;
    let ranked = rank(&answer, &state.labels, request.raw_scores);
    let mut response = if one { Json(&ranked[0]).into_response() } else { Json(&ranked).into_response() };
    let headers = response.headers_mut();
    for (name, seconds) in [("x-queue-time", answer.queue_time), ("x-inference-time", answer.inference_time)]
    {
        let millis = format!("{:.3}", seconds.as_secs_f64() * 1e3);
        if let Ok(value) = HeaderValue::from_str(&millis) {
            headers.insert(HeaderName::from_static(name), value);
        }
    }
    Ok(response)
}

/// Each text's labels with their scores, highest first (ties in class order).
fn rank(answer: &Answer, labels: &[String], raw_scores: bool) -> Vec<Vec<LabelScore>> {
    let scores = if raw_scores { &answer.logits } else { &answer.probabilities };
    scores
        .chunks(labels.len())
        .map(|row| {
            let mut ranked: Vec<LabelScore> = labels
                .iter()
                .zip(row)
                .map(|(label, &score)| LabelScore { label: label.clone(), score })
                .collect();
            ranked.sort_by(|a, b| b.score.total_cmp(&a.score));
            ranked
        })
        .collect()
}

/// `GET /info`.
pub async fn info(State(state): State<Arc<AppState>>) -> Json<Info> {
    Json(state.info.clone())
}

/// `GET /health` (and `/v2/health/live`): the process is up.
pub async fn health() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "status": "ok" }))
}

/// `GET /ready` (and `/v2/health/ready`): 200 once the model is warm, 503 while draining.
pub async fn ready(State(state): State<Arc<AppState>>) -> Result<Json<serde_json::Value>, ApiError> {
    if state.ready.load(Ordering::SeqCst) {
        Ok(Json(serde_json::json!({ "status": "ready" })))
    } else {
        Err(ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "not ready"))
    }
}

/// `GET /metrics`: Prometheus' text format.
pub async fn metrics(State(state): State<Arc<AppState>>) -> Result<Response, ApiError> {
    state.metrics.queue_depth.set(state.engine.queue_depth() as i64);
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
