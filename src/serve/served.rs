//! [`Served`]: one loaded checkpoint being served (its engine, encoder, labels and `/info`),
//! loaded at start-up and again on every reload.

use std::{
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    thread::JoinHandle,
    time::{Duration, Instant},
};

use anyhow::{anyhow, Context, Result};
use serde::Serialize;
use tch::Device;

use super::{
    batch::BatchLimits,
    engine::{Engine, KeepWarm},
    metrics::Metrics,
    ServeConfig,
};
use crate::{
    checkpoint::{self, Checkpoint},
    infer::TextEncoder,
    nn::LstmKernel,
};

/// A checkpoint being served. Handlers take an `Arc` of the current one when a request starts
/// and keep it to the end, so a reload never changes the model under a request: the text is
/// encoded with the vocabulary of the model that runs it.
pub struct Served {
    /// The batching engine (the model threads) of this checkpoint.
    pub engine: Engine,
    /// Text → ids as this checkpoint reads it.
    pub encoder: TextEncoder,
    /// The class names, in the model's order.
    pub labels: Vec<String>,
    /// `GET /info`'s body.
    pub info: Info,
    /// The checkpoint directory.
    pub dir: PathBuf,
    /// The model threads, joined at shutdown (an older model's threads end on their own once
    /// its last request is answered).
    threads: Mutex<Vec<JoinHandle<()>>>,
}

/// `GET /info`'s body.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Info {
    /// The checkpoint directory served.
    pub model_id: String,
    /// The model's name in the Open Inference Protocol routes (`/v2/models/{name}`).
    pub model_name: String,
    /// `lstm`, `gru` or `rnn`.
    pub cell: String,
    /// What runs the recurrent layer: `onednn` (an LSTM on the CPU with `--lstm-kernel
    /// onednn`) or `packed`.
    pub lstm_kernel: String,
    /// The class names.
    pub labels: Vec<String>,
    /// The tokenizer mode and whether it lower-cases.
    #[schema(value_type = Object)]
    pub tokenizer: serde_json::Value,
    /// Tokens kept per text (longer texts are truncated).
    pub max_input_length: usize,
    /// Texts per batch.
    pub max_batch_size: usize,
    /// Padded tokens per batch.
    pub max_batch_tokens: usize,
    /// Requests in the system at once.
    pub max_concurrent_requests: usize,
    /// Texts per request.
    pub max_client_batch_size: usize,
    /// Largest request body, bytes.
    pub payload_limit: usize,
    /// The device the model runs on.
    pub device: String,
    /// Model threads, each with a copy of the model.
    pub workers: usize,
    /// `lstm-tch`'s version.
    pub version: &'static str,
}

impl Served {
    /// Starts serving `replicas` (copies of the checkpoint read from `dir`, one per model
    /// thread: [`load_replicas`]) on `device`, batching as `config` says; the model is not warm
    /// yet ([`Self::warm_up`]).
    pub fn start(
        dir: &Path,
        replicas: Vec<Checkpoint>,
        config: &ServeConfig,
        device: Device,
        metrics: Arc<Metrics>,
    ) -> Result<Self> {
        let ckpt = replicas.first().context("no model to serve")?;
        let info = Info::of(dir, ckpt, config, device, replicas.len());
        let (encoder, labels) = (TextEncoder::of(ckpt), ckpt.labels.names().to_vec());
        let limits = BatchLimits {
            max_texts: config.max_batch_size,
            max_tokens: config.max_batch_tokens,
            max_delay: config.batch_delay(),
        };
        // The warming pass: one short text (it runs every op a request runs, at little cost).
        let keep_warm = config.keep_warm().map(|(every, window)| KeepWarm {
            every,
            window,
            sample: vec![encoder.encode("warm up").into_iter().cycle().take(4).collect()],
        });
        let (engine, threads) =
            Engine::start(replicas, device, limits, keep_warm, config.queue_limit(), metrics)?;
        Ok(Self { engine, encoder, labels, info, dir: dir.to_owned(), threads: Mutex::new(threads) })
    }

    /// One forward pass of the largest batch the limits allow per model thread (`--max-batch-size`
    /// texts of `--max-batch-tokens` / that many tokens, at most `--max-len`), so that the first
    /// requests do not pay libtorch's first-call costs, the engine knows its pace in large
    /// batches (the backlog that `--max-queue-time` bounds), and the memory of the largest batch
    /// is taken now rather than under load. Not bound by `--request-timeout` (it may wait out
    /// `--max-batch-delay`).
    pub async fn warm_up(&self) -> Result<()> {
        let (texts, tokens) = (self.info.max_batch_size, self.info.max_batch_tokens);
        let length = (tokens / texts).clamp(1, self.info.max_input_length.max(1));
        let one: Vec<i64> = self.encoder.encode("warm up").into_iter().cycle().take(length).collect();
        let deadline = Instant::now() + Duration::from_secs(600);
        let passes: Vec<_> = (0..self.info.workers)
            .map(|_| {
                let (engine, batch) = (self.engine.clone(), vec![one.clone(); texts]);
                tokio::spawn(async move { engine.scores(batch, deadline).await })
            })
            .collect();
        for pass in passes {
            pass.await?.map_err(|e| anyhow!("warm-up failed: {e}"))?;
        }
        Ok(())
    }

    /// The model threads, for the caller to join once every handle to the engine is gone.
    pub fn take_threads(&self) -> Vec<JoinHandle<()>> {
        self.threads.lock().map(|mut threads| std::mem::take(&mut *threads)).unwrap_or_default()
    }
}

/// `count` copies of the checkpoint in `dir`, on `device`, their LSTM run by `kernel`: one per
/// model thread.
pub fn load_replicas(
    dir: &Path,
    count: usize,
    device: Device,
    kernel: LstmKernel,
) -> Result<Vec<Checkpoint>> {
    (0..count.max(1))
        .map(|_| {
            let mut ckpt = checkpoint::load(dir, device)?;
            ckpt.model.set_lstm_kernel(kernel);
            Ok(ckpt)
        })
        .collect()
}

impl Info {
    /// `GET /info`'s body for `ckpt`, read from `dir`, served by `workers` model threads on
    /// `device` as `config` says.
    fn of(dir: &Path, ckpt: &Checkpoint, config: &ServeConfig, device: Device, workers: usize) -> Self {
        Info {
            model_id: dir.display().to_string(),
            model_name: config.model_name.clone(),
            cell: ckpt.config.model.architecture.cell.to_string(),
            lstm_kernel: ckpt.model.kernel_in_effect().to_string(),
            labels: ckpt.labels.names().to_vec(),
            tokenizer: serde_json::to_value(ckpt.config.tokenizer).unwrap_or_default(),
            max_input_length: ckpt.config.max_len,
            max_batch_size: config.max_batch_size,
            max_batch_tokens: config.max_batch_tokens,
            max_concurrent_requests: config.max_concurrent_requests,
            max_client_batch_size: config.max_client_batch_size,
            payload_limit: config.payload_limit,
            device: format!("{device:?}").to_lowercase(),
            workers,
            version: env!("CARGO_PKG_VERSION"),
        }
    }
}
