//! Training and evaluation of the [`TextClassifier`].
//!
//! One epoch: `torch.randperm(n)` from the default generator orders the training texts (with
//! `bucket`, into length-bucketed batches: [`crate::data::batcher`]); each
//! batch runs forward (training mode), cross-entropy, `zero_grad`, `backward`, optional
//! gradient-norm clipping, and an Adam step — the order a PyTorch loop uses, so with dropout 0,
//! no clipping and `--adam pytorch` the losses equal `scripts/text_reference.py`'s, batch for
//! batch. Evaluation runs under `no_grad` in evaluation mode.

use std::time::Instant;

use anyhow::{ensure, Result};
use serde::{Deserialize, Serialize};
use tch::{nn, Device, Tensor};

use crate::{
    data::{Encoded, LabelSet},
    metrics::{Confusion, Metrics},
    model::weighted_cross_entropy,
    optim::{Adam, AdamConfig, AdamImpl},
    progress::Progress,
    text_model::TextClassifier,
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
    ensure!(options.batch_size >= 1, "--batch-size must be at least 1");
    ensure!(!train.is_empty(), "no training data");
    let mut optimizer = Adam::new(options.adam, vs, options.adam_config)?;
    let class_weights = options
        .class_weights
        .as_deref()
        .map(|w| Tensor::from_slice(w).f_to_device(options.device))
        .transpose()?;
    let num_batches = train.len().div_ceil(options.batch_size);
    let mut reports: Vec<EpochReport> = Vec::with_capacity(options.epochs);
    let mut best_accuracy = f64::NEG_INFINITY;
    for epoch in 1..=options.epochs {
        let started = Instant::now();
        let mut progress =
            Progress::new(num_batches, format!("epoch {epoch}/{}", options.epochs), options.progress);
        let batches = train.epoch_batches(options.batch_size, options.bucket)?;
        let mut batch_losses = Vec::with_capacity(num_batches);
        let mut loss_sum = 0.0;
        let mut seen = 0;
        for indices in &batches {
            let batch = train.batch(indices)?.to_device(options.device)?;
            let logits = model.forward(&batch.tokens, &batch.lengths, true)?;
            let loss = weighted_cross_entropy(&logits, &batch.labels, class_weights.as_ref())?;
            optimizer.backward_step_clip(&loss, options.clip_grad_norm)?;
            let loss = loss.f_double_value(&[])?;
            ensure!(
                loss.is_finite(),
                "the training loss became {loss} in epoch {epoch}; lower --lr or set --clip-grad-norm"
            );
            batch_losses.push(loss as f32);
            loss_sum += f64::from(loss as f32);
            seen += indices.len();
            progress.update(batch_losses.len(), loss_sum / batch_losses.len() as f64, seen);
        }
        progress.finish();
        let seconds = started.elapsed().as_secs_f64();
        let dev_metrics = match dev {
            Some((data, labels)) => {
                Some(evaluate(model, data, labels, options.batch_size.max(256), options.device)?)
            }
            None => None,
        };
        let accuracy = dev_metrics.as_ref().map_or(epoch as f64, |m| m.accuracy);
        let best = accuracy > best_accuracy;
        best_accuracy = best_accuracy.max(accuracy);
        let report = EpochReport {
            epoch,
            train_loss: loss_sum / batch_losses.len() as f64,
            batch_losses,
            dev: dev_metrics,
            seconds,
            texts_per_second: train.len() as f64 / seconds.max(1e-9),
            best,
        };
        on_epoch(&report)?;
        reports.push(report);
    }
    Ok(reports)
}

/// Logits [n, num_classes] of every text in `data`, in order, computed in batches of
/// `batch_size` under `no_grad` in evaluation mode; returned on the CPU.
pub fn logits(model: &TextClassifier, data: &Encoded, batch_size: usize, device: Device) -> Result<Tensor> {
    ensure!(batch_size >= 1, "--batch-size must be at least 1");
    let order = data.order(false)?;
    tch::no_grad(|| {
        let parts = order
            .chunks(batch_size)
            .map(|indices| {
                let batch = data.batch(indices)?.to_device(device)?;
                Ok(model.forward(&batch.tokens, &batch.lengths, false)?.f_to_device(Device::Cpu)?)
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Tensor::f_cat(&parts, 0)?)
    })
}

/// Accuracy, per-class metrics and confusion matrix of `model` on `data`.
pub fn evaluate(
    model: &TextClassifier,
    data: &Encoded,
    labels: &LabelSet,
    batch_size: usize,
    device: Device,
) -> Result<Metrics> {
    let predictions = Vec::<i64>::try_from(&logits(model, data, batch_size, device)?.f_argmax(1, false)?)?;
    let mut confusion = Confusion::new(labels.names());
    for (&truth, &predicted) in data.labels.iter().zip(&predictions) {
        confusion.add(truth as usize, predicted as usize);
    }
    Ok(confusion.metrics())
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
