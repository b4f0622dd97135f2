//! `lstm-tch`: train, evaluate and use an LSTM sentiment classifier (see README).
//!
//! ```text
//! lstm-tch train                      # the sample dataset, defaults: ≥ 85 % test accuracy
//! lstm-tch eval                       # metrics of runs/sentiment on the sample test split
//! lstm-tch predict "not bad at all"   # label and class probabilities
//! lstm-tch serve                      # the checkpoint behind HTTP on 127.0.0.1:8080
//! lstm-tch claims memory             # the article's claims, measured (figures + JSON)
//! lstm-tch info                       # libtorch, threads, CUDA support
//! ```

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use lstm_tch::cli;

/// mimalloc for the whole process: built with `override`, it also serves libtorch's own
/// malloc/free (tensors, autograd nodes), which glibc's allocator handles slowly here.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// An LSTM text classifier on libtorch: train, evaluate, predict.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train a classifier on labelled text and save the best checkpoint.
    Train(Box<cli::TrainArgs>),
    /// Evaluate a checkpoint on labelled text: accuracy, precision/recall/F1, confusion.
    Eval(cli::EvalArgs),
    /// Classify sentences from arguments, a file or standard input.
    Predict(cli::PredictArgs),
    /// Serve a checkpoint over HTTP, with dynamic batching (POST /predict, /info, /metrics...).
    Serve(Box<lstm_tch::serve::ServeConfig>),
    /// Show the gates and the running prediction of a checkpoint, token by token.
    Explain(cli::ExplainArgs),
    /// The article's claims, measured: vanishing gradients, memory over distance, speed.
    Claims(cli::ClaimsArgs),
    /// Time one benchmark workload in process and print JSON (driven by scripts/bench.py).
    Bench(lstm_tch::lab::bench::BenchArgs),
    /// Show the libtorch in use, its threads, and whether CUDA support is loaded.
    Info,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    lstm_tch::run_main(|| match &cli.command {
        Command::Train(args) => cli::train(args),
        Command::Eval(args) => cli::eval(args),
        Command::Predict(args) => cli::predict(args),
        Command::Serve(config) => cli::serve(config),
        Command::Explain(args) => cli::explain(args),
        Command::Claims(args) => cli::claims(args),
        Command::Bench(args) => {
            lstm_tch::runtime::report::print_line(serde_json::to_string(&lstm_tch::lab::bench::run(args)?)?)
        }
        Command::Info => cli::info(),
    })
}
