//! The `lstm-tch` command line: `train`, `eval`, `predict`, `explain`, `claims` and `info`, one
//! file each.
//!
//! Each subcommand is a clap struct and a `run` function; `src/main.rs` only dispatches. This is
//! the edge of the program: paths and user values get their context here. What the subcommands
//! share (how to read a dataset, where to run, the sample data) is in this file.

mod claims;
mod eval;
mod explain;
mod info;
mod predict;
mod train;

pub use claims::{claims, ClaimsArgs, Experiment};
pub use eval::{eval, EvalArgs};
pub use explain::{explain, ExplainArgs};
pub use info::info;
pub use predict::{classify, predict, PredictArgs};
pub use train::{train, TrainArgs};

use std::path::{Path, PathBuf};

use anyhow::Result;
use clap::Args;
use serde::Serialize;
use tch::Device;

use crate::{
    data::{dataset, Columns, Example, Format},
    device::{set_threads, DeviceSpec},
};

/// Where the sample dataset lives: `data/sample` under the working directory, else in the
/// source tree this binary was built from.
pub fn sample_dir() -> PathBuf {
    let local = PathBuf::from("data/sample");
    if local.is_dir() {
        local
    } else {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("data/sample")
    }
}

/// The default checkpoint directory.
pub const DEFAULT_CHECKPOINT: &str = "runs/sentiment";

/// How to read a dataset file.
#[derive(Debug, Clone, Args, Serialize)]
pub struct DataArgs {
    /// File format; by default from the extension (.tsv .csv .jsonl), a directory being IMDB.
    #[arg(long, value_enum)]
    pub format: Option<Format>,
    /// Column (or JSON field) holding the text [default: the first of text, sentence, review,
    /// text_a, content, comment].
    #[arg(long)]
    pub text_column: Option<String>,
    /// Column (or JSON field) holding the label [default: label, sentiment or polarity].
    #[arg(long)]
    pub label_column: Option<String>,
}

impl DataArgs {
    fn load(&self, path: &Path) -> Result<Vec<Example>> {
        let columns = Columns { text: self.text_column.clone(), label: self.label_column.clone() };
        dataset::load(path, self.format, &columns)
    }
}

/// Where to run.
#[derive(Debug, Clone, Args, Serialize)]
pub struct RuntimeArgs {
    /// Device: cpu, cuda, cuda:N, mps or auto.
    #[arg(long, default_value = "cpu")]
    pub device: DeviceSpec,
    /// libtorch intra-op threads; libtorch's default when absent.
    #[arg(long)]
    pub threads: Option<usize>,
}

impl RuntimeArgs {
    fn init(&self) -> Result<Device> {
        set_threads(self.threads)?;
        self.device.resolve()
    }
}
