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
//!
//! [`search`] is the experiment: for each cell (and the LSTM with a forget-gate bias of 1, as
//! practitioners initialise it), the longest length it learns as the budget of steps grows.

pub mod search;

pub use search::{run, Check, MemoryConfig, MemoryReport, MemoryRun, Reach};

use std::fmt;

use anyhow::{ensure, Result};
use serde::Serialize;
use tch::{nn, Device, Kind, Tensor};

use super::ModelSize;
use crate::runtime::checks;
use crate::{
    data::Encoded,
    infer,
    nn::{Cell, TextClassifier},
    train::{
        self,
        optim::{AdamConfig, AdamImpl},
        Observer, TrainOptions,
    },
};

/// A recurrent cell and how it starts: PyTorch's initialisation, or (LSTM only) that with the
/// forget gate's bias then set to `forget_bias` ([`crate::nn::init::set_forget_bias`]).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct CellInit {
    /// The cell.
    pub cell: Cell,
    /// The LSTM's forget-gate bias at initialisation; `None`: PyTorch's draws.
    pub forget_bias: Option<f64>,
}

impl CellInit {
    /// `cell` as PyTorch initialises it.
    pub fn pytorch(cell: Cell) -> Self {
        Self { cell, forget_bias: None }
    }
}

impl fmt::Display for CellInit {
    /// `lstm`, or `lstm, forget bias 1`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.forget_bias {
            None => write!(f, "{}", self.cell),
            Some(b) => write!(f, "{}, forget bias {b}", self.cell),
        }
    }
}

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

    /// Checks there is at least one noise token.
    pub fn validate(&self) -> Result<()> {
        checks::at_least_one("--noise-tokens", self.noise_tokens)
    }

    /// `n` sequences of `length` tokens with their labels, drawn from libtorch's default
    /// generator (seed it with `tch::manual_seed`): labels uniform on {0, 1}, then each
    /// sequence's marker `MARKERS[label]` followed by `length − 1` noise tokens. Built in place
    /// (8 bytes a token): the longest budgets draw a few hundred thousand sequences.
    pub fn generate(&self, length: usize, n: usize) -> Result<Encoded> {
        ensure!(length >= 1, "a sequence needs at least its marker: length must be at least 1");
        self.validate()?;
        let options = (Kind::Int64, Device::Cpu);
        let labels = Tensor::f_randint(2, [n as i64, 1], options)?;
        let noise =
            Tensor::f_randint_low(FIRST_NOISE, self.vocab_size(), [n as i64, length as i64 - 1], options)?;
        let markers = labels.f_add_scalar(MARKERS[0])?;
        let ids = Vec::<i64>::try_from(&Tensor::f_cat(&[markers, noise], 1)?.f_flatten(0, -1)?)?;
        Encoded::from_rows(ids, length, Vec::<i64>::try_from(&labels.f_flatten(0, -1)?)?)
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
    /// `length`, then builds the model with `init`: the same data for every cell of a seed.
    pub fn new(
        task: &MemoryTask,
        size: &ModelSize,
        training: &Training,
        init: CellInit,
        length: usize,
        seed: u64,
    ) -> Result<Self> {
        tch::manual_seed(seed as i64);
        let train = task.generate(length, training.train)?;
        let test = task.generate(length, training.test)?;
        let (vs, model) = size.build_init(init, task.vocab_size())?;
        Ok(Self { vs, model, train, test })
    }

    /// Trains the model for the budget; returns the mean loss of the last epoch.
    pub fn fit(&self, training: &Training) -> Result<f64> {
        let reports = train::fit(&self.model, &self.vs, &self.train, None, &training.options(), |_| Ok(()))?;
        Ok(reports.last().map_or(f64::NAN, |r| r.train_loss))
    }

    /// Trains the model for the budget with `observer` watching every step (and stopping the
    /// run when it has seen enough).
    pub fn fit_watched(&self, training: &Training, observer: &mut dyn Observer) -> Result<()> {
        train::fit_from(&self.model, &self.vs, &self.train, None, &training.options(), None, observer)?;
        Ok(())
    }

    /// The fraction of held-out sequences classified right.
    pub fn accuracy(&self) -> Result<f64> {
        let logits = infer::logits(&self.model, &self.test, 256, Device::Cpu)?;
        let predicted = Vec::<i64>::try_from(&logits.f_argmax(1, false)?)?;
        let right = predicted.iter().zip(&self.test.labels).filter(|(p, l)| p == l).count();
        Ok(right as f64 / self.test.len() as f64)
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
