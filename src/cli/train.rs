//! `lstm-tch train`: train a sentiment classifier on labelled text and keep its best epoch.

use std::{path::PathBuf, time::Instant};

use anyhow::{ensure, Result};
use clap::Args;
use serde::Serialize;
use tch::Device;

use super::{sample_dir, DataArgs, RuntimeArgs, DEFAULT_CHECKPOINT};
use crate::{
    checkpoint::{self, CheckpointConfig},
    data::{
        dataset, Encoded, Example, LabelSet, Tokenizer, TokenizerConfig, TokenizerMode, Truncate, Truncation,
        Vocab,
    },
    metrics::Metrics,
    model::{Cell, Pooling},
    optim::{AdamConfig, AdamImpl},
    report::JsonFile,
    text_model::{TextClassifier, TextModelConfig},
    training::{self, ClassWeights, EpochReport, TrainOptions},
};

/// `lstm-tch train`: train a sentiment classifier and save the best checkpoint.
#[derive(Debug, Clone, Args, Serialize)]
pub struct TrainArgs {
    /// Training data [default: the sample dataset's train.tsv, with its dev.tsv and test.tsv].
    #[arg(long)]
    pub train: Option<PathBuf>,
    /// Dev data, evaluated after every epoch to keep the best checkpoint.
    #[arg(long, requires = "train")]
    pub dev: Option<PathBuf>,
    /// Test data, evaluated once with the best checkpoint.
    #[arg(long, requires = "train")]
    pub test: Option<PathBuf>,
    /// With --train alone: the fraction held out (seeded) as dev data, and as much as test data.
    #[arg(long, default_value_t = 0.1)]
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
    /// Embedding width.
    #[arg(long, default_value_t = 128)]
    pub embedding_dim: i64,
    /// The recurrent cell: lstm (nn.LSTM, the article's), gru (nn.GRU) or rnn (nn.RNN, tanh).
    #[arg(long, value_enum, default_value_t)]
    pub cell: Cell,
    /// Hidden size (per direction).
    #[arg(long, default_value_t = 64)]
    pub hidden_size: i64,
    /// Stacked recurrent layers.
    #[arg(long, default_value_t = 1)]
    pub num_layers: i64,
    /// Read each text in both directions (`--bidirectional false`: forwards only).
    #[arg(long, num_args = 0..=1, default_value_t = true, default_missing_value = "true",
          action = clap::ArgAction::Set, value_name = "BOOL")]
    pub bidirectional: bool,
    /// Dropout between recurrent layers (needs --num-layers ≥ 2 to have an effect).
    #[arg(long, default_value_t = 0.0)]
    pub dropout: f64,
    /// Dropout on the embedded tokens, in training.
    #[arg(long, default_value_t = 0.3)]
    pub embedding_dropout: f64,
    /// What the classifier reads: the final hidden state (last), or the max or mean of the
    /// recurrent layer's outputs over the text.
    #[arg(long, value_enum, default_value_t = Pooling::Max)]
    pub pooling: Pooling,
    /// Dropout on what the classifier reads (the pooled recurrent output), in training.
    #[arg(long, default_value_t = 0.0)]
    pub output_dropout: f64,
    /// Passes over the training data.
    #[arg(long, default_value_t = 8)]
    pub epochs: usize,
    /// Texts per batch.
    #[arg(long, default_value_t = 32)]
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
    #[arg(long, default_value_t = 0.002)]
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
    /// No progress bar.
    #[arg(long, short)]
    pub quiet: bool,
}

/// The three splits, as loaded.
struct Splits {
    train: Vec<Example>,
    dev: Option<Vec<Example>>,
    test: Option<Vec<Example>>,
}

impl TrainArgs {
    /// `lstm-tch train`'s defaults.
    pub fn defaults() -> Self {
        #[derive(clap::Parser)]
        struct Defaults {
            #[command(flatten)]
            args: TrainArgs,
        }
        <Defaults as clap::Parser>::parse_from(["train"]).args
    }

    /// Which tokens of each text are kept.
    pub fn truncate(&self) -> Truncate {
        Truncate { max_len: self.max_len, keep: self.truncate }
    }

    /// The model these flags describe, for a vocabulary and a label set of these sizes.
    pub fn model_config(&self, vocab_size: usize, num_classes: usize) -> TextModelConfig {
        TextModelConfig {
            vocab_size: vocab_size as i64,
            embedding_dim: self.embedding_dim,
            cell: self.cell,
            hidden_size: self.hidden_size,
            num_layers: self.num_layers,
            num_classes: num_classes as i64,
            bidirectional: self.bidirectional,
            dropout: self.dropout,
            embedding_dropout: self.embedding_dropout,
            pooling: self.pooling,
            output_dropout: self.output_dropout,
        }
    }

    fn splits(&self) -> Result<Splits> {
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

/// `train`'s `--report`.
#[derive(Debug, Serialize)]
struct TrainReport<'a> {
    config: &'a TrainArgs,
    labels: &'a [String],
    vocab_size: usize,
    train_texts: usize,
    dev_texts: usize,
    test_texts: usize,
    epochs: &'a [EpochReport],
    best_epoch: Option<usize>,
    test: Option<Metrics>,
    seconds: f64,
}

/// `--export-encoded`: what scripts/text_reference.py trains on.
#[derive(Debug, Serialize)]
struct ExportedData<'a> {
    model: TextModelConfig,
    train: ExportedSplit,
    dev: Option<ExportedSplit>,
    test: Option<ExportedSplit>,
    batch_size: usize,
    /// `--bucket`: length-bucketed batches (src/data/batcher.rs).
    bucket: bool,
    /// `--class-weights`: the loss's class weights, if any.
    class_weights: Option<Vec<f32>>,
    epochs: usize,
    lr: f64,
    seed: i64,
    labels: &'a [String],
}

#[derive(Debug, Serialize)]
struct ExportedSplit {
    ids: Vec<Vec<i64>>,
    labels: Vec<i64>,
}

impl From<&Encoded> for ExportedSplit {
    fn from(e: &Encoded) -> Self {
        Self { ids: (0..e.len()).map(|i| e.ids(i).to_vec()).collect(), labels: e.labels.clone() }
    }
}

/// Runs `lstm-tch train`.
pub fn train(args: &TrainArgs) -> Result<()> {
    let started = Instant::now();
    let device = args.runtime.init()?;
    let adam_config = AdamConfig::with_lr(args.lr);
    adam_config.validate()?;
    ensure!(args.batch_size >= 1, "--batch-size must be at least 1");
    ensure!(args.max_len >= 1, "--max-len must be at least 1");
    if let Some(c) = args.clip_grad_norm {
        ensure!(c.is_finite() && c > 0.0, "--clip-grad-norm must be finite and positive, got {c}");
    }
    args.model_config(2, 2).validate()?; // the sizes, before any data is read
    let report_file = args.report.as_deref().map(JsonFile::create).transpose()?;
    let export_file = args.export_encoded.as_deref().map(JsonFile::create).transpose()?;

    let splits = args.splits()?;
    let labels = LabelSet::from_examples(&splits.train)?;
    let tokenizer = Tokenizer::new(TokenizerConfig { mode: args.tokenizer, lowercase: !args.no_lowercase });
    let texts = splits.train.iter().map(|e| e.text.as_str());
    let vocab = Vocab::from_texts(texts, &tokenizer, args.min_freq, args.max_vocab)?;
    let encode = |examples: &[Example], what: &str| -> Result<Encoded> {
        let classes = labels.indices(examples, what)?;
        Encoded::new(examples.iter().map(|e| e.text.as_str()), classes, &tokenizer, &vocab, args.truncate())
    };
    let train = encode(&splits.train, "training")?;
    let dev = splits.dev.as_deref().map(|d| encode(d, "dev")).transpose()?;
    let test = splits.test.as_deref().map(|d| encode(d, "test")).transpose()?;
    drop(splits);
    eprintln!(
        "data: {} train, {} dev, {} test texts; {} classes [{}]; vocabulary {} tokens",
        train.len(),
        dev.as_ref().map_or(0, Encoded::len),
        test.as_ref().map_or(0, Encoded::len),
        labels.len(),
        labels.names().join(", "),
        vocab.len()
    );

    let model_config = args.model_config(vocab.len(), labels.len());
    let class_weights = args.class_weights.weights(&train.labels, labels.len());
    if let Some(file) = export_file {
        file.write(&ExportedData {
            model: model_config,
            train: (&train).into(),
            dev: dev.as_ref().map(Into::into),
            test: test.as_ref().map(Into::into),
            batch_size: args.batch_size,
            bucket: args.bucket,
            class_weights: class_weights.clone(),
            epochs: args.epochs,
            lr: args.lr,
            seed: args.seed,
            labels: labels.names(),
        })?;
    }

    tch::manual_seed(args.seed);
    let mut vs = tch::nn::VarStore::new(Device::Cpu);
    let model = TextClassifier::new(&vs.root(), model_config)?;
    vs.set_device(device);
    model.flatten_parameters()?; // as PyTorch's model.to(device) does on CUDA; a no-op on the CPU
    let checkpoint_config =
        CheckpointConfig::new(model_config, tokenizer.config(), args.truncate(), &vocab, &labels);
    let options = TrainOptions {
        epochs: args.epochs,
        batch_size: args.batch_size,
        bucket: args.bucket,
        adam: args.adam,
        adam_config,
        clip_grad_norm: args.clip_grad_norm,
        class_weights,
        device,
        progress: !args.quiet,
    };
    let epochs = training::fit(&model, &vs, &train, dev.as_ref().map(|d| (d, &labels)), &options, |epoch| {
        let dev = epoch.dev.as_ref().map_or(String::new(), |m| {
            format!("  dev accuracy {:.4}  macro-F1 {:.4}", m.accuracy, m.macro_f1)
        });
        let mark = if epoch.best { format!("  saved {}", args.out.display()) } else { String::new() };
        eprintln!(
            "epoch {}/{}  train loss {:.4}{dev}  {:.1} s  {:.0} texts/s{mark}",
            epoch.epoch, args.epochs, epoch.train_loss, epoch.seconds, epoch.texts_per_second
        );
        if epoch.best {
            checkpoint::save(&args.out, &checkpoint_config, &vs)?;
        }
        Ok(())
    })?;
    if epochs.is_empty() {
        checkpoint::save(&args.out, &checkpoint_config, &vs)?;
        eprintln!("no epochs: saved the initial model to {}", args.out.display());
    }
    let best_epoch = epochs.iter().rev().find(|e| e.best).map(|e| e.epoch);

    let test_metrics = match &test {
        Some(test) => {
            let best = checkpoint::load(&args.out, device)?;
            let metrics = training::evaluate(&best.model, test, &labels, 256, device)?;
            eprintln!(
                "test (best epoch {}): accuracy {:.4}  macro-F1 {:.4}  ({} texts)",
                best_epoch.map_or("-".to_owned(), |e| e.to_string()),
                metrics.accuracy,
                metrics.macro_f1,
                metrics.total
            );
            Some(metrics)
        }
        None => None,
    };
    let seconds = started.elapsed().as_secs_f64();
    eprintln!("done in {seconds:.1} s; checkpoint: {}", args.out.display());
    if let Some(file) = report_file {
        file.write(&TrainReport {
            config: args,
            labels: labels.names(),
            vocab_size: vocab.len(),
            train_texts: train.len(),
            dev_texts: dev.as_ref().map_or(0, Encoded::len),
            test_texts: test.as_ref().map_or(0, Encoded::len),
            epochs: &epochs,
            best_epoch,
            test: test_metrics,
            seconds,
        })?;
    }
    Ok(())
}
