//! The `lstm-tch` command line: `train`, `eval`, `predict`, `serve`, `explain`, `claims` and
//! `info`, one file each.
//!
//! Each subcommand is a clap struct and a `run` function; `src/main.rs` only dispatches. This is
//! the edge of the program: paths and user values get their context here. What the subcommands
//! share (how to read a dataset, where to run, the sample data) is in this file.

mod claims;
mod eval;
mod explain;
mod info;
mod predict;
mod serve;
mod train;

pub use claims::{claims, ClaimsArgs, Experiment};
pub use eval::{eval, EvalArgs};
pub use explain::{explain, ExplainArgs};
pub use info::info;
pub use predict::{predict, PredictArgs};
pub use serve::serve;
pub use train::{train, TrainArgs};

pub use crate::{
    checkpoint::DEFAULT_CHECKPOINT,
    data::{sample_dir, DataArgs},
    runtime::device::RuntimeArgs,
};
