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
    path::{Path, PathBuf},
    time::Instant,
};

use anyhow::{bail, ensure, Context, Result};
use tch::{nn, Device};

use super::{
    fit::{self, EpochReport, Flow, Observer, Resume, Snapshot, TrainOptions},
    optim::AdamConfig,
    report::{ExportedData, TrainReport},
    state::{DataHash, StateFiles, StateTensors, TrainingState},
    Interrupt, Interrupted, TrainConfig,
};
use crate::{
    checkpoint::{self, CheckpointConfig, Weights},
    data::{Encoded, Example, LabelSet, Tokenizer, TokenizerConfig, Vocab},
    infer::{self, metrics::Metrics},
    nn::{TextClassifier, TextClassifierConfig},
    runtime::{fault, report::JsonFile, rng::generator_state},
};

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
pub fn train(config: &TrainConfig, interrupt: &Interrupt) -> Result<TrainOutcome> {
    let workdir = std::env::current_dir().context("cannot read the working directory")?;
    Run::prepare(config.clone(), workdir, interrupt)?.go(None)
}

/// Continues the interrupted run whose checkpoint directory is `dir`, with the configuration it
/// was started with (its paths read relative to the directory it was started in). Refused when
/// the run finished, or when its data changed since.
pub fn resume(dir: &Path, interrupt: &Interrupt) -> Result<TrainOutcome> {
    let saved = super::state::load_state(dir)?;
    ensure!(
        !saved.finished,
        "the run in {} finished (epoch {} of {}); nothing to resume",
        dir.display(),
        saved.position.epochs_done(),
        saved.config.epochs
    );
    let mut config = saved.config.clone();
    config.resolve_paths(&saved.workdir);
    config.out = dir.to_owned();
    let run = Run::prepare(config, saved.workdir.clone(), interrupt)?;
    for (now, then) in run.data.iter().zip(&saved.data) {
        ensure!(
            now == then,
            "the {} data changed since this run began ({} examples, SHA-256 {}…; it was started on {} \
             examples, {}…): resume needs the data it started with, or start a new run",
            now.split,
            now.examples,
            &now.sha256[..12],
            then.examples,
            &then.sha256[..12]
        );
    }
    ensure!(run.data.len() == saved.data.len(), "the run's data splits changed since it began");
    let resume = super::state::load_resume(dir, &saved, &run.vs)?;
    eprintln!(
        "resuming {}: epoch {} of {}, batch {}",
        dir.display(),
        saved.position.epochs_done() + 1,
        run.config.epochs,
        saved.position.batches_done
    );
    let best_saved = saved.best_saved;
    run.go(Some((resume, best_saved)))
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
}

impl<'a> Run<'a> {
    /// Validates `config`, reads and encodes the data, builds the model (initialised from
    /// `config.seed`).
    fn prepare(config: TrainConfig, workdir: PathBuf, interrupt: &'a Interrupt) -> Result<Self> {
        let started = Instant::now();
        let device = config.runtime.init()?;
        let adam_config = AdamConfig::with_lr(config.lr);
        adam_config.validate()?;
        config.validate()?;
        let report_file = config.report.as_deref().map(JsonFile::create).transpose()?;
        let export_file = config.export_encoded.as_deref().map(JsonFile::create).transpose()?;
        let encoded = EncodedData::read(&config)?;
        let model_config = config.model_config(encoded.vocab.len(), encoded.labels.len());
        let class_weights = config.class_weights.weights(&encoded.train.labels, encoded.labels.len());
        if let Some(file) = export_file {
            file.write(&ExportedData::new(&encoded, &config, model_config, class_weights.clone()))?;
        }
        let (vs, model) = build_model(&config, model_config, device)?;
        let EncodedData { data, labels, tokenizer, vocab, train, dev, test } = encoded;
        let checkpoint_config =
            CheckpointConfig::new(model_config, tokenizer.config(), config.truncate(), &vocab, &labels);
        let options = config.train_options(adam_config, class_weights, device);
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
        })
    }

    /// Trains (from the start, or from a saved state and whether its directory's model is the
    /// run's best), evaluates the best epoch on the test data, marks the state finished and
    /// writes the report.
    fn go(mut self, resume: Option<(Resume, bool)>) -> Result<TrainOutcome> {
        let report_file = self.report_file.take();
        let (epochs, saver) = self.train_epochs(resume)?;
        let out = &self.config.out;
        if epochs.is_empty() {
            checkpoint::save(out, &self.checkpoint_config, &self.vs)?;
            eprintln!("no epochs: saved the initial model to {}", out.display());
        }
        let best_epoch = epochs.iter().rev().find(|e| e.best).map(|e| e.epoch);
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
        let fit = fit::fit_from(&self.model, &self.vs, &self.train, dev, &self.options, resume, &mut saver)?;
        let (epochs_done, batches_done) = saver.saved_at;
        let out = &self.config.out;
        if fit.stopped {
            bail!(Interrupted {
                message: format!(
                    "interrupted: saved the training state (epoch {} of {}, batch {batches_done}) in {}; \
                     resume with `lstm-tch train --resume {}`",
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
    fn read(config: &TrainConfig) -> Result<Self> {
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
        eprintln!(
            "data: {} train, {} dev, {} test texts; {} classes [{}]; vocabulary {} tokens",
            train.len(),
            dev.as_ref().map_or(0, Encoded::len),
            test.as_ref().map_or(0, Encoded::len),
            labels.len(),
            labels.names().join(", "),
            vocab.len()
        );
        Ok(Self { data, labels, tokenizer, vocab, train, dev, test })
    }
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

/// Saves the checkpoint directory and the training state at the points [`train`] promises, and
/// stops the run when interrupted.
struct Saver<'r, 'a> {
    run: &'r Run<'a>,
    /// Whether the directory's model is this run's best epoch (not yet before the first epoch
    /// ends: a save before then writes the current weights, so the path always holds a model).
    best_saved: bool,
    /// Where the last save was: epochs finished, batches of the next one.
    saved_at: (usize, usize),
    /// Saves by this process, and the seconds they took.
    saves: usize,
    save_seconds: f64,
}

impl Saver<'_, '_> {
    /// One atomic save of the model (the current weights when `new_best`, else the best so
    /// far) and of the training state at `snapshot`.
    fn save(&mut self, snapshot: &Snapshot<'_>, new_best: bool) -> Result<()> {
        let run = self.run;
        let started = Instant::now();
        let weights = if new_best || !self.best_saved { Weights::Vars(&run.vs) } else { Weights::Kept };
        self.best_saved |= new_best;
        let adam = snapshot.optimizer.state()?;
        let mut generators = vec![(Device::Cpu, generator_state(Device::Cpu)?)];
        if let Device::Cuda(_) = run.device {
            generators.push((run.device, generator_state(run.device)?));
        }
        let state = run.state(snapshot.position, adam.steps.clone(), self.best_saved);
        let tensors = StateTensors { vs: &run.vs, adam, epoch_rng: snapshot.epoch_rng, generators };
        let files = StateFiles { state, tensors: Some(tensors) };
        checkpoint::save_with(&run.config.out, &run.checkpoint_config, weights, |dir| files.write(dir))?;
        self.saved_at = (snapshot.position.epochs_done(), snapshot.position.batches_done);
        self.saves += 1;
        self.save_seconds += started.elapsed().as_secs_f64();
        Ok(())
    }
}

impl Observer for Saver<'_, '_> {
    fn after_batch(&mut self, snapshot: &Snapshot<'_>) -> Result<Flow> {
        fault::batch_done(|| {
            let position = snapshot.position;
            position.reports.iter().map(|r| r.batch_losses.len()).sum::<usize>() + position.batches_done
        });
        let every = self.run.config.save_every;
        let last_of_epoch =
            snapshot.position.batches_done == self.run.train.len().div_ceil(self.run.config.batch_size);
        if self.run.interrupt.requested() && !last_of_epoch {
            self.save(snapshot, false)?;
            return Ok(Flow::Stop);
        }
        // The epoch's last batch is saved with the epoch, after its dev evaluation.
        if every > 0 && snapshot.position.batches_done.is_multiple_of(every) && !last_of_epoch {
            self.save(snapshot, false)?;
        }
        Ok(Flow::Continue)
    }

    fn after_epoch(&mut self, epoch: &EpochReport, snapshot: &Snapshot<'_>) -> Result<Flow> {
        let config = &self.run.config;
        let dev = epoch.dev.as_ref().map_or(String::new(), |m| {
            format!("  dev accuracy {:.4}  macro-F1 {:.4}", m.accuracy, m.macro_f1)
        });
        let mark = if epoch.best { format!("  saved {}", config.out.display()) } else { String::new() };
        eprintln!(
            "epoch {}/{}  train loss {:.4}{dev}  {:.1} s  {:.0} texts/s{mark}",
            epoch.epoch, config.epochs, epoch.train_loss, epoch.seconds, epoch.texts_per_second
        );
        self.save(snapshot, epoch.best)?;
        Ok(if self.run.interrupt.requested() { Flow::Stop } else { Flow::Continue })
    }
}
