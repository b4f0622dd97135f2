//! [`Saver`]: the observer of a run's fit loop that saves the checkpoint directory and the
//! training state (every rank's generators in a data-parallel run) and stops the run when asked.

use std::time::Instant;

use anyhow::Result;
use tch::{Device, Tensor};

use super::Run;
use crate::{
    checkpoint::{self, Weights},
    runtime::{fault, rng::generator_state},
    train::{
        fit::{EpochReport, Flow, Observer, Snapshot},
        state::{StateFiles, StateTensors},
    },
};

/// Saves the checkpoint directory and the training state at the points [`train`] promises, and
/// stops the run when interrupted.
pub(super) struct Saver<'r, 'a> {
    pub(super) run: &'r Run<'a>,
    /// Whether the directory's model is this run's best epoch (not yet before the first epoch
    /// ends: a save before then writes the current weights, so the path always holds a model).
    pub(super) best_saved: bool,
    /// Where the last save was: epochs finished, batches of the next one.
    pub(super) saved_at: (usize, usize),
    /// Saves by this process, and the seconds they took.
    pub(super) saves: usize,
    pub(super) save_seconds: f64,
}

impl Saver<'_, '_> {
    /// One atomic save of the model (the current weights when `new_best`, else the best so
    /// far) and of the training state at `snapshot`.
    fn save(&mut self, snapshot: &Snapshot<'_>, new_best: bool) -> Result<()> {
        let run = self.run;
        let started = Instant::now();
        let generators = self.generators()?;
        let position = snapshot.position;
        if !run.leader() {
            self.saved_at = (position.epochs_done(), position.batches_done);
            return Ok(());
        }
        let weights = if new_best || !self.best_saved { Weights::Vars(&run.vs) } else { Weights::Kept };
        self.best_saved |= new_best;
        let adam = snapshot.optimizer.state()?;
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

impl Saver<'_, '_> {
    /// The default generators' states on every rank (one in a single-process run): the CPU's
    /// and, on CUDA, the device's.
    fn generators(&self) -> Result<Vec<Vec<(Device, Tensor)>>> {
        let device = self.run.device;
        let mut mine = vec![(Device::Cpu, generator_state(Device::Cpu)?)];
        if let Device::Cuda(_) = device {
            mine.push((device, generator_state(device)?));
        }
        let Some(replica) = &self.run.replica else { return Ok(vec![mine]) };
        let mut ranks: Vec<Vec<(Device, Tensor)>> = (0..replica.world_size()).map(|_| Vec::new()).collect();
        for (device, state) in mine {
            for (rank, theirs) in replica.gather(&state)?.into_iter().enumerate() {
                ranks[rank].push((device, theirs));
            }
        }
        Ok(ranks)
    }
}

impl Observer for Saver<'_, '_> {
    fn stop_requested(&self) -> bool {
        self.run.interrupt.requested()
    }

    fn after_batch(&mut self, snapshot: &Snapshot<'_>) -> Result<Flow> {
        fault::batch_done(|| {
            let position = snapshot.position;
            position.reports.iter().map(|r| r.batch_losses.len()).sum::<usize>() + position.batches_done
        });
        let every = self.run.config.save_every;
        let last_of_epoch = snapshot.position.batches_done == snapshot.epoch_batches;
        if snapshot.stop_requested && !last_of_epoch {
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
        // The line is printed once the save is done, so that "saved" is never followed by the
        // save's error.
        self.save(snapshot, epoch.best)?;
        let mark = if epoch.best { format!("  saved {}", config.out.display()) } else { String::new() };
        if self.run.leader() {
            eprintln!(
                "epoch {}/{}  train loss {:.4}{dev}  {:.1} s  {:.0} texts/s{mark}",
                epoch.epoch, config.epochs, epoch.train_loss, epoch.seconds, epoch.texts_per_second
            );
        }
        Ok(if snapshot.stop_requested { Flow::Stop } else { Flow::Continue })
    }
}
