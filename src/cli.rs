//! The `lstm-tch` command line: `train`, `eval` and `predict`.
//!
//! Each subcommand is a clap struct and a `run` function; `src/main.rs` only dispatches. This is
//! the edge of the program: paths and user values get their context here.

use std::{
    io::{BufRead, IsTerminal, Write},
    path::{Path, PathBuf},
    time::Instant,
};

use anyhow::{ensure, Context, Result};
use clap::Args;
use serde::Serialize;
use tch::{Device, Kind, Tensor};

use crate::{
    checkpoint::{self, CheckpointConfig},
    data::{
        dataset, Columns, Encoded, Example, Format, LabelSet, Tokenizer, TokenizerConfig, TokenizerMode,
        Truncate, Truncation, Vocab,
    },
    device::{self, set_threads, DeviceSpec},
    metrics::Metrics,
    model::Pooling,
    optim::{AdamConfig, AdamImpl},
    report::JsonFile,
    text_model::{TextClassifier, TextModelConfig},
    training::{self, ClassWeights, EpochReport, TrainOptions},
};

/// Where the sample dataset lives: `data/sample` under the working directory, else in the
/// source tree this binary was built from.
pub fn sample_dir() -> PathBuf {
    let local = PathBuf::from("data/sample");
    if local.is_dir() {
        local
    } else {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("data/sample")
    }
}

/// The default checkpoint directory.
pub const DEFAULT_CHECKPOINT: &str = "runs/sentiment";

/// How to read a dataset file.
#[derive(Debug, Clone, Args, Serialize)]
pub struct DataArgs {
    /// File format; by default from the extension (.tsv .csv .jsonl), a directory being IMDB.
    #[arg(long, value_enum)]
    pub format: Option<Format>,
    /// Column (or JSON field) holding the text [default: the first of text, sentence, review,
    /// text_a, content, comment].
    #[arg(long)]
    pub text_column: Option<String>,
    /// Column (or JSON field) holding the label [default: label, sentiment or polarity].
    #[arg(long)]
    pub label_column: Option<String>,
}

impl DataArgs {
    fn load(&self, path: &Path) -> Result<Vec<Example>> {
        let columns = Columns { text: self.text_column.clone(), label: self.label_column.clone() };
        dataset::load(path, self.format, &columns)
    }
}

/// Where to run.
#[derive(Debug, Clone, Args, Serialize)]
pub struct RuntimeArgs {
    /// Device: cpu, cuda, cuda:N, mps or auto.
    #[arg(long, default_value = "cpu")]
    pub device: DeviceSpec,
    /// libtorch intra-op threads; libtorch's default when absent.
    #[arg(long)]
    pub threads: Option<usize>,
}

impl RuntimeArgs {
    fn init(&self) -> Result<Device> {
        set_threads(self.threads)?;
        self.device.resolve()
    }
}

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
    /// LSTM hidden size (per direction).
    #[arg(long, default_value_t = 64)]
    pub hidden_size: i64,
    /// Stacked LSTM layers.
    #[arg(long, default_value_t = 1)]
    pub num_layers: i64,
    /// Read each text in both directions (`--bidirectional false`: forwards only).
    #[arg(long, num_args = 0..=1, default_value_t = true, default_missing_value = "true",
          action = clap::ArgAction::Set, value_name = "BOOL")]
    pub bidirectional: bool,
    /// Dropout between LSTM layers (needs --num-layers ≥ 2 to have an effect).
    #[arg(long, default_value_t = 0.0)]
    pub dropout: f64,
    /// Dropout on the embedded tokens, in training.
    #[arg(long, default_value_t = 0.3)]
    pub embedding_dropout: f64,
    /// What the classifier reads: the final hidden state (last), or the max or mean of the
    /// LSTM's outputs over the text.
    #[arg(long, value_enum, default_value_t = Pooling::Max)]
    pub pooling: Pooling,
    /// Dropout on what the classifier reads (the pooled LSTM output), in training.
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

/// `lstm-tch eval`: accuracy, per-class precision/recall/F1, macro-F1 and confusion matrix.
#[derive(Debug, Clone, Args)]
pub struct EvalArgs {
    /// Labelled data to evaluate [default: the sample dataset's test.tsv].
    pub data: Option<PathBuf>,
    /// Checkpoint directory.
    #[arg(long, default_value = DEFAULT_CHECKPOINT)]
    pub checkpoint: PathBuf,
    #[command(flatten)]
    pub format: DataArgs,
    /// Texts per batch.
    #[arg(long, default_value_t = 256)]
    pub batch_size: usize,
    /// Print the metrics as JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub runtime: RuntimeArgs,
}

/// Runs `lstm-tch eval`.
pub fn eval(args: &EvalArgs) -> Result<()> {
    let device = args.runtime.init()?;
    ensure!(args.batch_size >= 1, "--batch-size must be at least 1");
    let ckpt = checkpoint::load(&args.checkpoint, device)?;
    let path = args.data.clone().unwrap_or_else(|| sample_dir().join("test.tsv"));
    let examples = args.format.load(&path)?;
    let classes = ckpt.labels.indices(&examples, "evaluation")?;
    let data = Encoded::new(
        examples.iter().map(|e| e.text.as_str()),
        classes,
        &ckpt.tokenizer,
        &ckpt.vocab,
        ckpt.config.truncate(),
    )?;
    let metrics = training::evaluate(&ckpt.model, &data, &ckpt.labels, args.batch_size, device)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&metrics)?);
    } else {
        println!("{}: {} texts, checkpoint {}\n", path.display(), metrics.total, args.checkpoint.display());
        print!("{}", metrics.table());
    }
    Ok(())
}

/// `lstm-tch predict`: the label and class probabilities of each sentence.
#[derive(Debug, Clone, Args)]
pub struct PredictArgs {
    /// Sentences to classify; without any (and without --file), lines are read from stdin.
    pub sentences: Vec<String>,
    /// Read sentences from this file, one per line.
    #[arg(long, conflicts_with = "sentences")]
    pub file: Option<PathBuf>,
    /// Checkpoint directory.
    #[arg(long, default_value = DEFAULT_CHECKPOINT)]
    pub checkpoint: PathBuf,
    /// Print JSON Lines: {"text", "label", "probabilities"}.
    #[arg(long)]
    pub json: bool,
    /// Lines classified together when reading a file or a pipe.
    #[arg(long, default_value_t = 64)]
    pub batch_size: usize,
    #[command(flatten)]
    pub runtime: RuntimeArgs,
}

/// One prediction, as `predict --json` prints it.
#[derive(Debug, Serialize)]
struct Prediction<'a> {
    text: &'a str,
    label: &'a str,
    probabilities: ClassProbabilities<'a>,
}

/// `{class: probability}` in class order, probabilities as float32.
#[derive(Debug)]
struct ClassProbabilities<'a>(&'a [String], &'a [f32]);

impl Serialize for ClassProbabilities<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (name, p) in self.0.iter().zip(self.1) {
            map.serialize_entry(name, p)?;
        }
        map.end()
    }
}

/// Runs `lstm-tch predict`.
pub fn predict(args: &PredictArgs) -> Result<()> {
    let device = args.runtime.init()?;
    ensure!(args.batch_size >= 1, "--batch-size must be at least 1");
    let ckpt = checkpoint::load(&args.checkpoint, device)?;
    let mut out = std::io::stdout().lock();
    let mut emit = |texts: &[String]| -> Result<()> {
        let probabilities = classify(&ckpt, texts, device)?;
        for (text, probs) in texts.iter().zip(probabilities.chunks(ckpt.labels.len())) {
            let best = probs.iter().enumerate().fold(0, |b, (i, &p)| if p > probs[b] { i } else { b });
            let label = &ckpt.labels.names()[best];
            if args.json {
                let probabilities = ClassProbabilities(ckpt.labels.names(), probs);
                writeln!(out, "{}", serde_json::to_string(&Prediction { text, label, probabilities })?)?;
            } else {
                let probs: Vec<String> =
                    ckpt.labels.names().iter().zip(probs).map(|(n, p)| format!("{n}={p:.4}")).collect();
                writeln!(out, "{label}\t{}\t{text}", probs.join(" "))?;
            }
        }
        out.flush()?;
        Ok(())
    };
    if !args.sentences.is_empty() {
        return emit(&args.sentences);
    }
    let (reader, name): (Box<dyn BufRead>, String) = match &args.file {
        Some(path) => {
            let file =
                std::fs::File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
            (Box::new(std::io::BufReader::new(file)), path.display().to_string())
        }
        None => (Box::new(std::io::stdin().lock()), "standard input".to_owned()),
    };
    // Interactive input is answered line by line; files and pipes are classified in batches.
    let chunk = if args.file.is_none() && std::io::stdin().is_terminal() { 1 } else { args.batch_size };
    let mut pending = Vec::with_capacity(chunk);
    for line in dataset::lines(name, reader) {
        pending.push(line?.1);
        if pending.len() == chunk {
            emit(&pending)?;
            pending.clear();
        }
    }
    if !pending.is_empty() {
        emit(&pending)?;
    }
    Ok(())
}

/// Class probabilities of `texts`, flattened [texts × classes].
pub fn classify(ckpt: &checkpoint::Checkpoint, texts: &[String], device: Device) -> Result<Vec<f32>> {
    let data = Encoded::new(
        texts.iter().map(String::as_str),
        vec![0; texts.len()],
        &ckpt.tokenizer,
        &ckpt.vocab,
        ckpt.config.truncate(),
    )?;
    let logits = training::logits(&ckpt.model, &data, texts.len().max(1), device)?;
    let probs: Tensor = logits.f_softmax(1, Kind::Float)?;
    Ok(Vec::<f32>::try_from(&probs.f_flatten(0, -1)?)?)
}

/// `lstm-tch info`: which libtorch this process runs on, its threads, and what became of CUDA
/// support (see [`device`](crate::device)); the first thing to look at when a device is not
/// found.
pub fn info() -> Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "lstm-tch        {}", env!("CARGO_PKG_VERSION"))?;
    writeln!(out, "libtorch        {}", device::libtorch_dir().unwrap_or_else(|| "as linked".into()))?;
    writeln!(out, "threads         {} (intra-op)", tch::get_num_threads())?;
    writeln!(out, "CUDA            {}", device::cuda_support())?;
    if let Some(version) = device::cuda_runtime_version() {
        writeln!(out, "CUDA runtime    {}.{}", version / 1000, version % 1000 / 10)?;
    }
    writeln!(out, "CUDA devices    {}", device::cuda_device_count())?;
    writeln!(out, "MPS             {}", if tch::utils::has_mps() { "available" } else { "not available" })?;
    Ok(())
}
