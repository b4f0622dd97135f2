//! A training run, from data files to a checkpoint directory: what `lstm-tch train` does, as a
//! library function of plain values ([`TrainConfig`]), resumable.
//!
//! The checkpoint directory (`--out`) holds, beside the deployable model of the best epoch so
//! far (`model.safetensors`, `config.json`: what `eval`, `predict` and PyTorch load), the run's
//! training state (`training/`, [`state`]): the current weights, Adam's state, the generators'
//! states, where the run stands, its reports and the hashes of its data. Both are written
//! together, in one atomic save ([`crate::checkpoint::save_with`]), at every epoch's end,
//! every [`TrainConfig::save_every`] batches and when the run is interrupted; [`resume`]
//! continues from the last one and ends with the same bits as the run never interrupted.

use std::{
    path::PathBuf,
    time::{Duration, Instant},
};

use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};
use tch::{nn, Device};

use super::{
    fit::{self, EpochReport, Resume, TrainOptions},
    optim::AdamConfig,
    report::{ExportedData, TrainReport},
    state::{DataHash, StateFiles, TrainingState},
    Interrupt, Interrupted, TrainConfig,
};
use crate::{
    checkpoint::{self, CheckpointConfig, Weights},
    data::{Encoded, Example, LabelSet, Tokenizer, TokenizerConfig, Vocab},
    dist::{model_parameters, Group, Launch, Replica},
    infer::{self, metrics::Metrics},
    nn::{TextClassifier, TextClassifierConfig},
    runtime::{device::DeviceSpec, report::JsonFile},
};

mod resume;
mod saver;

pub use resume::resume;
use saver::Saver;

/// How a run ended.
#[derive(Debug)]
pub struct TrainOutcome {
    /// Every epoch's report.
    pub epochs: Vec<EpochReport>,
    /// The best epoch (1-based), if any ran.
    pub best_epoch: Option<usize>,
    /// The best epoch's metrics on the test data, if there was test data.
    pub test: Option<Metrics>,
}

/// Trains a classifier as `config` says, saving to `config.out`; stops early, with an
/// [`Interrupted`] error, when `interrupt` is requested.
///
/// Under `torchrun` (`RANK` and `WORLD_SIZE` set), this process is one rank of a data-parallel
/// run: rank 0 saves and reports. When torchrun restarts the job after a failure
/// (`TORCHELASTIC_RESTART_COUNT` > 0), every rank resumes from the last save in `config.out`.
pub fn train(config: &TrainConfig, interrupt: &Interrupt) -> Result<TrainOutcome> {
    let launch = Launch::from_env()?;
    if let Some(launch) = launch.as_ref().filter(|l| l.restart_count > 0) {
        if config.out.join(checkpoint::TRAINING_STATE_DIR).join(super::state::STATE_FILE).is_file() {
            return resume::resume_restarted(config, launch, interrupt);
        }
    }
    let workdir = std::env::current_dir().context("cannot read the working directory")?;
    Run::prepare(config.clone(), workdir, interrupt, launch.as_ref())?.go(None)
}

/// A run with its data encoded and its model built.
struct Run<'a> {
    config: TrainConfig,
    workdir: PathBuf,
    interrupt: &'a Interrupt,
    started: Instant,
    device: Device,
    labels: LabelSet,
    train: Encoded,
    dev: Option<Encoded>,
    test: Option<Encoded>,
    data: Vec<DataHash>,
    vs: nn::VarStore,
    model: TextClassifier,
    checkpoint_config: CheckpointConfig,
    options: TrainOptions,
    report_file: Option<JsonFile>,
    /// Under torchrun, this rank's part in the run.
    replica: Option<Replica>,
}

impl<'a> Run<'a> {
    /// Validates `config`, joins the job `launch` describes (checking every rank has the same
    /// flags and data), reads and encodes the data, builds the model (initialised from
    /// `config.seed`; rank 0's values on every rank).
    fn prepare(
        config: TrainConfig,
        workdir: PathBuf,
        interrupt: &'a Interrupt,
        launch: Option<&Launch>,
    ) -> Result<Self> {
        let started = Instant::now();
        let mut device = config.runtime.init()?;
        if let (Some(launch), Device::Cuda(index)) = (launch, device) {
            // Each worker of a machine on its own GPU, as `torch.cuda.set_device(LOCAL_RANK)`.
            device = DeviceSpec::Cuda(index + launch.local_rank).resolve()?;
        }
        let adam_config = AdamConfig::with_lr(config.lr);
        adam_config.validate()?;
        config.validate()?;
        let timeout = Duration::from_secs(config.dist_timeout);
        let group = launch.map(|launch| Group::join(launch, timeout)).transpose()?;
        let leader = group.as_ref().is_none_or(|g| g.rank() == 0);
        if leader {
            // Before the data is read and the model built: a run must not train for an epoch to
            // learn that its checkpoint cannot be saved.
            checkpoint::check_target(&config.out)?;
        }
        let create =
            |path: &Option<PathBuf>| path.as_deref().filter(|_| leader).map(JsonFile::create).transpose();
        let (report_file, export_file) = (create(&config.report)?, create(&config.export_encoded)?);
        let encoded = EncodedData::read(&config, leader)?;
        if let Some(group) = &group {
            let fingerprint = run_fingerprint(&config, &encoded.data, group.world_size())?;
            group.check_same(&fingerprint, "flags or data")?;
        }
        let model_config = config.model_config(encoded.vocab.len(), encoded.labels.len());
        let class_weights = config.class_weights.weights(&encoded.train.labels, encoded.labels.len());
        if let Some(file) = export_file {
            file.write(&ExportedData::new(&encoded, &config, model_config, class_weights.clone()))?;
        }
        let (vs, model) = build_model(&config, model_config, device)?;
        let replica = match group {
            Some(group) => {
                Some(Replica::new(group, &model_parameters(&vs, &model_config)?, config.seed as u64)?)
            }
            None => None,
        };
        let EncodedData { data, labels, tokenizer, vocab, train, dev, test } = encoded;
        let checkpoint_config =
            CheckpointConfig::new(model_config, tokenizer.config(), config.truncate(), &vocab, &labels);
        let mut options = config.train_options(adam_config, class_weights, device);
        options.progress &= leader;
        Ok(Self {
            config,
            workdir,
            interrupt,
            started,
            device,
            labels,
            train,
            dev,
            test,
            data,
            vs,
            model,
            checkpoint_config,
            options,
            report_file,
            replica,
        })
    }

    /// Whether this process saves and reports: rank 0, or the only one.
    fn leader(&self) -> bool {
        self.replica.as_ref().is_none_or(|r| r.rank() == 0)
    }

    /// Trains (from the start, or from a saved state and whether its directory's model is the
    /// run's best), evaluates the best epoch on the test data, marks the state finished and
    /// writes the report.
    fn go(mut self, resume: Option<(Resume, bool)>) -> Result<TrainOutcome> {
        let report_file = self.report_file.take();
        let (epochs, saver) = self.train_epochs(resume)?;
        let best_epoch = epochs.iter().rev().find(|e| e.best).map(|e| e.epoch);
        if !self.leader() {
            return Ok(TrainOutcome { epochs, best_epoch, test: None });
        }
        let out = &self.config.out;
        if epochs.is_empty() {
            checkpoint::save(out, &self.checkpoint_config, &self.vs)?;
            eprintln!("no epochs: saved the initial model to {}", out.display());
        }
        let test_metrics = self.test(best_epoch)?;
        self.save_finished(&epochs, saver.best_saved, test_metrics.clone())?;

        let seconds = self.started.elapsed().as_secs_f64();
        let training_seconds: f64 = epochs.iter().map(|e| e.seconds).sum();
        let (saves, save_seconds) = (saver.saves, saver.save_seconds);
        eprintln!(
            "done in {seconds:.1} s; checkpoint: {} (saved {saves} times during training: {save_seconds:.2} s, \
             {:.1} % of the training time)",
            out.display(),
            100.0 * save_seconds / training_seconds.max(1e-9)
        );
        if let Some(file) = report_file {
            file.write(&TrainReport {
                config: &self.config,
                labels: self.labels.names(),
                vocab_size: self.checkpoint_config.vocab.len(),
                train_texts: self.train.len(),
                dev_texts: self.dev.as_ref().map_or(0, Encoded::len),
                test_texts: self.test.as_ref().map_or(0, Encoded::len),
                epochs: &epochs,
                best_epoch,
                test: test_metrics.clone(),
                seconds,
            })?;
        }
        Ok(TrainOutcome { epochs, best_epoch, test: test_metrics })
    }

    /// Runs the fit loop with a [`Saver`]; returns the epochs' reports and the saver, or an
    /// [`Interrupted`] error when the run was stopped.
    fn train_epochs(&self, resume: Option<(Resume, bool)>) -> Result<(Vec<EpochReport>, Saver<'_, 'a>)> {
        let (resume, best_saved) = resume.map_or((None, false), |(r, best)| (Some(r), best));
        let mut saver = Saver { run: self, best_saved, saved_at: (0, 0), saves: 0, save_seconds: 0.0 };
        let dev = self.dev.as_ref().map(|d| (d, &self.labels));
        let (model, vs, train, options) = (&self.model, &self.vs, &self.train, &self.options);
        let fit = match &self.replica {
            Some(replica) => fit::fit_replica(model, vs, train, dev, options, resume, &mut saver, replica)?,
            None => fit::fit_from(model, vs, train, dev, options, resume, &mut saver)?,
        };
        let (epochs_done, batches_done) = saver.saved_at;
        let out = &self.config.out;
        if fit.stopped {
            let (resume, rank) = match &self.replica {
                Some(r) => (
                    format!("torchrun --nproc-per-node {} ... lstm-tch train --resume", r.world_size()),
                    format!("rank {}: ", r.rank()),
                ),
                None => ("lstm-tch train --resume".to_owned(), String::new()),
            };
            bail!(Interrupted {
                message: format!(
                    "{rank}interrupted: saved the training state (epoch {} of {}, batch {batches_done}) in {}; \
                     resume with `{resume} {}`",
                    epochs_done + 1,
                    self.config.epochs,
                    out.display(),
                    out.display()
                )
            });
        }
        Ok((fit.reports, saver))
    }

    /// The best epoch's metrics on the test data (the model saved in the checkpoint
    /// directory), if there is test data.
    fn test(&self, best_epoch: Option<usize>) -> Result<Option<Metrics>> {
        let Some(test) = &self.test else { return Ok(None) };
        let best = checkpoint::load(&self.config.out, self.device)?;
        let metrics = infer::evaluate(&best.model, test, &self.labels, 256, self.device)?;
        eprintln!(
            "test (best epoch {}): accuracy {:.4}  macro-F1 {:.4}  ({} texts)",
            best_epoch.map_or("-".to_owned(), |e| e.to_string()),
            metrics.accuracy,
            metrics.macro_f1,
            metrics.total
        );
        Ok(Some(metrics))
    }

    /// Saves the finished state: the reports and the test metrics, no tensors (the run cannot
    /// go on).
    fn save_finished(&self, epochs: &[EpochReport], best_saved: bool, test: Option<Metrics>) -> Result<()> {
        let position = fit::Position { reports: epochs.to_vec(), ..Default::default() };
        let mut finished = self.state(&position, Vec::new(), best_saved || !epochs.is_empty());
        finished.finished = true;
        finished.test = test;
        checkpoint::save_with(&self.config.out, &self.checkpoint_config, Weights::Kept, |dir| {
            StateFiles { state: finished, tensors: None }.write(dir)
        })
    }

    /// The training state at `position`.
    fn state(&self, position: &fit::Position, adam_steps: Vec<u64>, best_saved: bool) -> TrainingState {
        TrainingState::new(&self.config, &self.workdir, &self.data, position, adam_steps, best_saved)
    }
}

/// A run's data, read and encoded: its splits' hashes, labels, tokenizer and vocabulary.
pub(super) struct EncodedData {
    /// Each split's size and SHA-256.
    pub(super) data: Vec<DataHash>,
    /// The training data's labels.
    pub(super) labels: LabelSet,
    /// The tokenizer the flags describe.
    pub(super) tokenizer: Tokenizer,
    /// The training data's vocabulary.
    pub(super) vocab: Vocab,
    /// The training texts, encoded.
    pub(super) train: Encoded,
    /// The dev texts, encoded.
    pub(super) dev: Option<Encoded>,
    /// The test texts, encoded.
    pub(super) test: Option<Encoded>,
}

impl EncodedData {
    /// Reads the splits `config` names, builds the labels and the vocabulary from the training
    /// data, encodes every split and says what it read.
    fn read(config: &TrainConfig, announce: bool) -> Result<Self> {
        let splits = config.splits()?;
        let mut data = vec![DataHash::new("train", &splits.train)];
        data.extend(splits.dev.as_deref().map(|d| DataHash::new("dev", d)));
        data.extend(splits.test.as_deref().map(|d| DataHash::new("test", d)));
        let labels = LabelSet::from_examples(&splits.train)?;
        let tokenizer =
            Tokenizer::new(TokenizerConfig { mode: config.tokenizer, lowercase: !config.no_lowercase });
        let texts = splits.train.iter().map(|e| e.text.as_str());
        let vocab = Vocab::from_texts(texts, &tokenizer, config.min_freq, config.max_vocab)?;
        let encode = |examples: &[Example], what: &str| -> Result<Encoded> {
            let classes = labels.indices(examples, what)?;
            Encoded::new(
                examples.iter().map(|e| e.text.as_str()),
                classes,
                &tokenizer,
                &vocab,
                config.truncate(),
            )
        };
        let train = encode(&splits.train, "training")?;
        let dev = splits.dev.as_deref().map(|d| encode(d, "dev")).transpose()?;
        let test = splits.test.as_deref().map(|d| encode(d, "test")).transpose()?;
        drop(splits);
        if announce {
            eprintln!(
                "data: {} train, {} dev, {} test texts; {} classes [{}]; vocabulary {} tokens",
                train.len(),
                dev.as_ref().map_or(0, Encoded::len),
                test.as_ref().map_or(0, Encoded::len),
                labels.len(),
                labels.names().join(", "),
                vocab.len()
            );
        }
        Ok(Self { data, labels, tokenizer, vocab, train, dev, test })
    }
}

/// What every rank of a data-parallel run must agree on: its flags (but the paths, which may
/// differ between machines, and what only changes the output), its data's hashes and the
/// world size; a SHA-256.
fn run_fingerprint(config: &TrainConfig, data: &[DataHash], world_size: usize) -> Result<Vec<u8>> {
    let mut flags = config.clone();
    (flags.train, flags.dev, flags.test, flags.report, flags.export_encoded) = (None, None, None, None, None);
    (flags.out, flags.quiet, flags.dist_timeout) = (PathBuf::new(), false, 0);
    flags.runtime = Default::default();
    let json = serde_json::to_vec(&(&flags, data, world_size))?;
    Ok(Sha256::digest(json).to_vec())
}

/// Seeds the default generator with `config.seed`, builds the model on the CPU (its
/// initialisation draws) and moves it to `device`.
fn build_model(
    config: &TrainConfig,
    model_config: TextClassifierConfig,
    device: Device,
) -> Result<(nn::VarStore, TextClassifier)> {
    tch::manual_seed(config.seed);
    let mut vs = nn::VarStore::new(Device::Cpu);
    let model = TextClassifier::new(&vs.root(), model_config)?;
    vs.set_device(device);
    model.flatten_parameters()?; // as PyTorch's model.to(device) does on CUDA; a no-op on the CPU
    Ok((vs, model))
}
