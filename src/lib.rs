//! # lstm-tch
//!
//! A Rust port, on [tch](https://github.com/LaurentMazare/tch-rs) (libtorch), of the PyTorch LSTM
//! "sentiment classification" script of a well-read blog post (see README), bit-identical to the
//! Python script for the same seed, grown into a real text classifier. One module per layer:
//!
//! | layer | module | what it holds |
//! | --- | --- | --- |
//! | model | [`nn`] | the recurrent layer (LSTM, GRU, RNN), the classifiers, PyTorch-exact initialisation, the cells' equations |
//! | data | [`data`] | tokenizers, vocabulary, dataset loaders, batches |
//! | training | [`train`] | the fit loop, a whole resumable run, Adam, interrupts |
//! | distributed | [`dist`] | a rank of a `torch.distributed` job: its process group, DDP's averaging, the sampler's shards, one rank of `train`, sharded `predict` and `eval` |
//! | inference | [`infer`] | logits, probabilities, evaluation metrics |
//! | serving | [`serve`] | `lstm-tch serve`: HTTP, dynamic batching, limits, metrics |
//! | checkpoints | [`checkpoint`] | the format, loading, the atomic save |
//! | the article | [`article`] | the article's run, bit for bit with its Python script |
//! | the lab | [`lab`] | `explain`, the article's claims measured, benchmarks, figures |
//! | runtime | [`runtime`] | devices and threads, generator state, JSON reports, the C++ in `native/` |
//! | command line | [`cli`] | the `lstm-tch` subcommands, thin over the layers above |

pub mod article;
pub mod checkpoint;
pub mod cli;
pub mod data;
pub mod dist;
pub mod infer;
pub mod lab;
pub mod nn;
pub mod runtime;
pub mod serve;
pub mod train;

use std::process::ExitCode;

/// Runs a binary's `main` body; an error is printed on one line (`error: outer: cause`) to
/// stderr and the process exits with status 1 (a training run stopped by Ctrl-C: its message
/// and status 130; a closed standard output, quietly with status 0). Every binary and example
/// ends through this, so bad input gives a message, never a panic or a backtrace.
pub fn run_main(body: impl FnOnce() -> anyhow::Result<()>) -> ExitCode {
    match body() {
        Ok(()) => ExitCode::SUCCESS,
        // The reader of our output has gone (`lstm-tch predict ... | head`): it has what it
        // wanted; stop quietly, as Unix tools do.
        Err(err) if runtime::report::is_broken_pipe(&err) => ExitCode::SUCCESS,
        Err(err) if err.is::<train::Interrupted>() => {
            eprintln!("{err}");
            ExitCode::from(130)
        }
        Err(err) => {
            eprintln!("error: {}", runtime::report::error_line(&err));
            ExitCode::FAILURE
        }
    }
}
