//! # lstm-tch
//!
//! A Rust port, on [tch](https://github.com/LaurentMazare/tch-rs) (libtorch), of the PyTorch LSTM
//! "sentiment classification" script of a well-read blog post (see README), bit-identical to the
//! Python script for the same seed, grown into a real text classifier.
//!
//! - [`model`]: the article's `LSTMModel` ([`model::LstmClassifier`]) and its loss;
//! - [`cell`]: the LSTM (and the GRU and RNN) from their equations, gate by gate, in plain
//!   tensor ops;
//! - [`explain`]: the gates and the running prediction, token by token, on a checkpoint;
//! - [`plot`]: figures as PNG files (heat maps for `explain --plot`, line charts);
//! - [`layers`]: tch layers initialised draw for draw as PyTorch initialises them;
//! - [`recurrent`]: the recurrent layer (`nn.LSTM`, `nn.GRU` or `nn.RNN`, `--cell`) on padded or
//!   packed sequences;
//! - [`optim`]: Adam, as `torch.optim.Adam` computes it or as libtorch's C++ Adam does;
//! - [`article`]: the article's run: its configuration, data and report;
//! - [`report`]: JSON reports whose float32 values round-trip exactly, and PyTorch-style printing;
//! - [`device`]: device names and thread pinning;
//! - [`data`]: the text pipeline: tokenizer, vocabulary, loaders, batches;
//! - [`text_model`]: the sentiment classifier (embedding → LSTM/GRU/RNN → linear, packed
//!   sequences);
//! - [`training`], [`metrics`], [`checkpoint`], [`progress`]: training, evaluation, saving;
//! - [`trainer`]: a whole training run from plain values ([`trainer::TrainConfig`]), resumable;
//! - [`rng`]: the state of libtorch's default generators, saved and restored;
//! - [`cli`]: the `lstm-tch` command line (`train`, `eval`, `predict`);
//! - [`claims`]: the article's claims, measured (`lstm-tch claims`): vanishing gradients, memory
//!   over distance, training speed;
//! - [`bench`]: the benchmark workloads (`lstm-tch bench`, driven by `scripts/bench.py`).

pub mod article;
pub mod bench;
pub mod cell;
pub mod checkpoint;
pub mod claims;
pub mod cli;
pub mod data;
pub mod device;
pub mod explain;
mod ffi;
pub mod layers;
pub mod metrics;
pub mod model;
pub mod optim;
pub mod plot;
pub mod progress;
pub mod recurrent;
pub mod report;
pub mod rng;
pub mod text_model;
pub mod trainer;
pub mod training;

use std::process::ExitCode;

/// Runs a binary's `main` body; an error is printed on one line (`error: outer: cause`) to
/// stderr and the process exits with status 1 (a training run stopped by Ctrl-C: its message
/// and status 130). Every binary and example ends through this, so
/// bad input gives a message, never a panic or a backtrace.
pub fn run_main(body: impl FnOnce() -> anyhow::Result<()>) -> ExitCode {
    match body() {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) if err.is::<trainer::Interrupted>() => {
            eprintln!("{err}");
            ExitCode::from(130)
        }
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
