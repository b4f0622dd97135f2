//! `lstm-tch claims gradients|memory|speed`: the article's claims about LSTMs, measured (the
//! experiments are in [`crate::claims`]).

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};

use crate::{
    lab::claims::{
        gradients::{self, GradientsConfig},
        memory::{self, CellInit, MemoryConfig, MemoryTask, Training},
        speed::{self, SpeedConfig},
        ModelSize, CELLS,
    },
    lab::plot::Typeface,
    nn::Cell,
    runtime::device::set_threads,
};

/// `lstm-tch claims`: one experiment, its figure (PNG) and numbers (JSON) written to `--out`.
#[derive(Debug, Clone, Args)]
pub struct ClaimsArgs {
    /// The experiment.
    #[command(subcommand)]
    pub experiment: Experiment,
    /// Directory for the figure(s) and the JSON (created if missing).
    #[arg(long, global = true, default_value = "runs/claims")]
    pub out: PathBuf,
    /// libtorch intra-op threads.
    #[arg(long, global = true, default_value_t = 1)]
    pub threads: usize,
    /// The cells compared, comma-separated.
    #[arg(long, global = true, value_enum, value_delimiter = ',', default_values_t = CELLS)]
    pub cells: Vec<Cell>,
    /// Font file for the figures' text; without it, a system font or the built-in bitmap font.
    #[arg(long, global = true, value_name = "PATH")]
    pub font: Option<PathBuf>,
}

/// The three experiments.
#[derive(Debug, Clone, Subcommand)]
pub enum Experiment {
    /// ‖∂loss/∂x_t‖ against the distance from the last step, at initialisation and trained on
    /// the memory task: gradients.png, gradients.json.
    Gradients(GradientsArgs),
    /// Accuracy on "the label is the first token, then noise" against sequence length:
    /// memory.png, memory.json.
    Memory(MemoryArgs),
    /// Training-step time against sequence length and batch size: speed.png, speed-batch.png,
    /// speed.json.
    Speed(SpeedArgs),
}

/// The memory task, the model and how it trains (shared by `memory` and `gradients`).
#[derive(Debug, Clone, Args)]
pub struct TaskArgs {
    /// Seeds (data and initialisation), comma-separated: one run per seed.
    #[arg(long, value_delimiter = ',', default_values_t = [0u64, 1, 2])]
    pub seeds: Vec<u64>,
    /// Distinct noise tokens after the marker.
    #[arg(long, default_value_t = 8)]
    pub noise_tokens: i64,
    /// Embedding width.
    #[arg(long, default_value_t = 16)]
    pub embedding_dim: i64,
    /// Hidden size of the single unidirectional recurrent layer.
    #[arg(long, default_value_t = 32)]
    pub hidden_size: i64,
    /// Held-out sequences per run.
    #[arg(long, default_value_t = 1000)]
    pub test: usize,
    /// Sequences per batch.
    #[arg(long, default_value_t = 50)]
    pub batch_size: usize,
    /// Adam learning rate.
    #[arg(long, default_value_t = 0.01)]
    pub lr: f64,
    /// Clip the gradients' joint L2 norm to this before each step.
    #[arg(long, default_value_t = 1.0)]
    pub clip_grad_norm: f64,
}

impl TaskArgs {
    fn task(&self) -> MemoryTask {
        MemoryTask { noise_tokens: self.noise_tokens }
    }

    fn size(&self) -> ModelSize {
        ModelSize { embedding_dim: self.embedding_dim, hidden_size: self.hidden_size }
    }

    /// The training of one run: `epochs` passes over `train` sequences.
    fn training(&self, train: usize, epochs: usize) -> Training {
        Training {
            train,
            test: self.test,
            batch_size: self.batch_size,
            epochs,
            lr: self.lr,
            clip_grad_norm: self.clip_grad_norm,
        }
    }
}

/// `claims gradients`.
#[derive(Debug, Clone, Args)]
pub struct GradientsArgs {
    /// Length T of the probe sequences whose gradients are measured (marker included).
    #[arg(long, default_value_t = 200)]
    pub length: usize,
    /// Length of the memory-task sequences the models are trained on.
    #[arg(long, default_value_t = 30)]
    pub train_length: usize,
    /// Probe sequences (drawn after the training data) whose gradients are averaged.
    #[arg(long, default_value_t = 100)]
    pub probe: usize,
    /// Distances whose norm ratio to distance 0 the JSON lists, comma-separated (those below
    /// --length; the others have no such time step).
    #[arg(long, value_delimiter = ',', default_values_t = [10usize, 25, 50, 100, 199])]
    pub distances: Vec<usize>,
    /// Training sequences per run (fresh ones: by default each is seen once, so a model cannot
    /// pass by memorising the noise of a small training set).
    #[arg(long, default_value_t = 30000)]
    pub train: usize,
    /// Passes over the training sequences: the budget is epochs × ⌈train / batch⌉ Adam steps.
    #[arg(long, default_value_t = 1)]
    pub epochs: usize,
    #[command(flatten)]
    pub task: TaskArgs,
}

impl GradientsArgs {
    /// The experiment these flags ask for, comparing `cells`.
    fn config(&self, cells: &[Cell]) -> GradientsConfig {
        GradientsConfig {
            cells: cells.to_vec(),
            length: self.length,
            train_length: self.train_length,
            seeds: self.task.seeds.clone(),
            probe: self.probe,
            task: self.task.task(),
            size: self.task.size(),
            training: self.task.training(self.train, self.epochs),
            distances: self.distances.clone(),
        }
    }
}

/// `claims memory`.
#[derive(Debug, Clone, Args)]
pub struct MemoryArgs {
    /// Sequence lengths (marker included) tried in this order, comma-separated, increasing: a
    /// cell's search stops at the first one fewer than half the seeds solve within the last
    /// budget.
    #[arg(long, value_delimiter = ',', default_values_t = [10usize, 20, 30, 50, 75, 100, 150, 200, 300, 400])]
    pub lengths: Vec<usize>,
    /// Adam steps after which held-out accuracy is measured, comma-separated, increasing; the
    /// last is each run's budget (one pass over that many batches of fresh sequences).
    #[arg(long, value_delimiter = ',', default_values_t = [600usize, 1200, 2400, 4800])]
    pub budgets: Vec<usize>,
    /// The held-out accuracy that counts as solved (on every seed).
    #[arg(long, default_value_t = 0.95)]
    pub solved_accuracy: f64,
    /// Forget-gate biases: each adds, after the LSTM, the LSTM with its forget gate's bias set to
    /// B after PyTorch's initialisation (`train --forget-bias B`); the flag alone: none.
    #[arg(long, value_delimiter = ',', num_args = 0.., default_values_t = [1.0f64])]
    pub lstm_forget_bias: Vec<f64>,
    #[command(flatten)]
    pub task: TaskArgs,
}

impl MemoryArgs {
    /// The experiment these flags ask for, comparing `cells` (each LSTM followed by its
    /// forget-bias variants); every run trains on one pass over as many fresh sequences as its
    /// last budget needs.
    fn config(&self, cells: &[Cell]) -> MemoryConfig {
        let inits = cells
            .iter()
            .flat_map(|&cell| {
                let biases: &[f64] = if cell == Cell::Lstm { &self.lstm_forget_bias } else { &[] };
                std::iter::once(CellInit::pytorch(cell))
                    .chain(biases.iter().map(move |&b| CellInit { cell, forget_bias: Some(b) }))
            })
            .collect();
        let max_steps = self.budgets.iter().copied().max().unwrap_or(0);
        let training = self.task.training(MemoryConfig::sequences_needed(max_steps, self.task.batch_size), 1);
        MemoryConfig {
            inits,
            lengths: self.lengths.clone(),
            budgets: self.budgets.clone(),
            solved_accuracy: self.solved_accuracy,
            seeds: self.task.seeds.clone(),
            task: self.task.task(),
            size: self.task.size(),
            training,
        }
    }
}

/// `claims speed`.
#[derive(Debug, Clone, Args)]
pub struct SpeedArgs {
    /// Sequence lengths of the length sweep, comma-separated.
    #[arg(long, value_delimiter = ',', default_values_t = [25usize, 50, 100, 200, 400])]
    pub lengths: Vec<usize>,
    /// Batch size of the length sweep.
    #[arg(long, default_value_t = 32)]
    pub batch_size: usize,
    /// Batch sizes of the batch sweep, comma-separated.
    #[arg(long, value_delimiter = ',', default_values_t = [8usize, 16, 32, 64, 128, 256])]
    pub batch_sizes: Vec<usize>,
    /// Sequence length of the batch sweep.
    #[arg(long, default_value_t = 100)]
    pub length: usize,
    /// Embedding width (`train`'s default).
    #[arg(long, default_value_t = 128)]
    pub embedding_dim: i64,
    /// Hidden size of the single unidirectional layer.
    #[arg(long, default_value_t = 64)]
    pub hidden_size: i64,
    /// Untimed steps before each point.
    #[arg(long, default_value_t = 3)]
    pub warmup: usize,
    /// Timed steps per point; the median is reported.
    #[arg(long, default_value_t = 15)]
    pub repeats: usize,
    /// Seed of the model and the data.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

impl SpeedArgs {
    /// The experiment these flags ask for, comparing `cells`.
    fn config(&self, cells: &[Cell]) -> SpeedConfig {
        SpeedConfig {
            cells: cells.to_vec(),
            lengths: self.lengths.clone(),
            batch_size: self.batch_size,
            batch_sizes: self.batch_sizes.clone(),
            length: self.length,
            size: ModelSize { embedding_dim: self.embedding_dim, hidden_size: self.hidden_size },
            warmup: self.warmup,
            repeats: self.repeats,
            seed: self.seed,
        }
    }
}

/// Runs `lstm-tch claims EXPERIMENT` on the CPU and prints where it wrote its files.
pub fn claims(args: &ClaimsArgs) -> Result<()> {
    set_threads(Some(args.threads))?;
    anyhow::ensure!(!args.cells.is_empty(), "--cells needs at least one cell");
    let face = Typeface::find(args.font.as_deref())?;
    let out = &args.out;
    // Every size is checked before the directory is made or any model trained.
    let written: &[&str] = match &args.experiment {
        Experiment::Gradients(a) => {
            let config = a.config(&args.cells);
            config.validate()?;
            create(out)?;
            gradients::run(&config, out, &face)?;
            &["gradients.png", "gradients.json"]
        }
        Experiment::Memory(a) => {
            let config = a.config(&args.cells);
            config.validate()?;
            create(out)?;
            let report = memory::run(&config, out, &face)?;
            println!("{}\n{}", report.reach_table(), report.runs_table());
            &["memory.png", "memory.json"]
        }
        Experiment::Speed(a) => {
            let config = a.config(&args.cells);
            config.validate()?;
            create(out)?;
            speed::run(&config, out, &face)?;
            &["speed.png", "speed-batch.png", "speed.json"]
        }
    };
    for name in written {
        println!("{}", out.join(name).display());
    }
    eprintln!("font: {}", face.describe());
    Ok(())
}

/// Creates the output directory.
fn create(out: &std::path::Path) -> Result<()> {
    std::fs::create_dir_all(out)
        .with_context(|| format!("cannot create the output directory {}", out.display()))
}
