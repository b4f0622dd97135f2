//! Training: the fit loop, a whole run from data files to a checkpoint directory, and what a
//! run needs to be stopped and resumed to the same bits.
//!
//! - [`fit()`]: epochs of batches (forward, cross-entropy, backward, Adam), dev evaluation after
//!   each, an [`Observer`] that sees every batch and may stop the run; resumable from a [`Resume`];
//! - [`train()`] / [`resume()`]: what `lstm-tch train` does, from plain values ([`TrainConfig`]):
//!   data, vocabulary, model, the best epoch saved atomically, the run's state saved beside it;
//! - [`optim`]: Adam, as `torch.optim.Adam` computes it or as libtorch's C++ Adam does;
//! - [`state`]: the training state a resumed run restores; [`Interrupt`]: Ctrl-C and SIGTERM;
//! - [`progress`]: the progress bar.

mod config;
pub mod fit;
mod fit_loop;
mod interrupt;
pub mod optim;
pub mod progress;
mod report;
mod run;
pub mod state;

pub use config::TrainConfig;
pub use fit::{
    fit, fit_from, fit_replica, ClassWeights, EpochReport, FitOutcome, Flow, Observer, Position, Resume,
    Snapshot, TrainOptions,
};
pub use interrupt::{Interrupt, Interrupted};
pub use run::{resume, train, TrainOutcome};
