//! [`TrainConfig`]: what `lstm-tch train` is asked to do, as plain values.

use std::path::{Path, PathBuf};

use anyhow::{bail, ensure, Result};
use serde::{Deserialize, Serialize};
use tch::Device;

use super::{
    optim::{AdamConfig, AdamImpl},
    ClassWeights, TrainOptions,
};
use crate::{
    checkpoint::DEFAULT_CHECKPOINT,
    data::{dataset, sample_dir, DataArgs, Example, TokenizerMode, Truncate, Truncation},
    nn::{TextArchitecture, TextClassifierConfig},
    runtime::{checks, device::RuntimeArgs},
};

/// The three splits, as loaded.
pub(super) struct Splits {
    pub(super) train: Vec<Example>,
    pub(super) dev: Option<Vec<Example>>,
    pub(super) test: Option<Vec<Example>>,
}

/// Everything a training run needs, as plain values: data, tokenizer, model, optimisation,
/// output. `TrainConfig::default()` is `lstm-tch train` with no flags; each field is also that
/// command's flag of the same name (the clap derive only describes the flags). A resumed run
/// reads it back from the training state.
#[derive(Debug, Clone, PartialEq, clap::Args, Serialize, Deserialize)]
pub struct TrainConfig {
    /// Training data [default: the sample dataset's train.tsv, with its dev.tsv and test.tsv].
    #[arg(long)]
    pub train: Option<PathBuf>,
    /// Dev data, evaluated after every epoch to keep the best checkpoint.
    #[arg(long, requires = "train")]
    pub dev: Option<PathBuf>,
    /// Test data, evaluated once with the best checkpoint.
    #[arg(long, requires = "train")]
    pub test: Option<PathBuf>,
    /// With --train alone: the fraction held out (seeded) as dev data, and as much as test data
    /// (refused with --dev or --test, which replace the holdout).
    #[arg(long, default_value_t = 0.1, conflicts_with_all = ["dev", "test"])]
    pub holdout: f64,
    #[command(flatten)]
    pub data: DataArgs,
    /// Checkpoint directory to write (replaced atomically at each new best epoch).
    #[arg(long, default_value = DEFAULT_CHECKPOINT)]
    pub out: PathBuf,
    /// Keep tokens seen at least this often in the training data.
    #[arg(long, default_value_t = 1)]
    pub min_freq: usize,
    /// Largest vocabulary, <pad> and <unk> included; the most frequent tokens are kept.
    #[arg(long)]
    pub max_vocab: Option<usize>,
    /// Tokens kept per text (which: --truncate).
    #[arg(long, default_value_t = 256)]
    pub max_len: usize,
    /// Which tokens of a longer text are kept: head, tail, or head-tail (the first quarter
    /// and the last three quarters of --max-len).
    #[arg(long, value_enum, default_value_t = Truncation::HeadTail)]
    pub truncate: Truncation,
    /// How text is cut into tokens: unicode (UAX #29 words, each CJK character a token), chars
    /// (every non-space character) or jieba (Chinese words; other text as unicode).
    #[arg(long, value_enum, default_value_t)]
    pub tokenizer: TokenizerMode,
    /// Keep the case of tokens.
    #[arg(long)]
    pub no_lowercase: bool,
    /// The model's architecture: `--embedding-dim`, `--cell`, `--hidden-size`, `--num-layers`,
    /// `--bidirectional`, `--dropout`, `--embedding-dropout`, `--pooling`, `--output-dropout`,
    /// `--forget-bias`.
    #[command(flatten)]
    #[serde(flatten)]
    pub model: TextArchitecture,
    /// Passes over the training data.
    #[arg(long, default_value_t = 8)]
    pub epochs: usize,
    /// Texts per batch.
    #[arg(long, default_value_t = 64)]
    pub batch_size: usize,
    /// Batch texts of similar length together (seeded pools of 100 batches sorted by length,
    /// batches shuffled): much less padding and recurrence per batch (`--bucket false`: plain
    /// shuffled batches).
    #[arg(long, num_args = 0..=1, default_value_t = true, default_missing_value = "true",
          action = clap::ArgAction::Set, value_name = "BOOL")]
    pub bucket: bool,
    /// Weights of the classes in the loss: none, or balanced (each class counts the same in
    /// all: class c weighs n / (classes × n_c)).
    #[arg(long, value_enum, default_value_t)]
    pub class_weights: ClassWeights,
    /// Adam learning rate.
    #[arg(long, default_value_t = 0.003)]
    pub lr: f64,
    /// Adam implementation: pytorch (torch.optim.Adam, bit for bit) or libtorch.
    #[arg(long, value_enum, default_value_t)]
    pub adam: AdamImpl,
    /// Clip the gradients' joint L2 norm to this before each step.
    #[arg(long)]
    pub clip_grad_norm: Option<f64>,
    /// Seed of the data split, the initialisation and the shuffling.
    #[arg(long, default_value_t = 0)]
    pub seed: i64,
    #[command(flatten)]
    pub runtime: RuntimeArgs,
    /// Write a JSON report (per-epoch losses and metrics, test metrics) to this file.
    #[arg(long, value_name = "PATH")]
    pub report: Option<PathBuf>,
    /// Also write the encoded splits (token ids, class indices) as JSON, for
    /// scripts/text_reference.py.
    #[arg(long, value_name = "PATH")]
    pub export_encoded: Option<PathBuf>,
    /// Also save the training state every N batches (0: only at the end of each epoch), so
    /// that an interrupted run loses at most N batches (`--resume`).
    #[arg(long, value_name = "N", default_value_t = 200)]
    pub save_every: usize,
    /// No progress bar.
    #[arg(long, short)]
    pub quiet: bool,
    /// Under torchrun: how long a rank waits for the others (to join the job, and at each
    /// step) before it ends with an error. A rank that dies is noticed at once.
    #[arg(long, value_name = "SECONDS", default_value_t = 300)]
    #[serde(default = "default_dist_timeout")]
    pub dist_timeout: u64,
}

/// `--dist-timeout`'s default, for training states written before it existed.
fn default_dist_timeout() -> u64 {
    300
}

impl Default for TrainConfig {
    /// `lstm-tch train`'s defaults.
    fn default() -> Self {
        crate::runtime::flags::flag_defaults()
    }
}

impl TrainConfig {
    /// Checks what can be checked before any data is read.
    pub fn validate(&self) -> Result<()> {
        checks::batch_size(self.batch_size)?;
        checks::at_least_one("--max-len", self.max_len)?;
        checks::at_least_one("--dist-timeout", self.dist_timeout)?;
        if let Some(c) = self.clip_grad_norm {
            checks::positive("--clip-grad-norm", c)?;
        }
        for (flag, path) in [("--report", &self.report), ("--export-encoded", &self.export_encoded)] {
            if let Some(path) = path.as_deref().filter(|p| p.starts_with(&self.out)) {
                bail!(
                    "{flag} {} is inside --out {}: each save replaces that directory; write it elsewhere",
                    path.display(),
                    self.out.display()
                );
            }
        }
        self.model_config(2, 2).validate() // the sizes
    }

    /// Makes every relative path (data, output, report) relative to `dir` instead of the
    /// working directory.
    pub fn resolve_paths(&mut self, dir: &Path) {
        let paths =
            [&mut self.train, &mut self.dev, &mut self.test, &mut self.report, &mut self.export_encoded];
        for path in paths.into_iter().flatten() {
            if path.is_relative() {
                *path = dir.join(&*path);
            }
        }
        if self.out.is_relative() {
            self.out = dir.join(&self.out);
        }
    }

    /// Which tokens of each text are kept.
    pub fn truncate(&self) -> Truncate {
        Truncate { max_len: self.max_len, keep: self.truncate }
    }

    /// The model these flags describe, for a vocabulary and a label set of these sizes.
    pub fn model_config(&self, vocab_size: usize, num_classes: usize) -> TextClassifierConfig {
        TextClassifierConfig {
            vocab_size: vocab_size as i64,
            num_classes: num_classes as i64,
            architecture: self.model,
        }
    }

    /// The fit loop's options these flags describe, with Adam's hyperparameters, the loss's
    /// class weights and the device; resumable.
    pub(super) fn train_options(
        &self,
        adam_config: AdamConfig,
        class_weights: Option<Vec<f32>>,
        device: Device,
    ) -> TrainOptions {
        TrainOptions {
            epochs: self.epochs,
            batch_size: self.batch_size,
            bucket: self.bucket,
            adam: self.adam,
            adam_config,
            clip_grad_norm: self.clip_grad_norm,
            class_weights,
            device,
            progress: !self.quiet,
            resumable: true,
        }
    }

    /// Reads the training, dev and test data (the sample dataset without `--train`; a seeded
    /// holdout with `--train` alone).
    pub(super) fn splits(&self) -> Result<Splits> {
        let Some(train_path) = &self.train else {
            let dir = sample_dir();
            return Ok(Splits {
                train: self.data.load(&dir.join("train.tsv"))?,
                dev: Some(self.data.load(&dir.join("dev.tsv"))?),
                test: Some(self.data.load(&dir.join("test.tsv"))?),
            });
        };
        let train = self.data.load(train_path)?;
        if self.dev.is_none() && self.test.is_none() {
            let [train, dev, test] = dataset::split(train, self.holdout, self.holdout, self.seed as u64)?;
            ensure!(
                !train.is_empty(),
                "{}: too few examples to hold out dev and test data",
                train_path.display()
            );
            let trained: std::collections::HashSet<&str> = train.iter().map(|e| e.label.as_str()).collect();
            if let Some(held) = dev.iter().chain(&test).find(|e| !trained.contains(e.label.as_str())) {
                bail!(
                    "{}: every example of label '{}' went to the held-out data (--holdout {}): add \
                     examples of it, lower --holdout, or pass --dev and --test",
                    train_path.display(),
                    held.label,
                    self.holdout
                );
            }
            return Ok(Splits {
                train,
                dev: (!dev.is_empty()).then_some(dev),
                test: (!test.is_empty()).then_some(test),
            });
        }
        let load = |p: &Option<PathBuf>| p.as_deref().map(|p| self.data.load(p)).transpose();
        Ok(Splits { train, dev: load(&self.dev)?, test: load(&self.test)? })
    }
}
