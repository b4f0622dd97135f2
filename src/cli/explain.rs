//! `lstm-tch explain`: the gates and the running prediction of a checkpoint, token by token.

use std::path::PathBuf;

use anyhow::{ensure, Result};
use clap::Args;
use tch::Device;

use super::DEFAULT_CHECKPOINT;
use crate::{
    checkpoint,
    lab::{explain, plot},
    nn::LstmKernel,
    runtime::{device::set_threads, report},
};

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
    /// Also draw a heat map into this PNG file: tokens along x, a row per gate and direction, the
    /// cell norm and each class's running probability; several texts stack as panels.
    #[arg(long, value_name = "FILE.png")]
    pub plot: Option<PathBuf>,
    /// Font file for the plot's text (TrueType/OpenType); without it, the first of a list of
    /// common system fonts (CJK ones first) that exists, else a built-in ASCII bitmap font.
    #[arg(long, value_name = "PATH", requires = "plot")]
    pub font: Option<PathBuf>,
    /// libtorch intra-op threads (1 to 1024); libtorch's default when absent.
    #[arg(long)]
    pub threads: Option<usize>,
    /// The LSTM's kernel for the running probabilities: packed (PyTorch's values, bit for bit)
    /// or onednn (what `serve` runs by default; the same values up to rounding).
    #[arg(long, value_enum, default_value_t)]
    pub lstm_kernel: LstmKernel,
}

/// Runs `lstm-tch explain` (on the CPU).
pub fn explain(args: &ExplainArgs) -> Result<()> {
    set_threads(args.threads)?;
    ensure!(!args.texts.is_empty(), "nothing to explain");
    // A bad plot path or font fails before the checkpoint is read.
    let face = match &args.plot {
        Some(path) => {
            plot::check_png_path(path)?;
            Some(plot::Typeface::find(args.font.as_deref())?)
        }
        None => None,
    };
    let mut ckpt = checkpoint::load(&args.checkpoint, Device::Cpu)?;
    ckpt.model.set_lstm_kernel(args.lstm_kernel);
    let mut maps = vec![];
    for (i, text) in args.texts.iter().enumerate() {
        let explanation = explain::explain(&ckpt, text)?;
        if args.json {
            report::print_line(serde_json::to_string(&explanation)?)?;
        } else {
            report::print(&format!("{}{}", if i > 0 { "\n" } else { "" }, explanation.table()))?;
        }
        maps.push(explanation.heat_map());
    }
    if let (Some(path), Some(face)) = (&args.plot, &face) {
        let unshown = plot::heat_maps(path, &maps, face)?;
        if let Some(warning) = face.warning(&unshown) {
            eprintln!("{warning}");
        }
        eprintln!("wrote {} (font: {})", path.display(), face.describe());
    }
    Ok(())
}
