//! `lstm-tch train`: train a sentiment classifier and keep its best epoch; `--resume` an
//! interrupted run.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

use crate::train::{self, Interrupt, TrainConfig};

/// `lstm-tch train`: train a sentiment classifier and save the best checkpoint.
#[derive(Debug, Clone, Args)]
pub struct TrainArgs {
    /// Continue the interrupted run whose checkpoint directory (its --out) this is, with the
    /// flags it was started with (it takes no other flag).
    #[arg(long, value_name = "DIR", exclusive = true)]
    pub resume: Option<PathBuf>,
    #[command(flatten)]
    pub config: TrainConfig,
}

/// Runs `lstm-tch train`. Ctrl-C (or SIGTERM) finishes the batch, saves the training state and
/// ends with [`train::Interrupted`] (exit status 130); a second one exits at once.
pub fn train(args: &TrainArgs) -> Result<()> {
    let interrupt = Interrupt::from_signals()?;
    match &args.resume {
        Some(dir) => train::resume(dir, &interrupt)?,
        None => train::train(&args.config, &interrupt)?,
    };
    Ok(())
}
