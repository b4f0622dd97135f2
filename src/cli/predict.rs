//! `lstm-tch predict`: the label and class probabilities of each sentence.

use std::{
    io::{BufRead, IsTerminal, Write},
    path::{Path, PathBuf},
    time::Duration,
};

use super::{RuntimeArgs, DEFAULT_CHECKPOINT};
use crate::runtime::checks;
use crate::{
    checkpoint,
    data::dataset,
    dist::{scoring, Group, Launch},
    infer,
    nn::LstmKernel,
};
use anyhow::{Context, Result};
use clap::Args;
use serde::Serialize;

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
    /// The LSTM's kernel on the CPU: packed (PyTorch's values, bit for bit) or onednn (what
    /// `serve` runs by default: 1.5-2x faster per text on batches of mixed lengths, the LSTM
    /// alone 2-3x, the same values up to rounding).
    #[arg(long, value_enum, default_value_t)]
    pub lstm_kernel: LstmKernel,
    #[command(flatten)]
    pub runtime: RuntimeArgs,
    /// Under torchrun (each rank classifying its batches of --file, rank 0 printing them all):
    /// how long a rank waits for the others before it ends with an error.
    #[arg(long, value_name = "SECONDS", default_value_t = 300)]
    pub dist_timeout: u64,
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

/// Runs `lstm-tch predict`. Under torchrun, every rank reads `--file` and classifies its
/// batches of it ([`crate::dist::scoring`]); rank 0 prints every line, in order, with the
/// probabilities one process prints.
pub fn predict(args: &PredictArgs) -> Result<()> {
    let device = args.runtime.init()?;
    checks::batch_size(args.batch_size)?;
    let mut ckpt = checkpoint::load(&args.checkpoint, device)?;
    ckpt.model.set_lstm_kernel(args.lstm_kernel);
    let mut out = std::io::stdout().lock();
    let mut print = |texts: &[String], probabilities: &[f32]| -> Result<()> {
        for (text, probs) in texts.iter().zip(probabilities.chunks(ckpt.labels.len())) {
            let label = &ckpt.labels.names()[infer::metrics::argmax(probs)];
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
    if let Some(launch) = Launch::from_env()? {
        let path = args
            .file
            .as_deref()
            .context("under torchrun, predict classifies --file (every rank reads it)")?;
        let group = Group::join(&launch, Duration::from_secs(args.dist_timeout))?;
        return scoring::predict_file(&group, &ckpt, path, args.batch_size, device, print);
    }
    let mut emit = |texts: &[String]| print(texts, &infer::probabilities(&ckpt, texts, device)?);
    if !args.sentences.is_empty() {
        return emit(&args.sentences);
    }
    let (reader, name): (Box<dyn BufRead>, String) = match &args.file {
        Some(path) => (Box::new(open(path)?), path.display().to_string()),
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

/// `path`, opened for buffered reading.
fn open(path: &Path) -> Result<std::io::BufReader<std::fs::File>> {
    let file = std::fs::File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    Ok(std::io::BufReader::new(file))
}
