//! Training and evaluation of the [`TextClassifier`].
//!
//! One epoch: `torch.randperm(n)` from the default generator orders the training texts (with
//! `bucket`, into length-bucketed batches: [`crate::data::batcher`]); each
//! batch runs forward (training mode), cross-entropy, `zero_grad`, `backward`, optional
//! gradient-norm clipping, and an Adam step — the order a PyTorch loop uses, so with dropout 0,
//! no clipping and `--adam pytorch` the losses equal `scripts/text_reference.py`'s, batch for
//! batch. Evaluation runs under `no_grad` in evaluation mode.

use anyhow::Result;
use serde::{Deserialize, Serialize};
use tch::{nn, Device, Tensor};

use super::{
    fit_loop::FitLoop,
    optim::{Adam, AdamConfig, AdamImpl, AdamState},
};
use crate::{
    data::{Encoded, LabelSet},
    dist::Replica,
    infer::metrics::Metrics,
    nn::TextClassifier,
};

/// How to train.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainOptions {
    /// Passes over the training data.
    pub epochs: usize,
    /// Texts per batch.
    pub batch_size: usize,
    /// Batch texts of similar length together ([`Encoded::epoch_batches`]).
    pub bucket: bool,
    /// Adam implementation.
    pub adam: AdamImpl,
    /// Adam's hyperparameters.
    pub adam_config: AdamConfig,
    /// Clip the gradients' joint L2 norm to this before each step.
    pub clip_grad_norm: Option<f64>,
    /// Per-class weights of the loss (`nn.CrossEntropyLoss(weight=...)`), one per class.
    pub class_weights: Option<Vec<f32>>,
    /// Where the model lives.
    pub device: Device,
    /// Draw a progress bar (when stderr is a terminal).
    pub progress: bool,
    /// Record the generator state each epoch draws its batch order from, so that a
    /// [`Snapshot`] taken mid-epoch can be resumed ([`Snapshot::epoch_rng`]).
    pub resumable: bool,
}

/// Which weights the loss gives each class.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClassWeights {
    /// Every text counts the same.
    #[default]
    None,
    /// Each class counts the same in all (scikit-learn's "balanced"): class c weighs
    /// n / (classes × n_c), so a minority class is not drowned out.
    Balanced,
}

impl ClassWeights {
    /// The weights for training `labels` (class indices in 0..num_classes), or `None` for equal
    /// weights. A class without texts gets weight 0.
    pub fn weights(self, labels: &[i64], num_classes: usize) -> Option<Vec<f32>> {
        match self {
            ClassWeights::None => None,
            ClassWeights::Balanced => {
                let mut counts = vec![0usize; num_classes];
                for &l in labels {
                    counts[l as usize] += 1;
                }
                let n = labels.len() as f64;
                let k = num_classes as f64;
                Some(counts.iter().map(|&c| if c == 0 { 0.0 } else { (n / (k * c as f64)) as f32 }).collect())
            }
        }
    }
}

/// What one epoch did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochReport {
    /// 1-based epoch number.
    pub epoch: usize,
    /// Mean training loss over the epoch's batches.
    pub train_loss: f64,
    /// The loss of every batch, in order.
    pub batch_losses: Vec<f32>,
    /// Metrics on the dev data after the epoch.
    pub dev: Option<Metrics>,
    /// Wall-clock seconds of the epoch's training (evaluation excluded).
    pub seconds: f64,
    /// Training texts per second.
    pub texts_per_second: f64,
    /// Whether this epoch is the best on dev so far (and so was saved).
    pub best: bool,
    /// In a data-parallel run, every batch's loss on every rank (`[batch][rank]`; rank 0's are
    /// `batch_losses`, and `train_loss` their mean over all ranks); empty in one process.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rank_losses: Vec<Vec<f32>>,
}

/// Where a training run stands between two batches: with the optimizer's state and the
/// generators' states, what a resumed run restores to continue with the same bits.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Position {
    /// Batches of the current epoch finished.
    pub batches_done: usize,
    /// Their losses, in order.
    pub batch_losses: Vec<f32>,
    /// Their texts.
    pub texts_seen: usize,
    /// Training seconds of the current epoch so far.
    pub seconds: f64,
    /// In a data-parallel run, every rank's loss of the batches done (`[batch][rank]`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rank_losses: Vec<Vec<f32>>,
    /// The finished epochs' reports.
    pub reports: Vec<EpochReport>,
}

impl Position {
    /// Epochs finished.
    pub fn epochs_done(&self) -> usize {
        self.reports.len()
    }

    /// What the best epoch so far scored: its dev accuracy (without dev data, its number, so
    /// the last epoch is the best); `None` before the first epoch ends.
    pub(super) fn best_score(&self) -> Option<f64> {
        let best = self.reports.iter().rev().find(|r| r.best)?;
        Some(best.dev.as_ref().map_or(best.epoch as f64, |m| m.accuracy))
    }
}

/// What an [`Observer`] wants after a batch or an epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// Go on training.
    Continue,
    /// Stop here (the observer has saved what it needs); [`fit_from`] returns at once.
    Stop,
}

/// The run between two batches, as an [`Observer`] sees it.
pub struct Snapshot<'a> {
    /// Where the run stands.
    pub position: &'a Position,
    /// The optimizer, whose [`Adam::state`] a resumed run restores.
    pub optimizer: &'a Adam,
    /// Mid-epoch: the CPU generator's state from before the epoch drew its batch order (a
    /// resumed run redraws the order from it); `None` at an epoch's end, or when
    /// [`TrainOptions::resumable`] is off, or in a data-parallel run (whose order comes from the
    /// sampler's own generator).
    pub epoch_rng: Option<&'a Tensor>,
    /// Batches in the current epoch.
    pub epoch_batches: usize,
    /// Whether the run is asked to stop here ([`Observer::stop_requested`]; in a data-parallel
    /// run, asked on any rank, as all agreed after this batch).
    pub stop_requested: bool,
}

/// Watches [`fit_from`]: the place to print progress, save checkpoints and the training state,
/// and stop.
pub trait Observer {
    /// Whether the run should stop (say, on Ctrl-C): asked after every batch, its answer passed
    /// back as [`Snapshot::stop_requested`] (agreed between the ranks of a data-parallel run).
    fn stop_requested(&self) -> bool {
        false
    }

    /// After every training batch (before the epoch's dev evaluation for its last one).
    fn after_batch(&mut self, snapshot: &Snapshot<'_>) -> Result<Flow> {
        let _ = snapshot;
        Ok(Flow::Continue)
    }

    /// After every epoch, once its dev metrics are known; `snapshot.position` already counts it.
    fn after_epoch(&mut self, report: &EpochReport, snapshot: &Snapshot<'_>) -> Result<Flow>;
}

/// A closure receiving each epoch's report is an observer that never stops the run.
impl<F: FnMut(&EpochReport) -> Result<()>> Observer for F {
    fn after_epoch(&mut self, report: &EpochReport, _: &Snapshot<'_>) -> Result<Flow> {
        self(report)?;
        Ok(Flow::Continue)
    }
}

/// What a resumed run starts from: a [`Snapshot`] as it was saved.
#[derive(Debug)]
pub struct Resume {
    /// Where the run stood.
    pub position: Position,
    /// The optimizer's state ([`Adam::state`]).
    pub adam: AdamState,
    /// [`Snapshot::epoch_rng`] (needed mid-epoch).
    pub epoch_rng: Option<Tensor>,
    /// The default generators' states when the snapshot was taken: the CPU's and, on CUDA, the
    /// device's ([`crate::runtime::rng::generator_state`]).
    pub generators: Vec<(Device, Tensor)>,
}

/// How [`fit_from`] ended.
#[derive(Debug)]
pub struct FitOutcome {
    /// The reports of every finished epoch (resumed ones included).
    pub reports: Vec<EpochReport>,
    /// Whether the observer stopped the run before its last epoch ended.
    pub stopped: bool,
}

/// Trains `model` (whose variables are `vs`) on `train`, evaluating on `dev` after every
/// epoch. `on_epoch` receives each epoch's report once its dev metrics are known — the place to
/// print a summary line and to save the best checkpoint. The best epoch is the one with the
/// highest dev accuracy (the first of equals); without dev data, the last epoch.
pub fn fit(
    model: &TextClassifier,
    vs: &nn::VarStore,
    train: &Encoded,
    dev: Option<(&Encoded, &LabelSet)>,
    options: &TrainOptions,
    mut on_epoch: impl FnMut(&EpochReport) -> Result<()>,
) -> Result<Vec<EpochReport>> {
    Ok(fit_from(model, vs, train, dev, options, None, &mut on_epoch)?.reports)
}

/// [`fit`], from the start or from a [`Resume`], with an [`Observer`] that sees every batch and
/// may stop the run. A run resumed from a snapshot of another run with the same data, model
/// and options computes what that run computed after the snapshot, bit for bit.
pub fn fit_from(
    model: &TextClassifier,
    vs: &nn::VarStore,
    train: &Encoded,
    dev: Option<(&Encoded, &LabelSet)>,
    options: &TrainOptions,
    resume: Option<Resume>,
    observer: &mut dyn Observer,
) -> Result<FitOutcome> {
    FitLoop::start(model, vs, train, dev, options, resume, None)?.run(observer)
}

/// [`fit_from`] as one rank of a data-parallel run: each epoch trains on this rank's shard
/// ([`Replica::epoch_batches`]), gradients averaged across the ranks by DDP, every rank's loss
/// recorded and the ranks agreeing after each batch whether to stop; the dev data is evaluated
/// on every rank (the same weights: the same metrics). With one rank of one, the batches are a
/// `DistributedSampler`'s, not [`fit_from`]'s.
#[allow(clippy::too_many_arguments)]
pub fn fit_replica(
    model: &TextClassifier,
    vs: &nn::VarStore,
    train: &Encoded,
    dev: Option<(&Encoded, &LabelSet)>,
    options: &TrainOptions,
    resume: Option<Resume>,
    observer: &mut dyn Observer,
    replica: &Replica,
) -> Result<FitOutcome> {
    FitLoop::start(model, vs, train, dev, options, resume, Some(replica))?.run(observer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn balanced_weights_make_every_class_count_the_same() {
        let labels = [0, 0, 0, 1, 2, 2];
        let w = ClassWeights::Balanced.weights(&labels, 4).unwrap();
        assert_eq!(w, [6.0 / 12.0, 6.0 / 4.0, 6.0 / 8.0, 0.0]);
        // Each present class's total weight is n / classes.
        for (class, count) in [(0, 3.0), (1, 1.0), (2, 2.0)] {
            assert!((w[class] * count - 1.5f32).abs() < 1e-6);
        }
        assert_eq!(ClassWeights::None.weights(&labels, 4), None);
    }
}
