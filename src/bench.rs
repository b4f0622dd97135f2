//! Benchmark workloads, timed in process; `scripts/bench_worker.py` times the same workloads in
//! PyTorch and `scripts/bench.py` runs both alternately and compares them (README,
//! "Performance").
//!
//! Each workload runs `warmup` untimed repetitions, then `reps` timed ones, and reports every
//! timing; the driver takes medians. Training steps are forward, loss, backward and an Adam
//! step, exactly as in the article's loop, with the same seed as the Python side.

use std::{path::PathBuf, time::Instant};

use anyhow::{ensure, Result};
use clap::{Args, ValueEnum};
use serde::Serialize;
use tch::{nn, Device, Kind, Tensor};

use crate::{
    article::ArticleConfig,
    checkpoint,
    cli::{self, sample_dir},
    data::{Columns, Encoded, LabelSet, Tokenizer, TokenizerConfig, Vocab},
    device::set_threads,
    model::{cross_entropy, LstmClassifier, LstmConfig},
    optim::{Adam, AdamConfig, AdamImpl},
    text_model::TextClassifier,
    training::{self, TrainOptions},
};

/// What to time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Workload {
    /// One training step of the article's model (batch 2, seq 5, input 1, hidden 64).
    Article,
    /// One training step at batch 64, seq 50, input 32, hidden 256, 2 layers.
    Medium,
    /// One epoch of text training on the sample data, loading and batching included.
    Text,
    /// One sentence through a loaded checkpoint: tokenize, encode, forward, softmax.
    Predict,
}

/// `lstm-tch bench`: time one workload in this process and print the timings as JSON.
#[derive(Debug, Clone, Args)]
pub struct BenchArgs {
    /// The workload.
    #[arg(value_enum)]
    pub workload: Workload,
    /// libtorch intra-op threads.
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Untimed repetitions first.
    #[arg(long, default_value_t = 20)]
    pub warmup: usize,
    /// Timed repetitions.
    #[arg(long, default_value_t = 100)]
    pub reps: usize,
    /// Adam implementation for the training workloads.
    #[arg(long, value_enum, default_value_t)]
    pub adam: AdamImpl,
    /// Checkpoint for `predict`.
    #[arg(long, default_value = cli::DEFAULT_CHECKPOINT)]
    pub checkpoint: PathBuf,
    /// The sentence `predict` classifies.
    #[arg(long, default_value = "The acting was great, but the plot was far too long.")]
    pub sentence: String,
    /// Scale the medium workload down (tests): batch, seq, input and hidden divided by this.
    #[arg(long, default_value_t = 1)]
    pub shrink: i64,
}

/// What `lstm-tch bench` prints.
#[derive(Debug, Serialize)]
pub struct BenchResult {
    /// The workload.
    pub workload: Workload,
    /// Threads used.
    pub threads: usize,
    /// Milliseconds of each timed repetition.
    pub times_ms: Vec<f64>,
    /// Items (texts) per repetition, for throughputs.
    pub items: usize,
    /// Floating-point operations per repetition (the LSTM's matrix products), where counted.
    pub flops: Option<f64>,
}

/// Runs the benchmark `args` describes.
pub fn run(args: &BenchArgs) -> Result<BenchResult> {
    ensure!(args.reps >= 1, "--reps must be at least 1");
    ensure!(args.shrink >= 1, "--shrink must be at least 1");
    set_threads(Some(args.threads))?;
    let (times_ms, items, flops) = match args.workload {
        Workload::Article => {
            let c = ArticleConfig::default();
            training_steps(args, c.model_config(), c.batch_size, c.seq_len)?
        }
        Workload::Medium => {
            let s = args.shrink;
            let config = LstmConfig {
                input_size: 32 / s,
                hidden_size: 256 / s,
                num_layers: 2,
                output_size: 2,
                ..LstmConfig::default()
            };
            training_steps(args, config, 64 / s, 50 / s)?
        }
        Workload::Text => text_epochs(args)?,
        Workload::Predict => predictions(args)?,
    };
    Ok(BenchResult { workload: args.workload, threads: args.threads, times_ms, items, flops })
}

fn time_reps(warmup: usize, reps: usize, mut body: impl FnMut() -> Result<()>) -> Result<Vec<f64>> {
    for _ in 0..warmup {
        body()?;
    }
    (0..reps)
        .map(|_| {
            let start = Instant::now();
            body()?;
            Ok(start.elapsed().as_secs_f64() * 1e3)
        })
        .collect()
}

/// Matrix-product FLOPs of one LSTM training step: per layer and time step the products
/// x·W_ih (4H × in) and h·W_hh (4H × H), 2 FLOPs per multiply-add, and backward ≈ 2 × forward.
pub fn lstm_training_flops(config: &LstmConfig, batch: i64, seq_len: i64) -> f64 {
    let h = config.hidden_size as f64;
    let forward: f64 = (0..config.num_layers)
        .map(|layer| {
            let input = if layer == 0 { config.input_size as f64 } else { h };
            2.0 * batch as f64 * 4.0 * h * (input + h) * seq_len as f64
        })
        .sum();
    3.0 * forward
}

fn training_steps(
    args: &BenchArgs,
    config: LstmConfig,
    batch: i64,
    seq_len: i64,
) -> Result<(Vec<f64>, usize, Option<f64>)> {
    tch::manual_seed(0);
    let inputs = Tensor::f_randn([batch, seq_len, config.input_size], (Kind::Float, Device::Cpu))?;
    let labels = Tensor::from_slice(&(0..batch).map(|i| i % config.output_size).collect::<Vec<_>>());
    let vs = nn::VarStore::new(Device::Cpu);
    let model = LstmClassifier::new(&vs.root(), config)?;
    let mut optimizer = Adam::new(args.adam, &vs, AdamConfig::default())?;
    let times = time_reps(args.warmup, args.reps, || {
        let outputs = model.forward(&inputs)?;
        let loss = cross_entropy(&outputs, &labels)?;
        optimizer.backward_step(&loss)
    })?;
    Ok((times, batch as usize, Some(lstm_training_flops(&config, batch, seq_len))))
}

fn text_epochs(args: &BenchArgs) -> Result<(Vec<f64>, usize, Option<f64>)> {
    let dir = sample_dir();
    let mut items = 0;
    let times = time_reps(args.warmup.min(1), args.reps, || {
        // Everything `lstm-tch train` does for one epoch, with its default model.
        let defaults = cli::TrainArgs::defaults();
        let train = crate::data::dataset::load(&dir.join("train.tsv"), None, &Columns::default())?;
        let labels = LabelSet::from_examples(&train)?;
        let tokenizer = Tokenizer::new(TokenizerConfig::default());
        let texts = train.iter().map(|e| e.text.as_str());
        let vocab = Vocab::from_texts(texts, &tokenizer, defaults.min_freq, defaults.max_vocab)?;
        let classes = labels.indices(&train, "training")?;
        let data = Encoded::new(
            train.iter().map(|e| e.text.as_str()),
            classes,
            &tokenizer,
            &vocab,
            defaults.max_len,
        )?;
        tch::manual_seed(0);
        let vs = nn::VarStore::new(Device::Cpu);
        let model = TextClassifier::new(&vs.root(), defaults.model_config(vocab.len(), labels.len()))?;
        let options = TrainOptions {
            epochs: 1,
            batch_size: defaults.batch_size,
            bucket: false,
            adam: args.adam,
            adam_config: AdamConfig::with_lr(defaults.lr),
            clip_grad_norm: None,
            device: Device::Cpu,
            progress: false,
        };
        training::fit(&model, &vs, &data, None, &options, |_| Ok(()))?;
        items = data.len();
        Ok(())
    })?;
    Ok((times, items, None))
}

fn predictions(args: &BenchArgs) -> Result<(Vec<f64>, usize, Option<f64>)> {
    let ckpt = checkpoint::load(&args.checkpoint, Device::Cpu)?;
    let sentence = [args.sentence.clone()];
    let times = time_reps(args.warmup, args.reps, || {
        let probabilities = cli::classify(&ckpt, &sentence, Device::Cpu)?;
        ensure!(probabilities.len() == ckpt.labels.len(), "one row of probabilities expected");
        Ok(())
    })?;
    Ok((times, 1, None))
}
