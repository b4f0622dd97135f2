//! `lstm-tch eval`: a checkpoint's metrics on labelled data.

use std::{path::PathBuf, time::Duration};

use anyhow::Result;
use clap::Args;

use super::{sample_dir, DataArgs, RuntimeArgs, DEFAULT_CHECKPOINT};
use crate::runtime::{checks, report};
use crate::{
    checkpoint,
    data::Encoded,
    dist::{scoring, Group, Launch},
    infer,
};

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
    /// Under torchrun (each rank scoring its batches of the data): how long a rank waits for
    /// the others before it ends with an error.
    #[arg(long, value_name = "SECONDS", default_value_t = 300)]
    pub dist_timeout: u64,
}

/// Runs `lstm-tch eval`.
pub fn eval(args: &EvalArgs) -> Result<()> {
    let device = args.runtime.init()?;
    checks::batch_size(args.batch_size)?;
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
    let metrics = match Launch::from_env()? {
        Some(launch) => {
            let group = Group::join(&launch, Duration::from_secs(args.dist_timeout))?;
            let metrics = scoring::evaluate(&group, &ckpt, &data, args.batch_size, device)?;
            if group.rank() != 0 {
                return Ok(());
            }
            metrics
        }
        None => infer::evaluate(&ckpt.model, &data, &ckpt.labels, args.batch_size, device)?,
    };
    if args.json {
        report::print_line(serde_json::to_string_pretty(&metrics)?)?;
    } else {
        report::print_line(format!(
            "{}: {} texts, checkpoint {}\n",
            path.display(),
            metrics.total,
            args.checkpoint.display()
        ))?;
        report::print(&metrics.table())?;
    }
    Ok(())
}
