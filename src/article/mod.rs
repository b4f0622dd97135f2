//! The article's run: its command-line configuration, its data and its report.
//!
//! `examples/article.rs` is the script itself, top to bottom; this module holds what the
//! example, the tests and the benchmarks share. `scripts/reference.py` takes the same flags
//! (but `--adam`) and writes the same report.

use std::{collections::BTreeMap, path::PathBuf};

use anyhow::{ensure, Result};
use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};

/// The article's `LSTMModel` (`nn.LSTM`, batch-first, then `nn.Linear` on the last time step),
/// under the name a PyTorch reader knows: the project's [`SequenceClassifier`] built from
/// [`ArticleConfig::model_config`], whose cell is the LSTM. Its forward pass takes
/// [batch, seq_len, input_size] and gives logits [batch, output_size].
pub type LstmModel = SequenceClassifier;

use crate::runtime::checks;
use crate::{
    nn::{RecurrentConfig, SequenceClassifier, SequenceClassifierConfig},
    runtime::device::DeviceSpec,
    train::optim::{AdamConfig, AdamImpl, Foreach},
};

/// Every flag of the article run. The defaults are the article's.
#[derive(Debug, Clone, PartialEq, clap::Args, Serialize, Deserialize)]
pub struct ArticleConfig {
    /// Seed of libtorch's default generator (`torch.manual_seed`).
    #[arg(long, default_value_t = 0)]
    pub seed: i64,
    /// Sequences in the batch (the article's 2).
    #[arg(long, default_value_t = 2)]
    pub batch_size: i64,
    /// Time steps per sequence.
    #[arg(long, default_value_t = 5)]
    pub seq_len: i64,
    /// Features per time step.
    #[arg(long, default_value_t = 1)]
    pub input_size: i64,
    /// LSTM hidden size.
    #[arg(long, default_value_t = 64)]
    pub hidden_size: i64,
    /// Stacked LSTM layers.
    #[arg(long, default_value_t = 1)]
    pub num_layers: i64,
    /// Classes; sample i has label i % output_size.
    #[arg(long, default_value_t = 2)]
    pub output_size: i64,
    /// Training epochs (full-batch steps); 0 only evaluates the initial model.
    #[arg(long, default_value_t = 200)]
    pub epochs: usize,
    /// Adam learning rate.
    #[arg(long, default_value_t = 0.001)]
    pub lr: f64,
    /// Adam implementation: `pytorch` is bit-identical to torch.optim.Adam, `libtorch` is
    /// libtorch's C++ Adam.
    #[arg(long, value_enum, default_value_t)]
    pub adam: AdamImpl,
    /// `torch.optim.Adam`'s `foreach` for `--adam pytorch`: auto (PyTorch's default:
    /// multi-tensor on CUDA, single-tensor on the CPU), on or off.
    #[arg(long, value_enum, default_value_t)]
    #[serde(default)]
    pub foreach: Foreach,
    /// Device: cpu, cuda, cuda:N, mps or auto.
    #[arg(long, default_value = "cpu")]
    pub device: DeviceSpec,
    /// libtorch intra-op threads (torch.set_num_threads, 1 to 1024); libtorch's default when absent.
    #[arg(long)]
    pub threads: Option<usize>,
    /// Write a JSON report of the run (inputs, parameters, losses, logits) to this file.
    #[arg(long, value_name = "PATH")]
    pub report: Option<PathBuf>,
}

impl Default for ArticleConfig {
    fn default() -> Self {
        Self {
            seed: 0,
            batch_size: 2,
            seq_len: 5,
            input_size: 1,
            hidden_size: 64,
            num_layers: 1,
            output_size: 2,
            epochs: 200,
            lr: 0.001,
            adam: AdamImpl::Pytorch,
            foreach: Foreach::Auto,
            device: DeviceSpec::Cpu,
            threads: None,
            report: None,
        }
    }
}

impl ArticleConfig {
    /// Checks every value before libtorch sees it.
    pub fn validate(&self) -> Result<()> {
        checks::at_least_one("batch size", self.batch_size)?;
        checks::at_least_one("sequence length", self.seq_len)?;
        self.model_config().validate()?;
        self.adam_config().validate()?;
        if let Some(n) = self.threads {
            checks::threads(n)?;
        }
        let elements = [self.batch_size, self.seq_len, self.input_size]
            .iter()
            .try_fold(1i64, |acc, &n| acc.checked_mul(n));
        ensure!(elements.is_some(), "batch size × sequence length × input size overflows");
        Ok(())
    }

    /// The model's hyperparameters.
    pub fn model_config(&self) -> SequenceClassifierConfig {
        SequenceClassifierConfig {
            recurrent: RecurrentConfig {
                input_size: self.input_size,
                hidden_size: self.hidden_size,
                num_layers: self.num_layers,
                ..RecurrentConfig::default()
            },
            output_size: self.output_size,
        }
    }

    /// Adam with PyTorch's defaults and this run's learning rate and `--foreach`.
    pub fn adam_config(&self) -> AdamConfig {
        AdamConfig { foreach: self.foreach.into(), ..AdamConfig::with_lr(self.lr) }
    }

    /// `inputs = torch.randn(batch, seq, input)`: [batch_size, seq_len, input_size] float32 on
    /// the CPU, drawn from the default generator.
    pub fn inputs(&self) -> Result<Tensor> {
        Ok(Tensor::f_randn([self.batch_size, self.seq_len, self.input_size], (Kind::Float, Device::Cpu))?)
    }

    /// The labels, `i % output_size` for sample i (the article's `[0, 1]`); no random draw.
    pub fn labels(&self) -> Vec<i64> {
        (0..self.batch_size).map(|i| i % self.output_size).collect()
    }
}

/// What `--report` writes: one JSON object, parameters under their `state_dict` names, every
/// tensor flattened row-major.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ArticleReport {
    /// Every flag's value.
    pub config: ArticleConfig,
    /// The training inputs [batch, seq_len, input_size].
    pub inputs: Vec<f32>,
    /// The labels [batch].
    pub labels: Vec<i64>,
    /// Parameters before training.
    pub initial_parameters: BTreeMap<String, Vec<f32>>,
    /// Parameters after training.
    pub final_parameters: BTreeMap<String, Vec<f32>>,
    /// The loss of every epoch, before that epoch's update.
    pub losses: Vec<f32>,
    /// The trained model's logits on the inputs [batch, output_size].
    pub logits: Vec<f32>,
    /// `argmax(logits, dim=1)` [batch].
    pub predictions: Vec<i64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_articles() {
        let c = ArticleConfig::default();
        assert_eq!((c.batch_size, c.seq_len, c.input_size, c.hidden_size), (2, 5, 1, 64));
        assert_eq!((c.num_layers, c.output_size, c.epochs, c.lr, c.seed), (1, 2, 200, 0.001, 0));
        assert_eq!(c.labels(), [0, 1]);
        c.validate().unwrap();
    }

    #[test]
    fn labels_cycle_through_the_classes() {
        let c = ArticleConfig { batch_size: 7, output_size: 3, ..ArticleConfig::default() };
        assert_eq!(c.labels(), [0, 1, 2, 0, 1, 2, 0]);
    }

    #[test]
    fn rejects_bad_values() {
        let base = ArticleConfig::default();
        for (bad, needle) in [
            (ArticleConfig { batch_size: 0, ..base.clone() }, "batch size"),
            (ArticleConfig { seq_len: 0, ..base.clone() }, "sequence length"),
            (ArticleConfig { input_size: 0, ..base.clone() }, "input size"),
            (ArticleConfig { hidden_size: -1, ..base.clone() }, "hidden size"),
            (ArticleConfig { num_layers: 0, ..base.clone() }, "number of layers"),
            (ArticleConfig { output_size: 0, ..base.clone() }, "output size"),
            (ArticleConfig { lr: 0.0, ..base.clone() }, "learning rate"),
            (ArticleConfig { lr: f64::NAN, ..base.clone() }, "learning rate"),
            (ArticleConfig { lr: f64::INFINITY, ..base.clone() }, "learning rate"),
            (ArticleConfig { threads: Some(0), ..base.clone() }, "threads"),
            (ArticleConfig { batch_size: i64::MAX, seq_len: 4, ..base.clone() }, "overflows"),
        ] {
            let err = bad.validate().unwrap_err().to_string();
            assert!(err.contains(needle), "{err}");
        }
    }
}
