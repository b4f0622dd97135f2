//! Resuming a run: `train --resume DIR`, and every rank of a job torchrun restarted.

use std::path::Path;

use anyhow::{ensure, Result};

use super::{Run, TrainOutcome};
use crate::{
    dist::Launch,
    train::{state, Interrupt, TrainConfig},
};

/// Rank `launch.rank`, restarted by torchrun with the command line it was started with, picks
/// up its run from the last save in `config.out`.
pub(super) fn resume_restarted(
    config: &TrainConfig,
    launch: &Launch,
    interrupt: &Interrupt,
) -> Result<TrainOutcome> {
    let out = &config.out;
    let saved = state::load_state(out)?;
    ensure!(
        saved.config == *config,
        "{} holds the training state of a run with other flags: give this run another --out",
        out.display()
    );
    if saved.finished {
        eprintln!("rank {}: the run in {} has finished; nothing to resume", launch.rank, out.display());
        let best_epoch = saved.position.reports.iter().rev().find(|e| e.best).map(|e| e.epoch);
        return Ok(TrainOutcome { epochs: saved.position.reports, best_epoch, test: saved.test });
    }
    resume_saved(out, saved, interrupt, Some(launch))
}

/// Continues the interrupted run whose checkpoint directory is `dir`, with the configuration it
/// was started with (its paths read relative to the directory it was started in). Refused when
/// the run finished, or when its data changed since.
pub fn resume(dir: &Path, interrupt: &Interrupt) -> Result<TrainOutcome> {
    let launch = Launch::from_env()?;
    let saved = state::load_state(dir)?;
    ensure!(
        !saved.finished,
        "the run in {} finished (epoch {} of {}); nothing to resume",
        dir.display(),
        saved.position.epochs_done(),
        saved.config.epochs
    );
    resume_saved(dir, saved, interrupt, launch.as_ref())
}

/// Continues the unfinished run `saved`, read from `dir`, as rank `launch.rank` or alone.
pub(super) fn resume_saved(
    dir: &Path,
    saved: state::TrainingState,
    interrupt: &Interrupt,
    launch: Option<&Launch>,
) -> Result<TrainOutcome> {
    let world_size = launch.map_or(1, |l| l.world_size);
    ensure!(
        saved.world_size == world_size,
        "{} holds a run on {} rank(s); resume it on as many (this is {world_size})",
        dir.display(),
        saved.world_size
    );
    let mut config = saved.config.clone();
    config.resolve_paths(&saved.workdir);
    config.out = dir.to_owned();
    let run = Run::prepare(config, saved.workdir.clone(), interrupt, launch)?;
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
    let resume = state::load_resume(dir, &saved, &run.vs, launch.map_or(0, |l| l.rank))?;
    eprintln!(
        "{}resuming {}: epoch {} of {}, batch {}",
        launch.map_or(String::new(), |l| format!("rank {}: ", l.rank)),
        dir.display(),
        saved.position.epochs_done() + 1,
        run.config.epochs,
        saved.position.batches_done
    );
    let best_saved = saved.best_saved;
    run.go(Some((resume, best_saved)))
}
