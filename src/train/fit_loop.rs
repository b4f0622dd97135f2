//! [`fit_from`]'s loop: its state between two batches, and the steps of an epoch (the batch
//! order, the batches, the dev evaluation and the choice of the best epoch), in the order
//! [`super::fit`]'s documentation gives.

use std::time::Instant;

use anyhow::{ensure, Context, Result};
use tch::{nn, Device, Tensor};

#[cfg(doc)]
use super::fit_from;
use super::{
    fit::{EpochReport, FitOutcome, Flow, Observer, Position, Resume, Snapshot, TrainOptions},
    optim::Adam,
    progress::Progress,
};
use crate::runtime::checks;
use crate::{
    data::{Encoded, LabelSet},
    dist::Replica,
    infer::evaluate,
    nn::{weighted_cross_entropy, TextClassifier},
    runtime::rng::{generator_state, set_generator_state},
};

/// [`fit_from`]'s state between two batches: its inputs, the optimizer and where the run stands.
pub(super) struct FitLoop<'a> {
    /// The model trained.
    model: &'a TextClassifier,
    /// The training data.
    train: &'a Encoded,
    /// The dev data and its labels, evaluated after every epoch.
    dev: Option<(&'a Encoded, &'a LabelSet)>,
    /// How to train.
    options: &'a TrainOptions,
    /// Adam over the model's variables.
    optimizer: Adam,
    /// The loss's class weights, on the model's device.
    class_weights: Option<Tensor>,
    /// Batches per epoch.
    num_batches: usize,
    /// Where the run stands.
    position: Position,
    /// Mid-epoch, the saved generator states are restored after the epoch's order is redrawn:
    /// the CPU generator's state before the order was drawn, then every generator's at the save.
    restore: Option<(Tensor, Vec<(Device, Tensor)>)>,
    /// In a data-parallel run, this rank's part in it.
    replica: Option<&'a Replica>,
    /// In a data-parallel run, whether the ranks agreed to stop after the last batch.
    stop_agreed: bool,
}

impl<'a> FitLoop<'a> {
    /// Checks the options, creates the optimizer and, with `resume`, restores the optimizer's
    /// state and the position (and the generators' states, at an epoch's start).
    pub(super) fn start(
        model: &'a TextClassifier,
        vs: &nn::VarStore,
        train: &'a Encoded,
        dev: Option<(&'a Encoded, &'a LabelSet)>,
        options: &'a TrainOptions,
        resume: Option<Resume>,
        replica: Option<&'a Replica>,
    ) -> Result<Self> {
        checks::batch_size(options.batch_size)?;
        ensure!(!train.is_empty(), "no training data");
        let optimizer = Adam::new(options.adam, vs, options.adam_config)?;
        let class_weights = options
            .class_weights
            .as_deref()
            .map(|w| Tensor::from_slice(w).f_to_device(options.device))
            .transpose()?;
        let num_batches = match replica {
            Some(replica) => replica.num_batches(train.len(), options.batch_size),
            None => train.len().div_ceil(options.batch_size),
        };
        let position = Position::default();
        let mut fit = Self {
            model,
            train,
            dev,
            options,
            optimizer,
            class_weights,
            num_batches,
            position,
            restore: None,
            replica,
            stop_agreed: false,
        };
        if let Some(resume) = resume {
            fit.resume(resume)?;
        }
        Ok(fit)
    }

    /// Trains epoch after epoch until the last, or until `observer` stops the run.
    pub(super) fn run(mut self, observer: &mut dyn Observer) -> Result<FitOutcome> {
        while self.position.epochs_done() < self.options.epochs {
            let epoch = self.position.epochs_done() + 1;
            let (epoch_rng, batches) = self.epoch_order()?;
            let Some(loss_sum) = self.run_batches(epoch, epoch_rng.as_ref(), &batches, observer)? else {
                return Ok(FitOutcome { reports: self.position.reports, stopped: true });
            };
            if self.finish_epoch(epoch, loss_sum, observer)? == Flow::Stop && epoch < self.options.epochs {
                return Ok(FitOutcome { reports: self.position.reports, stopped: true });
            }
        }
        Ok(FitOutcome { reports: self.position.reports, stopped: false })
    }

    /// Restores a saved optimizer state and position; the generators' states at once at an
    /// epoch's start, else kept for [`FitLoop::epoch_order`].
    fn resume(&mut self, resume: Resume) -> Result<()> {
        if resume.adam.steps.iter().any(|&steps| steps > 0) {
            self.replay_first_backward()?;
        }
        let num_batches = self.num_batches;
        self.optimizer.load_state(&resume.adam)?;
        self.position = resume.position;
        let position = &self.position;
        ensure!(
            position.batches_done < num_batches && position.batch_losses.len() == position.batches_done,
            "the saved position (batch {} of {num_batches}) does not fit this data",
            position.batches_done
        );
        // A data-parallel epoch's order comes from the sampler's generator, not the default one.
        if position.batches_done == 0 || self.replica.is_some() {
            for (device, state) in &resume.generators {
                set_generator_state(*device, state)?;
            }
        } else {
            let epoch_rng =
                resume.epoch_rng.context("the saved position lacks the epoch's generator state")?;
            self.restore = Some((epoch_rng, resume.generators));
        }
        Ok(())
    }

    /// In a data-parallel run resumed after its first step, brings the freshly built DDP to
    /// where the run's own was. DDP lays its buckets out in declaration order for the first
    /// step, then rebuilds them in the order the gradients arrived, and from three ranks on the
    /// layout changes the sums' bits. Replaying the first step's forward and backward (its
    /// batch, through DDP, all ranks together; gradients averaged and left in `.grad`, which
    /// the next step replaces; no update) records that order, so the next step runs on the
    /// rebuilt buckets, as the interrupted run did. Its dropout draws are undone when the
    /// generators are restored.
    fn replay_first_backward(&mut self) -> Result<()> {
        let Some(replica) = self.replica else { return Ok(()) };
        let options = self.options;
        let batches = replica.epoch_batches(self.train, options.batch_size, options.bucket, 0)?;
        let batch = self.train.batch(&batches[0])?.to_device(options.device)?;
        replica.before_forward()?;
        let logits = self.model.forward(&batch.tokens, &batch.lengths, true)?;
        replica.after_forward()?;
        weighted_cross_entropy(&logits, &batch.labels, self.class_weights.as_ref())?.f_backward()?;
        Ok(())
    }

    /// The epoch's batch order, and the generator state it was drawn from (when resumable, or
    /// when redrawn from a saved one, whose generator states are then restored).
    fn epoch_order(&mut self) -> Result<(Option<Tensor>, Vec<Vec<usize>>)> {
        let (train, options) = (self.train, self.options);
        if let Some(replica) = self.replica {
            let epoch = self.position.epochs_done();
            return Ok((None, replica.epoch_batches(train, options.batch_size, options.bucket, epoch)?));
        }
        Ok(match self.restore.take() {
            Some((epoch_rng, generators)) => {
                set_generator_state(Device::Cpu, &epoch_rng)?;
                let batches = train.epoch_batches(options.batch_size, options.bucket)?;
                for (device, state) in &generators {
                    set_generator_state(*device, state)?;
                }
                (Some(epoch_rng), batches)
            }
            None => {
                let epoch_rng = options.resumable.then(|| generator_state(Device::Cpu)).transpose()?;
                (epoch_rng, train.epoch_batches(options.batch_size, options.bucket)?)
            }
        })
    }

    /// Trains on the epoch's `batches` not yet done, showing every one to `observer`; returns
    /// the sum of the epoch's batch losses, or `None` when the observer stopped the run.
    fn run_batches(
        &mut self,
        epoch: usize,
        epoch_rng: Option<&Tensor>,
        batches: &[Vec<usize>],
        observer: &mut dyn Observer,
    ) -> Result<Option<f64>> {
        let options = self.options;
        let started = Instant::now();
        let seconds_before = self.position.seconds;
        let mut progress =
            Progress::new(self.num_batches, format!("epoch {epoch}/{}", options.epochs), options.progress);
        let mut loss_sum: f64 = match self.replica {
            Some(_) => self.position.rank_losses.iter().map(|losses| mean(losses)).sum(),
            None => self.position.batch_losses.iter().map(|&l| f64::from(l)).sum(),
        };
        for indices in &batches[self.position.batches_done..] {
            let step = self.position.batches_done + 1;
            let in_job = |r: &Replica| {
                format!("rank {} of {}: step {step} of epoch {epoch} failed", r.rank(), r.world_size())
            };
            let loss = match self.replica {
                Some(replica) => self.train_batch(epoch, indices).with_context(|| in_job(replica))?,
                None => self.train_batch(epoch, indices)?,
            } as f32;
            let stop_requested = observer.stop_requested();
            let (step_loss, stop_requested) = match self.replica {
                Some(replica) => self.record_step(loss, stop_requested).with_context(|| in_job(replica))?,
                None => self.record_step(loss, stop_requested)?,
            };
            loss_sum += step_loss;
            let position = &mut self.position;
            position.batches_done += 1;
            position.texts_seen += indices.len();
            position.seconds = seconds_before + started.elapsed().as_secs_f64();
            progress.update(
                position.batches_done,
                loss_sum / position.batches_done as f64,
                position.texts_seen,
            );
            let snapshot = Snapshot {
                position: &self.position,
                optimizer: &self.optimizer,
                epoch_rng,
                epoch_batches: self.num_batches,
                stop_requested,
            };
            if observer.after_batch(&snapshot)? == Flow::Stop {
                progress.finish();
                return Ok(None);
            }
        }
        progress.finish();
        Ok(Some(loss_sum))
    }

    /// Records a step's `loss`; in a data-parallel run, with every rank's, the ranks agreeing
    /// whether any asked to stop. Returns the step's loss as the epoch's mean counts it (the
    /// mean over the ranks) and whether to stop after it.
    fn record_step(&mut self, loss: f32, stop_requested: bool) -> Result<(f64, bool)> {
        self.position.batch_losses.push(loss);
        let Some(replica) = self.replica else { return Ok((f64::from(loss), stop_requested)) };
        let (losses, stop) = replica.agree(loss, stop_requested)?;
        let step_loss = mean(&losses);
        self.position.rank_losses.push(losses);
        self.stop_agreed = stop;
        Ok((step_loss, stop))
    }

    /// One training step on the texts `indices`: forward, loss, backward, Adam; returns the
    /// loss, refused when not finite.
    fn train_batch(&mut self, epoch: usize, indices: &[usize]) -> Result<f64> {
        let options = self.options;
        let batch = self.train.batch(indices)?.to_device(options.device)?;
        let loss = match self.replica {
            Some(replica) => {
                replica.before_forward()?;
                let logits = self.model.forward(&batch.tokens, &batch.lengths, true)?;
                replica.after_forward()?;
                let loss = weighted_cross_entropy(&logits, &batch.labels, self.class_weights.as_ref())?;
                self.optimizer.backward_step_clip_accumulated(&loss, options.clip_grad_norm)?;
                loss
            }
            None => {
                let logits = self.model.forward(&batch.tokens, &batch.lengths, true)?;
                let loss = weighted_cross_entropy(&logits, &batch.labels, self.class_weights.as_ref())?;
                self.optimizer.backward_step_clip(&loss, options.clip_grad_norm)?;
                loss
            }
        };
        let loss = loss.f_double_value(&[])?;
        ensure!(
            loss.is_finite(),
            "the training loss became {loss} in epoch {epoch}; lower --lr or set --clip-grad-norm"
        );
        Ok(loss)
    }

    /// Ends the epoch: evaluates on the dev data, decides whether it is the best, records its
    /// report and shows it to `observer`, whose answer it returns.
    fn finish_epoch(&mut self, epoch: usize, loss_sum: f64, observer: &mut dyn Observer) -> Result<Flow> {
        let position = &mut self.position;
        let seconds = position.seconds;
        let dev_metrics = match self.dev {
            Some((data, labels)) => Some(evaluate(
                self.model,
                data,
                labels,
                self.options.batch_size.max(256),
                self.options.device,
            )?),
            None => None,
        };
        let accuracy = dev_metrics.as_ref().map_or(epoch as f64, |m| m.accuracy);
        let best = position.best_score().is_none_or(|b| accuracy > b);
        let batch_losses = std::mem::take(&mut position.batch_losses);
        let rank_losses = std::mem::take(&mut position.rank_losses);
        let stop_requested = match rank_losses.is_empty() {
            true => observer.stop_requested(),
            false => self.stop_agreed,
        };
        let report = EpochReport {
            epoch,
            train_loss: loss_sum / batch_losses.len() as f64,
            batch_losses,
            dev: dev_metrics,
            seconds,
            texts_per_second: self.train.len() as f64 / seconds.max(1e-9),
            best,
            rank_losses,
        };
        position.reports.push(report.clone());
        position.batches_done = 0;
        position.texts_seen = 0;
        position.seconds = 0.0;
        let snapshot = Snapshot {
            position: &self.position,
            optimizer: &self.optimizer,
            epoch_rng: None,
            epoch_batches: self.num_batches,
            stop_requested,
        };
        observer.after_epoch(&report, &snapshot)
    }
}

/// The mean of one batch's losses over the ranks.
fn mean(losses: &[f32]) -> f64 {
    losses.iter().map(|&l| f64::from(l)).sum::<f64>() / losses.len().max(1) as f64
}
