//! Vanishing gradients: how much the loss at the end of a sequence feels the input `distance`
//! steps before it.
//!
//! For a probe batch of memory-task sequences ([`super::memory`]) of length T, the loss is the sum
//! over the batch of the cross-entropy of the classifier reading the final hidden state; x_t is
//! the embedded token at step t. ‖∂loss/∂x_t‖ (per sequence, averaged over the batch) is measured
//! against the distance T − 1 − t from the last step, at initialisation and after training on
//! the memory task (at its own length, which may be shorter than T: a model that learnt to keep
//! the first token over a few dozen steps), for each cell, averaged over seeds. A cell whose gradient decays
//! geometrically with distance cannot learn from what lies far back: the vanishing gradient the
//! article says the LSTM's gates ease.

use std::{path::Path, time::Instant};

use anyhow::{ensure, Result};
use serde::Serialize;
use tch::{Kind, Tensor};

use super::{
    memory::{CellInit, MemoryTask, Training, Trial},
    note, start, Figure, Machine, ModelSize,
};
use crate::runtime::checks;
use crate::{
    data::Encoded,
    lab::plot::{Series, Typeface},
    nn::Cell,
    nn::TextClassifier,
    nn::{cross_entropy, Pooling},
};

/// The norms ‖∂loss/∂x_t‖ for every step t of `tokens` [batch, T] (int64 ids, every sequence T
/// long, on the CPU) with `labels` [batch] (int64), averaged over the batch: T values, index t.
/// x_t [embedding_dim] is the embedded token; the loss is Σ over the batch of the cross-entropy
/// of the logits the model computes from the final hidden state (evaluation mode), so each
/// sequence's gradient is its own loss's. The model's parameters are left without gradients.
pub fn input_gradient_norms(model: &TextClassifier, tokens: &Tensor, labels: &Tensor) -> Result<Vec<f64>> {
    ensure!(tokens.dim() == 2, "expected tokens [batch, T], got {:?}", tokens.size());
    let (batch, steps) = (tokens.size()[0], tokens.size()[1]);
    ensure!(batch >= 1 && steps >= 1, "expected a non-empty batch, got {:?}", tokens.size());
    ensure!(labels.size() == [batch], "expected labels [{batch}], got {:?}", labels.size());
    let embedded = model.embed(tokens)?.f_detach()?.set_requires_grad(true);
    let lengths = Tensor::f_full([batch], steps, (Kind::Int64, tch::Device::Cpu))?;
    let classifier = model.classifier();
    let features = classifier.pooled_packed(&embedded, &lengths, false, Pooling::Last)?;
    let loss = cross_entropy(&classifier.classify(&features)?, labels)?.f_mul_scalar(batch)?;
    let grads = Tensor::f_run_backward(&[&loss], &[&embedded], false, false)?;
    let norms = grads[0]
        .f_to_kind(Kind::Double)?
        .f_norm_scalaropt_dim(2, [2i64].as_slice(), false)?
        .f_mean_dim([0i64].as_slice(), false, None::<Kind>)?;
    Ok(Vec::<f64>::try_from(&norms)?)
}

/// The first `n` sequences of `data` (all of one length) as tokens [n, T] and labels [n].
pub fn probe_batch(data: &Encoded, n: usize) -> Result<(Tensor, Tensor)> {
    ensure!(n >= 1 && n <= data.len(), "the probe batch needs 1..={} sequences, got {n}", data.len());
    let batch = data.batch(&(0..n).collect::<Vec<_>>())?;
    Ok((batch.tokens, batch.labels))
}

/// What `lstm-tch claims gradients` runs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GradientsConfig {
    /// The cells compared.
    pub cells: Vec<Cell>,
    /// The probe sequences' length T (marker included).
    pub length: usize,
    /// The length of the memory-task sequences the models are trained on.
    pub train_length: usize,
    /// One model per seed and cell; the curves are their means.
    pub seeds: Vec<u64>,
    /// Held-out sequences whose gradients are measured (the probe batch).
    pub probe: usize,
    /// The memory task the models are trained on.
    pub task: MemoryTask,
    /// The model's sizes.
    pub size: ModelSize,
    /// The training between the two measurements.
    pub training: Training,
    /// Distances whose norm ratio to distance 0 the report lists.
    pub distances: Vec<usize>,
}

impl GradientsConfig {
    /// Checks every size before any work.
    pub fn validate(&self) -> Result<()> {
        ensure!(!self.cells.is_empty(), "--cells needs at least one cell");
        ensure!(self.length >= 2, "--length must be at least 2, got {}", self.length);
        ensure!(self.train_length >= 2, "--train-length must be at least 2, got {}", self.train_length);
        ensure!(!self.seeds.is_empty(), "--seeds needs at least one seed");
        checks::at_least_one("--probe", self.probe)?;
        self.size.validate()?;
        self.training.validate()
    }
}

/// One cell's curves: the norm at each distance 0..T, at initialisation and trained.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CellGradients {
    /// The cell.
    pub cell: Cell,
    /// Geometric mean over seeds of ‖∂loss/∂x_t‖ at distance d = T − 1 − t, index d, before
    /// training.
    pub init: Vec<f64>,
    /// The same after training.
    pub trained: Vec<f64>,
    /// `init[d] / init[0]` for each of the config's distances below T, as `(d, ratio)`.
    pub init_ratios: Vec<(usize, f64)>,
    /// `trained[d] / trained[0]` likewise.
    pub trained_ratios: Vec<(usize, f64)>,
    /// Held-out accuracy of the trained models on the training length, per seed.
    pub accuracy: Vec<f64>,
    /// Per seed, the curves before and after training (index d).
    pub per_seed: Vec<SeedGradients>,
}

/// One seed's curves for one cell.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SeedGradients {
    /// The seed.
    pub seed: u64,
    /// Norms before training, index d.
    pub init: Vec<f64>,
    /// Norms after training, index d.
    pub trained: Vec<f64>,
}

/// `gradients.json`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GradientsReport {
    /// Always "gradients".
    pub experiment: &'static str,
    /// Where it ran.
    pub machine: Machine,
    /// What ran.
    pub config: GradientsConfig,
    /// Adam steps per trained model.
    pub steps_per_run: usize,
    /// Per cell, the curves and ratios.
    pub cells: Vec<CellGradients>,
}

/// `curve` (index t) reversed into distances (index d = T − 1 − t).
fn by_distance(mut curve: Vec<f64>) -> Vec<f64> {
    curve.reverse();
    curve
}

/// The element-wise geometric mean of equally long curves of norms: the mean of their logs, as
/// the log-scale figure reads them (an arithmetic mean would be the largest seed's curve where
/// seeds lie orders of magnitude apart). A zero anywhere (an underflow) makes the mean zero.
fn mean_curve(curves: &[&[f64]]) -> Vec<f64> {
    let n = curves.len() as f64;
    (0..curves[0].len())
        .map(|i| {
            if curves.iter().any(|c| c[i] <= 0.0) {
                0.0
            } else {
                (curves.iter().map(|c| c[i].ln()).sum::<f64>() / n).exp()
            }
        })
        .collect()
}

/// `curve[d] / curve[0]` at each of `distances` inside the curve.
fn ratios(curve: &[f64], distances: &[usize]) -> Vec<(usize, f64)> {
    distances.iter().filter(|&&d| d < curve.len()).map(|&d| (d, curve[d] / curve[0])).collect()
}

/// Runs the experiment; writes `gradients.json` and `gradients.png` (one curve per cell and
/// state, log y; a norm of exactly 0, an underflow, breaks its curve) into `out`.
pub fn run(config: &GradientsConfig, out: &Path, face: &Typeface) -> Result<GradientsReport> {
    config.validate()?;
    let (machine, json) = start(out, "gradients.json")?;
    let mut cells = vec![];
    for &cell in &config.cells {
        cells.push(measure_cell(config, cell)?);
    }
    figure(config, &machine, &cells).draw(out, face)?;
    let report = GradientsReport {
        experiment: "gradients",
        machine,
        config: config.clone(),
        steps_per_run: config.training.steps(),
        cells,
    };
    json.write(&report)?;
    Ok(report)
}

/// One cell's curves: per seed, a model measured at initialisation, trained and measured again.
fn measure_cell(config: &GradientsConfig, cell: Cell) -> Result<CellGradients> {
    let mut per_seed = vec![];
    let mut accuracy = vec![];
    for &seed in &config.seeds {
        let (curves, trial_accuracy) = measure_seed(config, cell, seed)?;
        per_seed.push(curves);
        accuracy.push(trial_accuracy);
    }
    let init = mean_curve(&per_seed.iter().map(|s| s.init.as_slice()).collect::<Vec<_>>());
    let trained = mean_curve(&per_seed.iter().map(|s| s.trained.as_slice()).collect::<Vec<_>>());
    Ok(CellGradients {
        cell,
        init_ratios: ratios(&init, &config.distances),
        trained_ratios: ratios(&trained, &config.distances),
        init,
        trained,
        accuracy,
        per_seed,
    })
}

/// The curves of the `cell` model of `seed` before and after training, and its held-out
/// accuracy.
fn measure_seed(config: &GradientsConfig, cell: Cell, seed: u64) -> Result<(SeedGradients, f64)> {
    let started = Instant::now();
    let trial = Trial::new(
        &config.task,
        &config.size,
        &config.training,
        CellInit::pytorch(cell),
        config.train_length,
        seed,
    )?;
    let probe = config.task.generate(config.length, config.probe)?;
    let (tokens, labels) = probe_batch(&probe, config.probe)?;
    let init = by_distance(input_gradient_norms(&trial.model, &tokens, &labels)?);
    trial.fit(&config.training)?;
    let trained = by_distance(input_gradient_norms(&trial.model, &tokens, &labels)?);
    let accuracy = trial.accuracy()?;
    eprintln!(
        "gradients {cell} seed {seed}: accuracy {accuracy:.3} ({:.1} s)",
        started.elapsed().as_secs_f64()
    );
    Ok((SeedGradients { seed, init, trained }, accuracy))
}

/// `gradients.png`: per cell, the curve at initialisation and trained, on a log scale.
fn figure(config: &GradientsConfig, machine: &Machine, cells: &[CellGradients]) -> Figure<'static> {
    let positive = |y: f64| if y > 0.0 { y } else { f64::NAN };
    let series: Vec<Series> = cells
        .iter()
        .flat_map(|c| {
            [("at init", &c.init), ("trained", &c.trained)].map(|(state, curve)| {
                let points = curve.iter().enumerate().map(|(d, &y)| (d as f64, positive(y))).collect();
                Series::new(format!("{} {state}", c.cell), points)
            })
        })
        .collect();
    let title = format!(
        "Vanishing gradients: |d loss / d x_t| against the distance T-t from the last step (T = {})\n{}, \
         geometric mean; {} sequences; trained {} Adam steps on the memory task at L = {}; hidden {}",
        config.length,
        note(machine, &config.seeds),
        config.probe,
        config.training.steps(),
        config.train_length,
        config.size.hidden_size,
    );
    Figure {
        name: "gradients.png",
        title,
        x_label: "distance from the last step, T - t",
        y_label: "gradient norm (log)",
        series,
        log_y: true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn curves_are_turned_into_distances_and_ratios() {
        let d = by_distance(vec![1.0, 2.0, 4.0]);
        assert_eq!(d, [4.0, 2.0, 1.0]);
        assert_eq!(ratios(&d, &[1, 2, 50]), [(1, 0.5), (2, 0.25)]);
        let mean = mean_curve(&[&[1.0, 2.0, 1.0], &[4.0, 8.0, 0.0]]);
        assert!((mean[0] - 2.0).abs() < 1e-12 && (mean[1] - 4.0).abs() < 1e-12, "{mean:?}");
        assert_eq!(mean[2], 0.0);
    }
}
