//! `lstm-tch explain`: the gates and the running prediction of a checkpoint, token by token.

use std::path::PathBuf;

use anyhow::{ensure, Result};
use clap::Args;
use tch::Device;

use super::DEFAULT_CHECKPOINT;
use crate::{checkpoint, device::set_threads, explain};

/// `lstm-tch explain`: for each token, the mean gates of the last recurrent layer (LSTM: input,
/// forget, output; GRU: reset, update; RNN: none), the norm of its state (LSTM: the cell state;
/// GRU, RNN: the hidden state) and the probabilities if the text ended there.
#[derive(Debug, Clone, Args)]
pub struct ExplainArgs {
    /// Texts to explain.
    #[arg(required = true)]
    pub texts: Vec<String>,
    /// Checkpoint directory.
    #[arg(long, default_value = DEFAULT_CHECKPOINT)]
    pub checkpoint: PathBuf,
    /// Print one JSON object per text instead of the table.
    #[arg(long)]
    pub json: bool,
    /// libtorch intra-op threads; libtorch's default when absent.
    #[arg(long)]
    pub threads: Option<usize>,
}

/// Runs `lstm-tch explain` (on the CPU).
pub fn explain(args: &ExplainArgs) -> Result<()> {
    set_threads(args.threads)?;
    ensure!(!args.texts.is_empty(), "nothing to explain");
    let ckpt = checkpoint::load(&args.checkpoint, Device::Cpu)?;
    for (i, text) in args.texts.iter().enumerate() {
        let explanation = explain::explain(&ckpt, text)?;
        if args.json {
            println!("{}", serde_json::to_string(&explanation)?);
        } else {
            print!("{}{}", if i > 0 { "\n" } else { "" }, explanation.table());
        }
    }
    Ok(())
}
