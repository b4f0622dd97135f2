//! `lstm-tch eval`: a checkpoint's metrics on labelled data.

use std::{path::PathBuf, time::Duration};

use anyhow::Result;
use clap::Args;
use tch::Device;

use super::{sample_dir, DataArgs, RuntimeArgs, DEFAULT_CHECKPOINT};
use crate::runtime::{checks, report};
use crate::{
    checkpoint,
    data::Encoded,
    dist::{scoring, Group, Launch},
    infer::{self, metrics::Metrics},
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
            let metrics = evaluate_sharded(&group, &ckpt, &data, args.batch_size, device)?;
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

/// [`infer::evaluate`] as one rank of `group`: each rank scores its batches of `data`
/// ([`crate::dist::scoring`]), every rank gets every prediction, and the metrics are those one
/// process computes.
fn evaluate_sharded(
    group: &Group,
    ckpt: &checkpoint::Checkpoint,
    data: &Encoded,
    batch_size: usize,
    device: Device,
) -> Result<Metrics> {
    let round = group.world_size() * batch_size;
    let mut predicted = Vec::with_capacity(data.len());
    for start in (0..data.len()).step_by(round) {
        let len = round.min(data.len() - start);
        let classes = scoring::score_round(group, len, batch_size, 1, |share| {
            let ids: Vec<Vec<i64>> = share.map(|i| data.ids(start + i).to_vec()).collect();
            let (logits, _) = infer::scores_of_ids(&ckpt.model, &ids, device)?;
            let classes = ckpt.labels.len();
            Ok(logits.chunks(classes).map(|row| infer::metrics::argmax(row) as f32).collect())
        })?;
        predicted.extend(classes.into_iter().map(|c| c as i64));
    }
    Ok(infer::metrics_of(&ckpt.labels, &data.labels, &predicted))
}
