//! Speed: the time of one training step (forward, cross-entropy, backward, Adam) against
//! sequence length and against batch size, per cell.
//!
//! The article says an LSTM trains "much slower" than a plain RNN and "cannot be parallelised
//! across time steps". The first is the LSTM/RNN (and LSTM/GRU) time ratio; the second shows as
//! a step time linear in the sequence length (the steps run one after another) while a larger
//! batch, which libtorch can spread over its threads and wider matrix products, costs much less
//! than proportionally. Each point runs `warmup` untimed steps, then `repeats` timed ones, and
//! reports their median; libtorch's threads are pinned (`--threads`).

use std::{path::Path, time::Instant};

use anyhow::{ensure, Result};
use serde::Serialize;

use super::{check_list, memory::MemoryTask, note, start, Figure, Machine, ModelSize};
use crate::runtime::checks;
use crate::{
    lab::plot::{Series, Typeface},
    nn::cross_entropy,
    nn::Cell,
    train::optim::{Adam, AdamConfig, AdamImpl},
};

/// What `lstm-tch claims speed` runs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SpeedConfig {
    /// The cells compared.
    pub cells: Vec<Cell>,
    /// Sequence lengths of the length sweep (at `batch_size`).
    pub lengths: Vec<usize>,
    /// The batch size of the length sweep.
    pub batch_size: usize,
    /// Batch sizes of the batch sweep (at `length`).
    pub batch_sizes: Vec<usize>,
    /// The sequence length of the batch sweep.
    pub length: usize,
    /// The model's sizes.
    pub size: ModelSize,
    /// Untimed steps before each point.
    pub warmup: usize,
    /// Timed steps per point (the median is reported).
    pub repeats: usize,
    /// Seed of the model and the data.
    pub seed: u64,
}

impl SpeedConfig {
    /// Checks every size before any work.
    pub fn validate(&self) -> Result<()> {
        ensure!(!self.cells.is_empty(), "--cells needs at least one cell");
        check_list("lengths", &self.lengths, 1)?;
        check_list("batch-sizes", &self.batch_sizes, 1)?;
        checks::batch_size(self.batch_size)?;
        checks::at_least_one("--length", self.length)?;
        checks::at_least_one("--repeats", self.repeats)?;
        self.size.validate()
    }
}

/// The seconds of each of `repeats` timed training steps of a fresh `cell` model on one batch of
/// `batch` random sequences of `length` tokens, after `warmup` untimed steps: forward (training
/// mode, packed), cross-entropy, backward and PyTorch's Adam (lr 0.001), as `train` runs them.
pub fn step_times(
    cell: Cell,
    size: &ModelSize,
    batch: usize,
    length: usize,
    warmup: usize,
    repeats: usize,
    seed: u64,
) -> Result<Vec<f64>> {
    ensure!(batch >= 1 && length >= 1, "a step needs a batch and a length of at least 1");
    tch::manual_seed(seed as i64);
    let task = MemoryTask { noise_tokens: 1000 };
    let data = task.generate(length, batch)?;
    let batch = data.batch(&(0..batch).collect::<Vec<_>>())?;
    let (vs, model) = size.build(cell, task.vocab_size())?;
    let mut adam = Adam::new(AdamImpl::Pytorch, &vs, AdamConfig::with_lr(0.001))?;
    let mut step = || -> Result<f64> {
        let started = Instant::now();
        let logits = model.forward(&batch.tokens, &batch.lengths, true)?;
        let loss = cross_entropy(&logits, &batch.labels)?;
        adam.backward_step(&loss)?;
        Ok(started.elapsed().as_secs_f64())
    };
    for _ in 0..warmup {
        step()?;
    }
    (0..repeats).map(|_| step()).collect()
}

/// The median of `values` (the mean of the middle two for an even count); NaN for none.
pub fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    match sorted.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

/// The least-squares line y = intercept + slope·x through `points`, and its R².
pub fn line_fit(points: &[(f64, f64)]) -> LineFit {
    let n = points.len() as f64;
    let (mx, my) = (points.iter().map(|p| p.0).sum::<f64>() / n, points.iter().map(|p| p.1).sum::<f64>() / n);
    let sxx: f64 = points.iter().map(|p| (p.0 - mx).powi(2)).sum();
    let sxy: f64 = points.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    let syy: f64 = points.iter().map(|p| (p.1 - my).powi(2)).sum();
    let slope = if sxx > 0.0 { sxy / sxx } else { 0.0 };
    let r2 = if sxx > 0.0 && syy > 0.0 { sxy * sxy / (sxx * syy) } else { f64::NAN };
    LineFit { intercept: my - slope * mx, slope, r2 }
}

/// A straight line fitted to points.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct LineFit {
    /// y at x = 0.
    pub intercept: f64,
    /// dy/dx.
    pub slope: f64,
    /// The squared correlation: 1 for points on a line.
    pub r2: f64,
}

/// One timed point.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SpeedPoint {
    /// The cell.
    pub cell: Cell,
    /// Sequences per batch.
    pub batch_size: usize,
    /// Tokens per sequence.
    pub length: usize,
    /// The median step, in milliseconds.
    pub median_ms: f64,
    /// Every timed step, in milliseconds.
    pub times_ms: Vec<f64>,
}

/// LSTM time over another cell's at one point of a sweep.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Ratio {
    /// The other cell.
    pub versus: Cell,
    /// Sequences per batch.
    pub batch_size: usize,
    /// Tokens per sequence.
    pub length: usize,
    /// LSTM median / the other cell's median.
    pub ratio: f64,
}

/// How one cell's step time grows with length.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Growth {
    /// The cell.
    pub cell: Cell,
    /// Median ms against length (at the sweep's batch size), fitted with a line: the slope is
    /// the cost of one more time step.
    pub fit_ms: LineFit,
    /// Time at the longest length over time at the shortest.
    pub time_ratio: f64,
    /// Longest length over shortest: what `time_ratio` is for a step time proportional to length.
    pub length_ratio: f64,
}

/// `speed.json`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SpeedReport {
    /// Always "speed".
    pub experiment: &'static str,
    /// Where it ran (the load average tells how busy the machine was).
    pub machine: Machine,
    /// What ran.
    pub config: SpeedConfig,
    /// The length sweep, by cell then length.
    pub by_length: Vec<SpeedPoint>,
    /// The batch sweep, by cell then batch size.
    pub by_batch: Vec<SpeedPoint>,
    /// LSTM/other time ratios on both sweeps (when the LSTM was timed).
    pub ratios: Vec<Ratio>,
    /// Per cell, the step time's growth with length.
    pub growth: Vec<Growth>,
}

/// Times every cell at each `(batch size, length)` of `shapes`, cell by cell.
fn sweep(config: &SpeedConfig, shapes: &[(usize, usize)]) -> Result<Vec<SpeedPoint>> {
    let mut points = vec![];
    for &cell in &config.cells {
        for &(batch_size, length) in shapes {
            let times = step_times(
                cell,
                &config.size,
                batch_size,
                length,
                config.warmup,
                config.repeats,
                config.seed,
            )?;
            let times_ms: Vec<f64> = times.iter().map(|s| s * 1e3).collect();
            let median_ms = median(&times_ms);
            eprintln!("speed {cell} batch {batch_size} length {length}: {median_ms:.2} ms per step");
            points.push(SpeedPoint { cell, batch_size, length, median_ms, times_ms });
        }
    }
    Ok(points)
}

/// The LSTM's median over each other cell's at every point both were timed.
fn lstm_ratios(points: &[SpeedPoint]) -> Vec<Ratio> {
    let mut ratios = vec![];
    for lstm in points.iter().filter(|p| p.cell == Cell::Lstm) {
        for other in points
            .iter()
            .filter(|p| p.cell != Cell::Lstm && p.batch_size == lstm.batch_size && p.length == lstm.length)
        {
            ratios.push(Ratio {
                versus: other.cell,
                batch_size: lstm.batch_size,
                length: lstm.length,
                ratio: lstm.median_ms / other.median_ms,
            });
        }
    }
    ratios
}

/// Runs both sweeps; writes `speed.json`, `speed.png` (ms per step against length) and
/// `speed-batch.png` (ms per step against batch size) into `out`.
pub fn run(config: &SpeedConfig, out: &Path, face: &Typeface) -> Result<SpeedReport> {
    config.validate()?;
    let (machine, json) = start(out, "speed.json")?;
    let shapes: Vec<(usize, usize)> = config.lengths.iter().map(|&l| (config.batch_size, l)).collect();
    let by_length = sweep(config, &shapes)?;
    let shapes: Vec<(usize, usize)> = config.batch_sizes.iter().map(|&b| (b, config.length)).collect();
    let by_batch = sweep(config, &shapes)?;
    let growth = config.cells.iter().map(|&cell| growth(cell, &by_length)).collect();
    let ratios = lstm_ratios(&by_length).into_iter().chain(lstm_ratios(&by_batch)).collect();
    for figure in figures(config, &machine, &by_length, &by_batch) {
        figure.draw(out, face)?;
    }
    let report = SpeedReport {
        experiment: "speed",
        machine,
        config: config.clone(),
        by_length,
        by_batch,
        ratios,
        growth,
    };
    json.write(&report)?;
    Ok(report)
}

/// How `cell`'s step time grows with length, from the length sweep's points.
fn growth(cell: Cell, by_length: &[SpeedPoint]) -> Growth {
    let points: Vec<(f64, f64)> =
        by_length.iter().filter(|p| p.cell == cell).map(|p| (p.length as f64, p.median_ms)).collect();
    let (first, last) = (points[0], points[points.len() - 1]);
    Growth { cell, fit_ms: line_fit(&points), time_ratio: last.1 / first.1, length_ratio: last.0 / first.0 }
}

/// `speed.png` and `speed-batch.png`: per cell, the median step time against length and against
/// batch size.
fn figures(
    config: &SpeedConfig,
    machine: &Machine,
    by_length: &[SpeedPoint],
    by_batch: &[SpeedPoint],
) -> [Figure<'static>; 2] {
    let details = format!(
        "{}, embedding {}, hidden {}; median of {} steps after {} warm-up",
        note(machine, &[config.seed]),
        config.size.embedding_dim,
        config.size.hidden_size,
        config.repeats,
        config.warmup,
    );
    let series = |points: &[SpeedPoint], x: fn(&SpeedPoint) -> usize| -> Vec<Series> {
        config
            .cells
            .iter()
            .map(|&cell| {
                let points =
                    points.iter().filter(|p| p.cell == cell).map(|p| (x(p) as f64, p.median_ms)).collect();
                Series::new(cell.to_string(), points)
            })
            .collect()
    };
    let y_label = "ms per step (forward, backward, Adam)";
    [
        Figure {
            name: "speed.png",
            title: format!(
                "Training step time against sequence length (batch {})\n{details}",
                config.batch_size
            ),
            x_label: "sequence length",
            y_label,
            series: series(by_length, |p| p.length),
            log_y: false,
        },
        Figure {
            name: "speed-batch.png",
            title: format!("Training step time against batch size (length {})\n{details}", config.length),
            x_label: "batch size",
            y_label,
            series: series(by_batch, |p| p.batch_size),
            log_y: false,
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_and_line_fits() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), 2.5);
        assert!(median(&[]).is_nan());
        let fit = line_fit(&[(0.0, 1.0), (1.0, 3.0), (2.0, 5.0)]);
        assert_eq!((fit.intercept, fit.slope, fit.r2), (1.0, 2.0, 1.0));
    }
}
