//! The router and its layers: the body limit, the request time-out, request ids, CORS, the API
//! key, and the metrics and debug log line of every request (499 for a request whose client
//! left before its answer).

use std::{
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::Instant,
};

use axum::{
    extract::{DefaultBodyLimit, MatchedPath, Request, State},
    http::{header, HeaderValue, Method, StatusCode},
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::{get, post},
    Router,
};
use tower_http::{
    cors::{AllowOrigin, Any, CorsLayer},
    request_id::{MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer},
};

use super::{
    admin,
    api::{self, ApiError, AppState},
    metrics::Metrics,
    openapi, page, predict, v2,
};

/// The routes that answer without the API key: the health checks orchestrators poll, and the
/// page (which asks for the key itself when the API wants one).
const OPEN_ROUTES: [&str; 5] = ["/", "/health", "/ready", "/v2/health/live", "/v2/health/ready"];

/// The `x-request-id` header.
const REQUEST_ID: &str = "x-request-id";

/// Every route, with the layers, over `state`.
pub fn router(state: Arc<AppState>) -> Router {
    let request_id = axum::http::HeaderName::from_static(REQUEST_ID);
    let mut router = Router::new()
        .route("/", get(page::page))
        .route("/predict", post(predict::predict))
        .route("/explain", post(predict::explain))
        .route("/info", get(api::info))
        .route("/health", get(api::health))
        .route("/ready", get(api::ready))
        .route("/metrics", get(api::metrics))
        .route("/admin/reload", post(admin::reload))
        .route("/api-doc/openapi.json", get(openapi::openapi))
        .route("/v2", get(v2::server_metadata))
        .route("/v2/health/live", get(api::health))
        .route("/v2/health/ready", get(api::ready))
        .route("/v2/models/{name}", get(v2::model_metadata))
        .route("/v2/models/{name}/ready", get(v2::model_ready))
        .route("/v2/models/{name}/infer", post(v2::infer))
        .method_not_allowed_fallback(api::method_not_allowed)
        .fallback(api::not_found)
        .layer(DefaultBodyLimit::max(state.config.payload_limit))
        .layer(middleware::from_fn_with_state(state.clone(), authorize))
        .layer(middleware::from_fn_with_state(state.clone(), time_and_count))
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(SetRequestIdLayer::new(request_id, RequestIds::default()));
    if let Some(cors) = cors(&state.config.cors_allow_origin) {
        router = router.layer(cors);
    }
    router.with_state(state)
}

/// The CORS layer for `origins` (`*`: any), or none.
fn cors(origins: &[String]) -> Option<CorsLayer> {
    if origins.is_empty() {
        return None;
    }
    let allow = if origins.iter().any(|o| o == "*") {
        AllowOrigin::from(Any)
    } else {
        AllowOrigin::list(origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()))
    };
    Some(
        CorsLayer::new()
            .allow_origin(allow)
            .allow_methods([Method::GET, Method::POST])
            .allow_headers([header::CONTENT_TYPE, header::AUTHORIZATION]),
    )
}

/// Request ids for requests that bring none: `lstm-tch-`, the process id and a per-process
/// counter (the prefix is formatted once: the process id is a system call).
#[derive(Clone)]
struct RequestIds {
    prefix: Arc<str>,
    next: Arc<AtomicU64>,
}

impl Default for RequestIds {
    fn default() -> Self {
        Self { prefix: format!("lstm-tch-{}-", std::process::id()).into(), next: Arc::default() }
    }
}

impl MakeRequestId for RequestIds {
    fn make_request_id<B>(&mut self, _: &axum::http::Request<B>) -> Option<RequestId> {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        HeaderValue::from_str(&format!("{}{n}", self.prefix)).ok().map(RequestId::new)
    }
}

/// With `--api-key`, refuses (401) every request but the health checks that lacks
/// `Authorization: Bearer KEY`.
async fn authorize(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    let Some(key) = &state.config.api_key else { return next.run(request).await };
    if OPEN_ROUTES.contains(&request.uri().path()) {
        return next.run(request).await;
    }
    let given =
        request.headers().get(header::AUTHORIZATION).and_then(|v| v.as_bytes().strip_prefix(b"Bearer "));
    if given.is_some_and(|given| same_key(given, key.as_bytes())) {
        return next.run(request).await;
    }
    let mut response = ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", "a valid API key is required")
        .into_response();
    response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    response
}

/// Whether `given` is `key`, in a time that does not depend on where they differ (so that the
/// time of a 401 tells nothing of the key's prefix).
fn same_key(given: &[u8], key: &[u8]) -> bool {
    given.len() == key.len() && given.iter().zip(key).fold(0, |differ, (a, b)| differ | (a ^ b)) == 0
}

/// Bounds the request's time (`--request-timeout`: a slow client's body included; 408 past
/// it), counts it in the metrics by route and status, and logs it (debug level).
async fn time_and_count(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = request.extensions().get::<MatchedPath>().map_or("unmatched", |p| p.as_str()).to_owned();
    let method = request.method().clone();
    let id = request.headers().get(REQUEST_ID).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let mut unanswered =
        Unanswered { metrics: &state.metrics, route: &route, id: &id, started, pending: true };
    let mut response = match tokio::time::timeout(state.config.timeout(), next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "timeout",
            "the request took longer than --request-timeout",
        )
        .into_response(),
    };
    if state.closing.load(Ordering::SeqCst) {
        // Shutting down (src/serve/listen.rs): this connection closes after this answer.
        response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    unanswered.answered();
    let (status, seconds) = (response.status().as_u16(), started.elapsed().as_secs_f64());
    state.metrics.record(&route, status, seconds);
    let header_ms =
        |name: &str| response.headers().get(name).and_then(|v| v.to_str().ok()?.parse::<f64>().ok());
    tracing::debug!(
        request_id = %id,
        %method,
        route,
        status,
        duration_ms = seconds * 1e3,
        queue_ms = header_ms("x-queue-time"),
        inference_ms = header_ms("x-inference-time"),
        "request"
    );
    response
}

/// The status a request is counted with when its connection closed before its answer (the
/// client left, or timed out on its side): nginx's "client closed request".
const CLIENT_CLOSED_REQUEST: u16 = 499;

/// A request not answered yet: dropped as such (its connection closed, so hyper dropped the
/// request's future), it is counted and logged with status 499.
struct Unanswered<'a> {
    metrics: &'a Metrics,
    route: &'a str,
    id: &'a str,
    started: Instant,
    /// Still waiting for the answer.
    pending: bool,
}

impl Unanswered<'_> {
    /// The request has its answer: nothing to count on drop.
    fn answered(&mut self) {
        self.pending = false;
    }
}

impl Drop for Unanswered<'_> {
    fn drop(&mut self) {
        if !self.pending {
            return;
        }
        let seconds = self.started.elapsed().as_secs_f64();
        self.metrics.record(self.route, CLIENT_CLOSED_REQUEST, seconds);
        let (request_id, route) = (self.id, self.route);
        tracing::debug!(
            request_id,
            route,
            status = CLIENT_CLOSED_REQUEST,
            duration_ms = seconds * 1e3,
            "request"
        );
    }
}
