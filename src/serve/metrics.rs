//! The server's Prometheus metrics (`GET /metrics`, text exposition format), kept with
//! `prometheus-client`: requests by route and status and their duration, queue time, inference
//! time, batch size, queue depth, dropped requests, model reloads and connection errors.

use std::sync::atomic::AtomicU64;

use prometheus_client::{
    encoding::{text::encode, EncodeLabelSet},
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram},
    registry::Registry,
};

/// Labels of a request: its route (the matched path, or `unmatched`) and status code.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteStatus {
    route: String,
    status: u16,
}

/// The label of a count kept by reason (`reason="timeout"`, ...).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Reason {
    /// Why the request or connection was counted.
    pub reason: &'static str,
}

/// The label of a count kept by result (`result="ok"` or `result="error"`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Outcome {
    /// How the operation ended.
    pub result: &'static str,
}

/// Histograms of seconds, one per route and status.
type SecondsByRouteStatus = Family<RouteStatus, Histogram, fn() -> Histogram>;

/// Buckets for durations, from 0.5 ms to 10 s.
fn seconds_histogram() -> Histogram {
    Histogram::new([0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0])
}

/// Every metric the server keeps, registered under the `lstm_tch_` prefix.
pub struct Metrics {
    registry: Registry,
    /// Requests answered, by route and status.
    pub requests: Family<RouteStatus, Counter>,
    /// Seconds from a request's headers to its answer, by route and status (so that how fast
    /// refusals are answered can be read apart from how long answers take).
    pub request_seconds: SecondsByRouteStatus,
    /// Seconds a request waited for the model.
    pub queue_seconds: Histogram,
    /// Seconds a batch took in the model.
    pub inference_seconds: Histogram,
    /// Texts per batch.
    pub batch_texts: Histogram,
    /// Requests queued, not yet in a batch.
    pub queue_depth: Gauge,
    /// The expected wait a new request is admitted within now (`--max-queue-time`, corrected by
    /// the waits measured), in seconds.
    pub queue_time_threshold: Gauge<f64, AtomicU64>,
    /// Requests refused with 429, by reason (`concurrency`: `--max-concurrent-requests`;
    /// `queue_time`: `--max-queue-time`).
    pub refused: Family<Reason, Counter>,
    /// Requests dropped before the model, by reason (`timeout`, `disconnected`).
    pub dropped: Family<Reason, Counter>,
    /// Model reloads, by result (`ok`, `error`).
    pub reloads: Family<Outcome, Counter>,
    /// Connections closed on an error, by reason (`header_timeout`: headers too slow; `other`).
    pub connection_errors: Family<Reason, Counter>,
    /// Forward passes an idle model thread ran to keep the model warm (`--keep-warm`).
    pub keep_warm_passes: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut metrics = Metrics {
            registry: Registry::with_prefix("lstm_tch"),
            requests: Family::default(),
            request_seconds: Family::new_with_constructor(seconds_histogram),
            queue_seconds: seconds_histogram(),
            inference_seconds: seconds_histogram(),
            batch_texts: Histogram::new([1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0]),
            queue_depth: Gauge::default(),
            queue_time_threshold: Gauge::default(),
            refused: Family::default(),
            dropped: Family::default(),
            reloads: Family::default(),
            connection_errors: Family::default(),
            keep_warm_passes: Counter::default(),
        };
        let r = &mut metrics.registry;
        r.register("requests", "Requests answered, by route and status", metrics.requests.clone());
        r.register(
            "request_duration_seconds",
            "Request duration, by route and status",
            metrics.request_seconds.clone(),
        );
        r.register(
            "queue_duration_seconds",
            "Time a request waited for the model",
            metrics.queue_seconds.clone(),
        );
        r.register(
            "inference_duration_seconds",
            "Time a batch took in the model",
            metrics.inference_seconds.clone(),
        );
        r.register("batch_size", "Texts per batch", metrics.batch_texts.clone());
        r.register("queue_size", "Requests queued, not yet in a batch", metrics.queue_depth.clone());
        r.register(
            "queue_time_threshold_seconds",
            "The expected wait a new request is admitted within now",
            metrics.queue_time_threshold.clone(),
        );
        r.register("requests_refused", "Requests refused with 429, by reason", metrics.refused.clone());
        r.register(
            "requests_dropped",
            "Requests dropped before the model, by reason",
            metrics.dropped.clone(),
        );
        r.register("model_reloads", "Model reloads, by result", metrics.reloads.clone());
        r.register(
            "connection_errors",
            "Connections closed on an error, by reason",
            metrics.connection_errors.clone(),
        );
        r.register(
            "keep_warm_passes",
            "Forward passes an idle model thread ran to keep the model warm",
            metrics.keep_warm_passes.clone(),
        );
        metrics
    }
}

impl Metrics {
    /// Counts one answered request.
    pub fn record(&self, route: &str, status: u16, seconds: f64) {
        let labels = RouteStatus { route: route.to_owned(), status };
        self.requests.get_or_create(&labels).inc();
        self.request_seconds.get_or_create(&labels).observe(seconds);
    }

    /// Everything, in Prometheus' text format.
    pub fn render(&self) -> Result<String, std::fmt::Error> {
        let mut text = String::new();
        encode(&mut text, &self.registry)?;
        Ok(text)
    }
}
