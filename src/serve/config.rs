//! [`ServeConfig`]: what `lstm-tch serve` is asked to do, as plain values.

use std::{path::PathBuf, time::Duration};

use anyhow::{ensure, Result};

use crate::{
    checkpoint::DEFAULT_CHECKPOINT,
    nn::LstmKernel,
    runtime::{
        checks,
        device::{DeviceSpec, RuntimeArgs},
    },
};

/// The longest time-out or batch delay accepted (a day): any longer would mean "never", which
/// a server should not be asked for.
const MAX_SECONDS: f64 = 86_400.0;

/// The most threads the HTTP runtime runs. Two read a burst of requests twice as fast as one,
/// which keeps refusals quick under overload; more would take CPU from the model threads.
pub const MAX_HTTP_THREADS: usize = 2;

/// Everything a server needs, as plain values: the checkpoint, where to listen, how to batch and
/// what to refuse. Each field is also `lstm-tch serve`'s flag of the same name; the limits'
/// defaults are text-embeddings-inference's where it has one (docs/serving.md).
#[derive(Debug, Clone, PartialEq, clap::Args)]
pub struct ServeConfig {
    /// Checkpoint directory to serve.
    #[arg(long, default_value = DEFAULT_CHECKPOINT)]
    pub checkpoint: PathBuf,
    /// Address to listen on (loopback by default: put a reverse proxy in front to expose it).
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Port to listen on (0: any free port, printed at start-up).
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
    /// The model's name in the Open Inference Protocol routes (`/v2/models/NAME/infer`).
    #[arg(long, default_value = "lstm-tch")]
    pub model_name: String,
    #[command(flatten)]
    pub runtime: RuntimeArgs,
    /// Model threads, each with its own copy of the model, taking batches from one queue
    /// (TorchServe's workers). Default: with `--threads T` on the CPU, the cores / T (at least
    /// 1), so the server uses the machine as libtorch alone would; otherwise 1 (libtorch's own
    /// threads already use every core).
    #[arg(long, value_name = "N")]
    pub workers: Option<usize>,
    /// The LSTM's kernel on the CPU: onednn (oneDNN's fused LSTM, each direction on its own:
    /// 1.5-2x faster per text on batches of mixed lengths, the LSTM alone 2-3x; answers within
    /// 2e-7 of `predict`'s) or packed (`predict`'s default: PyTorch's values, bit for bit). GRU
    /// and RNN cells and CUDA run packed either way.
    #[arg(long, value_enum, default_value_t = LstmKernel::Onednn)]
    pub lstm_kernel: LstmKernel,
    /// Most texts the model runs in one batch.
    #[arg(long, default_value_t = 64)]
    pub max_batch_size: usize,
    /// Most padded tokens (texts × the longest text) in one batch.
    #[arg(long, default_value_t = 16384)]
    pub max_batch_tokens: usize,
    /// Milliseconds a batch may wait for more requests once the model is free (0: a batch forms
    /// as soon as the model is free, from whatever is queued).
    #[arg(long, default_value_t = 0.0, value_name = "MS")]
    pub max_batch_delay: f64,
    /// Requests in the system at once (queued or running); past it, 429 at once.
    #[arg(long, default_value_t = 512)]
    pub max_concurrent_requests: usize,
    /// Milliseconds a request may wait for the model: a new request is refused at once (429)
    /// when the expected wait (the tokens queued, and half of those running, at the model's
    /// measured pace) is over it, or over the lower threshold the measured waits call for, so
    /// that accepted requests keep a bounded latency under overload (0: no such limit).
    #[arg(long, default_value_t = 50.0, value_name = "MS")]
    pub max_queue_time: f64,
    /// Milliseconds an idle model thread waits for work before it runs a one-text forward pass
    /// to keep the model warm, while the last request came less than `--keep-warm-for` ago:
    /// the first forward after some idle milliseconds runs several times slower than the next,
    /// so at a low request rate this keeps latency as low as under load, for at most one short
    /// pass per interval (0: never).
    #[arg(long, default_value_t = 5.0, value_name = "MS")]
    pub keep_warm: f64,
    /// Seconds after the last request during which idle model threads keep the model warm; then
    /// they wait without running anything.
    #[arg(long, default_value_t = 5.0, value_name = "SECONDS")]
    pub keep_warm_for: f64,
    /// Most texts in one request; past it, 413.
    #[arg(long, default_value_t = 32)]
    pub max_client_batch_size: usize,
    /// Largest request body in bytes; past it, 413.
    #[arg(long, default_value_t = 2_000_000, value_name = "BYTES")]
    pub payload_limit: usize,
    /// Seconds a request may take from its headers to its answer (a slow client's body
    /// included); a request still queued then is dropped before it reaches the model.
    #[arg(long, default_value_t = 30.0, value_name = "SECONDS")]
    pub request_timeout: f64,
    /// Seconds a client has to send a request's headers (also how long an idle keep-alive
    /// connection stays open); past it, the connection is closed.
    #[arg(long, default_value_t = 10.0, value_name = "SECONDS")]
    pub header_timeout: f64,
    /// Require `Authorization: Bearer KEY` on every route but the health checks.
    #[arg(long, value_name = "KEY")]
    pub api_key: Option<String>,
    /// Origins browsers may call the API from (CORS); repeat the flag, or `*` for any.
    #[arg(long, value_name = "ORIGIN")]
    pub cors_allow_origin: Vec<String>,
    /// Log level on stderr: `info` logs start-up, reloads and shutdown; `debug` adds one line
    /// per request.
    #[arg(long, default_value = "info", value_parser = ["error", "warn", "info", "debug", "trace"])]
    pub log_level: String,
    /// Log lines as text or as JSON objects (one per line).
    #[arg(long, default_value = "text", value_parser = ["text", "json"])]
    pub log_format: String,
}

impl Default for ServeConfig {
    /// `lstm-tch serve`'s defaults.
    fn default() -> Self {
        crate::runtime::flags::flag_defaults()
    }
}

impl ServeConfig {
    /// Checks what can be checked before the checkpoint is read.
    pub fn validate(&self) -> Result<()> {
        checks::at_least_one("--max-batch-size", self.max_batch_size)?;
        if let Some(n) = self.workers {
            checks::at_least_one("--workers", n)?;
            ensure!(n <= 256, "--workers must be at most 256, got {n}");
        }
        checks::at_least_one("--max-batch-tokens", self.max_batch_tokens)?;
        checks::at_least_one("--max-concurrent-requests", self.max_concurrent_requests)?;
        checks::at_least_one("--max-client-batch-size", self.max_client_batch_size)?;
        checks::at_least_one("--payload-limit", self.payload_limit)?;
        ensure!(
            self.max_client_batch_size <= self.max_batch_size,
            "--max-client-batch-size ({}) must not exceed --max-batch-size ({}): a request is never split",
            self.max_client_batch_size,
            self.max_batch_size
        );
        for (name, ms) in [
            ("--max-batch-delay", self.max_batch_delay),
            ("--max-queue-time", self.max_queue_time),
            ("--keep-warm", self.keep_warm),
        ] {
            ensure!(
                (0.0..=MAX_SECONDS * 1e3).contains(&ms),
                "{name} must be between 0 and {} ms, got {ms}",
                MAX_SECONDS * 1e3
            );
        }
        for (name, seconds) in
            [("--request-timeout", self.request_timeout), ("--header-timeout", self.header_timeout)]
        {
            checks::positive(name, seconds)?;
            ensure!(seconds <= MAX_SECONDS, "{name} must be at most {MAX_SECONDS} s, got {seconds}");
        }
        ensure!(
            (0.0..=MAX_SECONDS).contains(&self.keep_warm_for),
            "--keep-warm-for must be between 0 and {MAX_SECONDS} s, got {}",
            self.keep_warm_for
        );
        for origin in &self.cors_allow_origin {
            let header = axum::http::HeaderValue::from_str(origin);
            ensure!(
                origin == "*" || (header.is_ok() && origin.contains("://")),
                "--cors-allow-origin {origin:?} is neither an origin (scheme://host[:port]) nor *"
            );
        }
        ensure!(
            !self.model_name.is_empty() && !self.model_name.contains('/'),
            "--model-name must be a non-empty name without '/'"
        );
        ensure!(self.api_key.as_ref().is_none_or(|k| !k.is_empty()), "--api-key must not be empty");
        Ok(())
    }

    /// The model threads to start: [`Self::workers`], or its default.
    pub fn worker_count(&self) -> usize {
        if let Some(n) = self.workers {
            return n;
        }
        match (self.runtime.threads, &self.runtime.device) {
            (Some(t), DeviceSpec::Cpu) => (available_cpus() / t.max(1)).max(1),
            _ => 1,
        }
    }

    /// The HTTP runtime's threads: [`MAX_HTTP_THREADS`], or one when the process may run on a
    /// single CPU (`taskset`, a container's CPU quota). Two threads time-sliced on one CPU
    /// leave requests unread in their sockets while the other runs: under 2x overload on one CPU
    /// (docs/serving.md) refusals then took up to 16 ms on the wire, against 5 ms with one.
    pub fn http_threads(&self) -> usize {
        available_cpus().min(MAX_HTTP_THREADS)
    }

    /// [`Self::max_batch_delay`] as a duration.
    pub fn batch_delay(&self) -> Duration {
        Duration::from_secs_f64(self.max_batch_delay / 1e3)
    }

    /// [`Self::max_queue_time`] as a duration (`None`: no limit).
    pub fn queue_limit(&self) -> Option<Duration> {
        (self.max_queue_time > 0.0).then(|| Duration::from_secs_f64(self.max_queue_time / 1e3))
    }

    /// [`Self::keep_warm`] and [`Self::keep_warm_for`] as (interval, window); `None`: off.
    pub fn keep_warm(&self) -> Option<(Duration, Duration)> {
        (self.keep_warm > 0.0 && self.keep_warm_for > 0.0).then(|| {
            (Duration::from_secs_f64(self.keep_warm / 1e3), Duration::from_secs_f64(self.keep_warm_for))
        })
    }

    /// [`Self::request_timeout`] as a duration.
    pub fn timeout(&self) -> Duration {
        Duration::from_secs_f64(self.request_timeout)
    }

    /// [`Self::header_timeout`] as a duration.
    pub fn header_timeout(&self) -> Duration {
        Duration::from_secs_f64(self.header_timeout)
    }
}

/// The CPUs this process may run on: its affinity mask and CPU quota, as the standard library
/// reads them (1 when unknown).
fn available_cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}
