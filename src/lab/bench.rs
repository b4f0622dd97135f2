//! Benchmark workloads, timed in process; `scripts/bench_worker.py` times the same workloads in
//! PyTorch and `scripts/bench.py` runs both alternately and compares them (docs/performance.md).
//!
//! Each workload runs `warmup` untimed repetitions, then `reps` timed ones, and reports every
//! timing; the driver takes medians. Training steps are forward, loss, backward and an Adam
//! step, exactly as in the article's loop, with the same seed as the Python side.
//!
//! `--device cuda` runs a workload on the GPU as PyTorch would (the model built on the CPU,
//! moved, its LSTM weights flattened; the data moved batch by batch; PyTorch's default CUDA
//! Adam), and every repetition ends with `torch.cuda.synchronize()`, so a timing covers the
//! GPU's work and not only its launch. `--data FILE` makes `text` an epoch over that file (SST-2
//! size, for instance), loaded and encoded once, untimed: the training epoch alone, as `train`
//! reports it, after a warm-up epoch over its first 2,000 texts.

use std::{
    path::{Path, PathBuf},
    thread,
    time::{Duration, Instant},
};

use anyhow::{ensure, Result};
use clap::{Args, ValueEnum};
use serde::Serialize;
use tch::{nn, Device, Kind, Tensor};

use crate::runtime::checks;
use crate::{
    article::ArticleConfig,
    checkpoint,
    data::{sample_dir, Columns, Encoded, LabelSet, Tokenizer, TokenizerConfig, Vocab},
    infer,
    nn::{cross_entropy, RecurrentConfig, SequenceClassifier, SequenceClassifierConfig, TextClassifier},
    runtime::device::{set_threads, DeviceSpec},
    train::{self, TrainOptions},
    train::{
        optim::{Adam, AdamConfig, AdamImpl},
        TrainConfig,
    },
};

/// What to time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Workload {
    /// One training step of the article's model (batch 2, seq 5, input 1, hidden 64).
    Article,
    /// One training step at batch 64, seq 50, input 32, hidden 256, 2 layers.
    Medium,
    /// One epoch of text training on the sample data, loading and batching included (with
    /// `--data`, on that file, loaded beforehand).
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
    /// Milliseconds to sleep, untimed, before each timed repetition: what one repetition costs
    /// when they come this far apart, as a server's requests do at a low rate (100: ten a
    /// second), rather than back to back (0).
    #[arg(long, default_value_t = 0.0, value_name = "MS")]
    pub pause_ms: f64,
    /// Adam implementation for the training workloads.
    #[arg(long, value_enum, default_value_t)]
    pub adam: AdamImpl,
    /// Checkpoint for `predict`.
    #[arg(long, default_value = checkpoint::DEFAULT_CHECKPOINT)]
    pub checkpoint: PathBuf,
    /// The sentence `predict` classifies.
    #[arg(long, default_value = "The acting was great, but the plot was far too long.")]
    pub sentence: String,
    /// Scale the medium workload down (tests): batch, seq, input and hidden divided by this
    /// (1 to 32).
    #[arg(long, default_value_t = 1)]
    pub shrink: i64,
    /// Device: cpu, cuda, cuda:N, mps or auto. On CUDA every repetition is synchronized.
    #[arg(long, default_value = "cpu")]
    pub device: DeviceSpec,
    /// `text`: train on this file (any `train --train` format, all of it) instead of the sample
    /// data; it is loaded and encoded once, untimed, so a repetition is one training epoch.
    #[arg(long, value_name = "PATH")]
    pub data: Option<PathBuf>,
    /// `text`: length-bucketed batches (`train --bucket`).
    #[arg(long)]
    pub bucket: bool,
    /// `text`: a bidirectional LSTM (`train --bidirectional`).
    #[arg(long)]
    pub bidirectional: bool,
}

impl BenchArgs {
    /// `--pause-ms` as a duration.
    fn pause(&self) -> Duration {
        Duration::from_secs_f64(self.pause_ms / 1e3)
    }
}

/// What `lstm-tch bench` prints.
#[derive(Debug, Serialize)]
pub struct BenchResult {
    /// The workload.
    pub workload: Workload,
    /// Threads used.
    pub threads: usize,
    /// Where it ran: `cpu`, `cuda:N` or `mps`.
    pub device: String,
    /// Milliseconds of each timed repetition.
    pub times_ms: Vec<f64>,
    /// Items (texts) per repetition, for throughputs.
    pub items: usize,
    /// Floating-point operations per repetition (the LSTM's matrix products), where counted.
    pub flops: Option<f64>,
}

/// Runs the benchmark `args` describes.
pub fn run(args: &BenchArgs) -> Result<BenchResult> {
    checks::at_least_one("--reps", args.reps)?;
    ensure!(
        (0.0..=60_000.0).contains(&args.pause_ms),
        "--pause-ms must be between 0 and 60000, got {}",
        args.pause_ms
    );
    checks::at_least_one("--shrink", args.shrink)?;
    // The medium workload's smallest size is its input width, 32: past that a size would be 0.
    ensure!(args.shrink <= 32, "--shrink must be at most 32, got {}", args.shrink);
    set_threads(Some(args.threads))?;
    let device = args.device.resolve()?;
    let (times_ms, items, flops) = match args.workload {
        Workload::Article => {
            let c = ArticleConfig::default();
            training_steps(args, device, c.model_config(), c.batch_size, c.seq_len)?
        }
        Workload::Medium => {
            let s = args.shrink;
            let recurrent = RecurrentConfig {
                input_size: 32 / s,
                hidden_size: 256 / s,
                num_layers: 2,
                ..Default::default()
            };
            let config = SequenceClassifierConfig { recurrent, output_size: 2 };
            training_steps(args, device, config, 64 / s, 50 / s)?
        }
        Workload::Text => text_epochs(args, device)?,
        Workload::Predict => predictions(args, device)?,
    };
    let device = match device {
        Device::Cuda(index) => format!("cuda:{index}"),
        Device::Mps => "mps".to_owned(),
        _ => "cpu".to_owned(),
    };
    Ok(BenchResult { workload: args.workload, threads: args.threads, device, times_ms, items, flops })
}

/// Waits for `device`'s queued work (`torch.cuda.synchronize()`); nothing on the CPU.
fn synchronize(device: Device) {
    if let Device::Cuda(index) = device {
        tch::Cuda::synchronize(index as i64);
    }
}

/// `warmup` untimed runs of `body`, then the milliseconds of `reps` timed ones, each ended by
/// [`synchronize`] on `device` and each after an untimed sleep of `pause` (none for zero).
fn time_reps(
    device: Device,
    warmup: usize,
    reps: usize,
    pause: Duration,
    mut body: impl FnMut() -> Result<()>,
) -> Result<Vec<f64>> {
    for _ in 0..warmup {
        body()?;
    }
    synchronize(device);
    (0..reps)
        .map(|_| {
            if !pause.is_zero() {
                thread::sleep(pause);
            }
            let start = Instant::now();
            body()?;
            synchronize(device);
            Ok(start.elapsed().as_secs_f64() * 1e3)
        })
        .collect()
}

/// Matrix-product FLOPs of one LSTM training step: per layer and time step the products
/// x·W_ih (4H × in) and h·W_hh (4H × H), 2 FLOPs per multiply-add, and backward ≈ 2 × forward.
pub fn lstm_training_flops(config: &SequenceClassifierConfig, batch: i64, seq_len: i64) -> f64 {
    let layer = &config.recurrent;
    let h = layer.hidden_size as f64;
    let forward: f64 = (0..layer.num_layers)
        .map(|layer_index| {
            let input = if layer_index == 0 { layer.input_size as f64 } else { h };
            2.0 * batch as f64 * 4.0 * h * (input + h) * seq_len as f64
        })
        .sum();
    3.0 * forward
}

fn training_steps(
    args: &BenchArgs,
    device: Device,
    config: SequenceClassifierConfig,
    batch: i64,
    seq_len: i64,
) -> Result<(Vec<f64>, usize, Option<f64>)> {
    tch::manual_seed(0);
    let inputs = Tensor::f_randn([batch, seq_len, config.recurrent.input_size], (Kind::Float, Device::Cpu))?
        .f_to_device(device)?;
    let labels = Tensor::from_slice(&(0..batch).map(|i| i % config.output_size).collect::<Vec<_>>())
        .f_to_device(device)?;
    let mut vs = nn::VarStore::new(Device::Cpu);
    let model = SequenceClassifier::new(&vs.root(), config)?;
    vs.set_device(device);
    model.flatten_parameters()?;
    let mut optimizer = Adam::new(args.adam, &vs, AdamConfig::default())?;
    let times = time_reps(device, args.warmup, args.reps, args.pause(), || {
        let outputs = model.forward(&inputs)?;
        let loss = cross_entropy(&outputs, &labels)?;
        optimizer.backward_step(&loss)
    })?;
    Ok((times, batch as usize, Some(lstm_training_flops(&config, batch, seq_len))))
}

/// The training data of the `text` workload as `lstm-tch train` prepares it with its defaults:
/// loaded, tokenized, vocabulary built, encoded. Returns the data, the vocabulary size and the
/// number of classes.
fn prepare_text(path: &Path, defaults: &TrainConfig) -> Result<(Encoded, usize, usize)> {
    let train = crate::data::dataset::load(path, None, &Columns::default())?;
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
        defaults.truncate(),
    )?;
    Ok((data, vocab.len(), labels.len()))
}

/// One epoch of `train`'s default model (bidirectional with `--bidirectional`) on `data`, from
/// seed 0, on `device`: built on the CPU, moved, flattened, trained without dev evaluation.
fn text_epoch(
    args: &BenchArgs,
    device: Device,
    defaults: &TrainConfig,
    (data, vocab_size, classes): (&Encoded, usize, usize),
) -> Result<()> {
    tch::manual_seed(0);
    let mut vs = nn::VarStore::new(Device::Cpu);
    let mut config = defaults.model_config(vocab_size, classes);
    config.architecture.bidirectional |= args.bidirectional;
    let model = TextClassifier::new(&vs.root(), config)?;
    vs.set_device(device);
    model.flatten_parameters()?;
    let options = TrainOptions {
        epochs: 1,
        batch_size: defaults.batch_size,
        bucket: args.bucket,
        adam: args.adam,
        adam_config: AdamConfig::with_lr(defaults.lr),
        clip_grad_norm: None,
        class_weights: defaults.class_weights.weights(&data.labels, classes),
        device,
        progress: false,
        resumable: false,
    };
    train::fit(&model, &vs, data, None, &options, |_| Ok(()))?;
    Ok(())
}

fn text_epochs(args: &BenchArgs, device: Device) -> Result<(Vec<f64>, usize, Option<f64>)> {
    let defaults = TrainConfig::default();
    let Some(path) = &args.data else {
        // Everything `lstm-tch train` does for one epoch on the sample data, loading included.
        let path = sample_dir().join("train.tsv");
        let mut items = 0;
        let times = time_reps(device, args.warmup.min(1), args.reps, args.pause(), || {
            let (data, vocab_size, classes) = prepare_text(&path, &defaults)?;
            text_epoch(args, device, &defaults, (&data, vocab_size, classes))?;
            items = data.len();
            Ok(())
        })?;
        return Ok((times, items, None));
    };
    let (data, vocab_size, classes) = prepare_text(path, &defaults)?;
    if args.warmup > 0 {
        // Warm-up (CUDA context, cuDNN and cuBLAS handles, the caching allocator): one epoch
        // over the first 2,000 texts.
        let head = (0..data.len().min(2000)).map(|i| data.ids(i).to_vec()).collect::<Vec<_>>();
        let head = Encoded::from_ids(&head, data.labels[..head.len()].to_vec())?;
        text_epoch(args, device, &defaults, (&head, vocab_size, classes))?;
    }
    let times = time_reps(device, 0, args.reps, args.pause(), || {
        text_epoch(args, device, &defaults, (&data, vocab_size, classes))
    })?;
    Ok((times, data.len(), None))
}

fn predictions(args: &BenchArgs, device: Device) -> Result<(Vec<f64>, usize, Option<f64>)> {
    let ckpt = checkpoint::load(&args.checkpoint, device)?;
    let sentence = [args.sentence.clone()];
    let times = time_reps(device, args.warmup, args.reps, args.pause(), || {
        let probabilities = infer::probabilities(&ckpt, &sentence, device)?;
        ensure!(probabilities.len() == ckpt.labels.len(), "one row of probabilities expected");
        Ok(())
    })?;
    Ok((times, 1, None))
}
