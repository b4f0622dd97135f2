//! Memory over distance: a synthetic task whose label is its first token, followed by noise.
//!
//! A sequence of length L is a marker, `A` (label 0) or `B` (label 1), then L − 1 tokens drawn
//! uniformly from `noise_tokens` noise tokens. The classifier reads the final hidden state, so
//! to answer it must carry one bit across L − 1 steps of distraction: the article's claim that
//! an LSTM "does better than a plain RNN on longer sequences", put to a test. Each run trains a
//! fresh model with [`crate::train::fit`] for a fixed budget of Adam steps and reports its
//! accuracy on held-out sequences; chance is 50 %. The `lstm-tch claims` defaults train on one
//! pass over fresh sequences: on a small training set seen for many epochs, a gated cell learns
//! the noise of each sequence by heart (train loss 0.16, held-out accuracy 0.51 for the LSTM at
//! L = 50 on 2,000 sequences for 25 epochs) instead of the marker.

use std::{path::Path, time::Instant};

use anyhow::{ensure, Result};
use serde::Serialize;
use tch::{nn, Device, Kind, Tensor};

use super::{check_list, note, start, summary, Figure, Machine, ModelSize};
use crate::runtime::checks;
use crate::{
    data::Encoded,
    infer,
    lab::plot::{Series, Typeface},
    nn::{Cell, TextClassifier},
    train::{
        self,
        optim::{AdamConfig, AdamImpl},
        TrainOptions,
    },
};

/// The two markers' token ids: `A` (label 0) and `B` (label 1). 0 is `<pad>`, 1 `<unk>` (unused).
pub const MARKERS: [i64; 2] = [2, 3];
/// The first noise token's id; the noise tokens are `FIRST_NOISE..FIRST_NOISE + noise_tokens`.
pub const FIRST_NOISE: i64 = 4;

/// The memory task's vocabulary.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct MemoryTask {
    /// How many distinct noise tokens follow the marker.
    pub noise_tokens: i64,
}

impl MemoryTask {
    /// Rows of the embedding: `<pad>`, `<unk>`, the two markers and the noise tokens.
    pub fn vocab_size(&self) -> i64 {
        FIRST_NOISE + self.noise_tokens
    }

    /// `n` sequences of `length` tokens with their labels, drawn from libtorch's default
    /// generator (seed it with `tch::manual_seed`): labels uniform on {0, 1}, then each
    /// sequence's marker `MARKERS[label]` followed by `length − 1` noise tokens.
    pub fn generate(&self, length: usize, n: usize) -> Result<Encoded> {
        ensure!(length >= 1, "a sequence needs at least its marker: length must be at least 1");
        checks::at_least_one("--noise-tokens", self.noise_tokens)?;
        let options = (Kind::Int64, Device::Cpu);
        let labels = Vec::<i64>::try_from(&Tensor::f_randint(2, [n as i64], options)?)?;
        let noise =
            Tensor::f_randint_low(FIRST_NOISE, self.vocab_size(), [n as i64, length as i64 - 1], options)?;
        let noise = Vec::<i64>::try_from(&noise.f_flatten(0, -1)?)?;
        let texts: Vec<Vec<i64>> = labels
            .iter()
            .enumerate()
            .map(|(i, &label)| {
                let row = &noise[i * (length - 1)..(i + 1) * (length - 1)];
                std::iter::once(MARKERS[label as usize]).chain(row.iter().copied()).collect()
            })
            .collect();
        Encoded::from_ids(&texts, labels)
    }
}

/// How each run trains: a fixed budget of `epochs` × ⌈`train` / `batch_size`⌉ Adam steps.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Training {
    /// Training sequences.
    pub train: usize,
    /// Held-out sequences the accuracy is measured on.
    pub test: usize,
    /// Sequences per batch.
    pub batch_size: usize,
    /// Passes over the training sequences.
    pub epochs: usize,
    /// Adam's learning rate (PyTorch's Adam, its other defaults).
    pub lr: f64,
    /// Gradient-norm clipping before each step (keeps the RNN from exploding).
    pub clip_grad_norm: f64,
}

impl Training {
    /// Checks the sizes and the learning rate.
    pub fn validate(&self) -> Result<()> {
        checks::at_least_one("--train", self.train)?;
        checks::at_least_one("--test", self.test)?;
        checks::batch_size(self.batch_size)?;
        ensure!(self.clip_grad_norm > 0.0, "--clip-grad-norm must be positive, got {}", self.clip_grad_norm);
        AdamConfig::with_lr(self.lr).validate()
    }

    /// Adam steps per run.
    pub fn steps(&self) -> usize {
        self.epochs * self.train.div_ceil(self.batch_size)
    }

    fn options(&self) -> TrainOptions {
        TrainOptions {
            epochs: self.epochs,
            batch_size: self.batch_size,
            bucket: false,
            adam: AdamImpl::Pytorch,
            adam_config: AdamConfig::with_lr(self.lr),
            clip_grad_norm: Some(self.clip_grad_norm),
            class_weights: None,
            device: Device::Cpu,
            progress: false,
            resumable: false,
        }
    }
}

/// One model on one draw of the task: built, then trained and tested.
#[derive(Debug)]
pub struct Trial {
    /// The model's variables.
    pub vs: nn::VarStore,
    /// The classifier.
    pub model: TextClassifier,
    /// Its training sequences.
    pub train: Encoded,
    /// Its held-out sequences.
    pub test: Encoded,
}

impl Trial {
    /// Seeds libtorch with `seed`, draws the training and then the held-out sequences of
    /// `length`, then builds the model with `cell`: the same data for every cell of a seed.
    pub fn new(
        task: &MemoryTask,
        size: &ModelSize,
        training: &Training,
        cell: Cell,
        length: usize,
        seed: u64,
    ) -> Result<Self> {
        tch::manual_seed(seed as i64);
        let train = task.generate(length, training.train)?;
        let test = task.generate(length, training.test)?;
        let (vs, model) = size.build(cell, task.vocab_size())?;
        Ok(Self { vs, model, train, test })
    }

    /// Trains the model for the budget; returns the mean loss of the last epoch.
    pub fn fit(&self, training: &Training) -> Result<f64> {
        let reports = train::fit(&self.model, &self.vs, &self.train, None, &training.options(), |_| Ok(()))?;
        Ok(reports.last().map_or(f64::NAN, |r| r.train_loss))
    }

    /// The fraction of held-out sequences classified right.
    pub fn accuracy(&self) -> Result<f64> {
        let logits = infer::logits(&self.model, &self.test, 256, Device::Cpu)?;
        let predicted = Vec::<i64>::try_from(&logits.f_argmax(1, false)?)?;
        let right = predicted.iter().zip(&self.test.labels).filter(|(p, l)| p == l).count();
        Ok(right as f64 / self.test.len() as f64)
    }
}

/// What `lstm-tch claims memory` runs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MemoryConfig {
    /// The cells compared.
    pub cells: Vec<Cell>,
    /// Sequence lengths (marker included), each at least 2.
    pub lengths: Vec<usize>,
    /// One run per seed, cell and length.
    pub seeds: Vec<u64>,
    /// The task's vocabulary.
    pub task: MemoryTask,
    /// The model's sizes.
    pub size: ModelSize,
    /// The training budget.
    pub training: Training,
}

/// One run's outcome.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MemoryRun {
    /// The cell.
    pub cell: Cell,
    /// The sequence length.
    pub length: usize,
    /// The seed of the data and the initialisation.
    pub seed: u64,
    /// Held-out accuracy after training.
    pub accuracy: f64,
    /// Mean training loss of the last epoch.
    pub final_loss: f64,
    /// Wall-clock seconds of the run.
    pub seconds: f64,
}

/// Accuracy over seeds for one cell and length.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MemoryPoint {
    /// The cell.
    pub cell: Cell,
    /// The sequence length.
    pub length: usize,
    /// Mean accuracy over the seeds.
    pub mean: f64,
    /// Lowest accuracy of a seed.
    pub min: f64,
    /// Highest accuracy of a seed.
    pub max: f64,
}

/// `memory.json`: the configuration, where it ran, every run and the summary per cell and length.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MemoryReport {
    /// Always "memory".
    pub experiment: &'static str,
    /// Where it ran.
    pub machine: Machine,
    /// What ran.
    pub config: MemoryConfig,
    /// Adam steps per run.
    pub steps_per_run: usize,
    /// Every run, by cell, then length, then seed.
    pub runs: Vec<MemoryRun>,
    /// Mean, min and max accuracy per cell and length.
    pub summary: Vec<MemoryPoint>,
}

impl MemoryConfig {
    /// Checks every size before any work.
    pub fn validate(&self) -> Result<()> {
        ensure!(!self.cells.is_empty(), "--cells needs at least one cell");
        check_list("lengths", &self.lengths, 2)?;
        ensure!(!self.seeds.is_empty(), "--seeds needs at least one seed");
        checks::at_least_one("--noise-tokens", self.task.noise_tokens)?;
        self.size.validate()?;
        self.training.validate()
    }
}

/// Runs the experiment: one trained model per cell, length and seed; writes `memory.json` and
/// `memory.png` (accuracy against length, mean over seeds with min–max bars) into `out`.
pub fn run(config: &MemoryConfig, out: &Path, face: &Typeface) -> Result<MemoryReport> {
    config.validate()?;
    let (machine, json) = start(out, "memory.json")?;
    let mut runs = vec![];
    for &cell in &config.cells {
        for &length in &config.lengths {
            for &seed in &config.seeds {
                runs.push(train_one(config, cell, length, seed)?);
            }
        }
    }
    let summary = summarise(config, &runs);
    figure(config, &machine, &summary).draw(out, face)?;
    let report = MemoryReport {
        experiment: "memory",
        machine,
        config: config.clone(),
        steps_per_run: config.training.steps(),
        runs,
        summary,
    };
    json.write(&report)?;
    Ok(report)
}

/// Trains and tests one model with `cell` on sequences of `length` drawn with `seed`.
fn train_one(config: &MemoryConfig, cell: Cell, length: usize, seed: u64) -> Result<MemoryRun> {
    let started = Instant::now();
    let trial = Trial::new(&config.task, &config.size, &config.training, cell, length, seed)?;
    let final_loss = trial.fit(&config.training)?;
    let accuracy = trial.accuracy()?;
    let seconds = started.elapsed().as_secs_f64();
    eprintln!("memory {cell} length {length} seed {seed}: accuracy {accuracy:.3} ({seconds:.1} s)");
    Ok(MemoryRun { cell, length, seed, accuracy, final_loss, seconds })
}

/// The accuracy over seeds per cell and length, in the config's order.
fn summarise(config: &MemoryConfig, runs: &[MemoryRun]) -> Vec<MemoryPoint> {
    config
        .cells
        .iter()
        .flat_map(|&cell| config.lengths.iter().map(move |&length| (cell, length)))
        .map(|(cell, length)| {
            let accuracies: Vec<f64> =
                runs.iter().filter(|r| r.cell == cell && r.length == length).map(|r| r.accuracy).collect();
            let (mean, min, max) = summary(&accuracies);
            MemoryPoint { cell, length, mean, min, max }
        })
        .collect()
}

/// `memory.png`: per cell, the mean accuracy against length with min–max bars.
fn figure(config: &MemoryConfig, machine: &Machine, summary: &[MemoryPoint]) -> Figure<'static> {
    let series: Vec<Series> = config
        .cells
        .iter()
        .map(|&cell| {
            let points: Vec<&MemoryPoint> = summary.iter().filter(|p| p.cell == cell).collect();
            Series {
                name: cell.to_string(),
                points: points.iter().map(|p| (p.length as f64, p.mean)).collect(),
                spread: points.iter().map(|p| (p.length as f64, p.min, p.max)).collect(),
            }
        })
        .collect();
    let t = &config.training;
    let title = format!(
        "Memory over distance: the label is the first token, then L-1 noise tokens (chance 0.5)\n{}; \
         {} train / {} test sequences, {} Adam steps per run, hidden {}; mean, min-max bars",
        note(machine, &config.seeds),
        t.train,
        t.test,
        t.steps(),
        config.size.hidden_size,
    );
    Figure {
        name: "memory.png",
        title,
        x_label: "sequence length L",
        y_label: "held-out accuracy",
        series,
        log_y: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn training_steps_are_epochs_times_batches() {
        let t = Training { train: 1000, test: 10, batch_size: 64, epochs: 3, lr: 0.01, clip_grad_norm: 1.0 };
        assert_eq!(t.steps(), 3 * 16);
        assert!(Training { lr: 0.0, ..t }.validate().is_err());
        assert!(Training { batch_size: 0, ..t }.validate().is_err());
    }
}
