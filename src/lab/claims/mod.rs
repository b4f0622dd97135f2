//! The article's claims about LSTMs, measured (`lstm-tch claims`): one module per experiment.
//!
//! - [`gradients`]: "the gates ease vanishing gradients": the norm of ∂loss/∂x_t against the
//!   distance T − t from the last step, per cell, at initialisation and after training;
//! - [`memory`]: "so an LSTM does better than a plain RNN on long sequences": accuracy on a
//!   synthetic task whose label is the first token of a sequence of noise, against its length;
//! - [`speed`]: "LSTMs train much slower than RNNs" and "cannot be parallelised": the time of a
//!   training step against sequence length and batch size, per cell.
//!
//! Every experiment uses the project's own pieces: the [`TextClassifier`] (embedding → the
//! recurrent layer of [`crate::recurrent`], exactly the cells `train --cell` uses → linear on
//! the final hidden state), the PyTorch Adam of [`crate::optim`] and, for training,
//! [`crate::train::fit`]. Each writes its numbers as JSON and a PNG figure whose note names
//! the machine, the threads and the seeds ([`Machine`]).

pub mod gradients;
pub mod memory;
pub mod speed;

use std::path::Path;

use anyhow::{ensure, Result};
use serde::Serialize;
use tch::nn;

use crate::runtime::checks;
use crate::{
    lab::plot::{self, Series, Typeface},
    nn::Cell,
    nn::Pooling,
    nn::{TextArchitecture, TextClassifier, TextClassifierConfig},
    runtime::report::JsonFile,
};
use memory::CellInit;

/// The three cells, in the order the figures list them.
pub const CELLS: [Cell; 3] = [Cell::Rnn, Cell::Gru, Cell::Lstm];

/// Where an experiment ran: the CPU, its cores, libtorch's threads and the load at the start.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Machine {
    /// The CPU's model name (`/proc/cpuinfo`), or "unknown CPU".
    pub cpu: String,
    /// Logical cores this process may use.
    pub cores: usize,
    /// libtorch's intra-op threads during the experiment.
    pub threads: usize,
    /// The 1-minute load average when the experiment started (`/proc/loadavg`), where known.
    pub load_average: Option<f64>,
}

impl Machine {
    /// This machine, with libtorch's current thread count.
    pub fn here() -> Self {
        let cpu = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|info| {
                info.lines()
                    .find(|l| l.starts_with("model name"))
                    .and_then(|l| l.split_once(':'))
                    .map(|(_, name)| name.split_whitespace().collect::<Vec<_>>().join(" "))
            })
            .unwrap_or_else(|| "unknown CPU".to_owned());
        let load_average = std::fs::read_to_string("/proc/loadavg")
            .ok()
            .and_then(|l| l.split_whitespace().next().and_then(|v| v.parse().ok()));
        Self {
            cpu,
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            threads: usize::try_from(tch::get_num_threads()).unwrap_or(1),
            load_average,
        }
    }

    /// One line for a figure's note: `CPU (N cores), T thread(s)` and the load when known.
    pub fn describe(&self) -> String {
        let threads =
            if self.threads == 1 { "1 thread".to_owned() } else { format!("{} threads", self.threads) };
        let load = self.load_average.map_or(String::new(), |l| format!(", load {l:.1}"));
        format!("{} ({} cores), {threads}{load}", self.cpu, self.cores)
    }
}

/// `seeds` as a short text for a note: `seed 0`, `seeds 0-2`.
pub fn describe_seeds(seeds: &[u64]) -> String {
    match seeds {
        [one] => format!("seed {one}"),
        [first, .., last] if seeds.windows(2).all(|w| w[1] == w[0] + 1) => format!("seeds {first}-{last}"),
        _ => format!("seeds {}", seeds.iter().map(u64::to_string).collect::<Vec<_>>().join(",")),
    }
}

/// How a figure's note begins: `machine; seeds` (`…, 1 thread, load 0.4; seeds 0-2`).
pub(crate) fn note(machine: &Machine, seeds: &[u64]) -> String {
    format!("{}; {}", machine.describe(), describe_seeds(seeds))
}

/// CPU seconds this process has used so far (user and system, every thread), or `None` where
/// `getrusage` fails: an experiment's cost apart from what else the machine ran meanwhile.
pub fn cpu_seconds() -> Option<f64> {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::uninit();
    // SAFETY: getrusage writes a whole `rusage` into the pointer on success (returns 0).
    let usage = unsafe {
        if libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr()) != 0 {
            return None;
        }
        usage.assume_init()
    };
    let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 * 1e-6;
    Some(seconds(usage.ru_utime) + seconds(usage.ru_stime))
}

/// An experiment's start, before any work: this machine noted, and its JSON file `name`
/// created in `out` (so that an unwritable directory fails first).
pub(crate) fn start(out: &Path, name: &str) -> Result<(Machine, JsonFile)> {
    let machine = Machine::here();
    Ok((machine, JsonFile::create(&out.join(name))?))
}

/// A line chart an experiment writes: its file's name and what [`plot::lines`] draws.
pub(crate) struct Figure<'a> {
    /// The PNG file's name in the output directory.
    pub name: &'a str,
    /// The title, then after a `\n` the note.
    pub title: String,
    /// Under the x axis.
    pub x_label: &'a str,
    /// Above the y axis.
    pub y_label: &'a str,
    /// The curves.
    pub series: Vec<Series>,
    /// Whether y is on a log scale.
    pub log_y: bool,
}

impl Figure<'_> {
    /// Draws the chart into `out` with `face`, printing its warning for texts it cannot show.
    pub fn draw(&self, out: &Path, face: &Typeface) -> Result<()> {
        let path = out.join(self.name);
        let unshown =
            plot::lines(&path, &self.title, self.x_label, self.y_label, &self.series, self.log_y, face)?;
        if let Some(warning) = face.warning(&unshown) {
            eprintln!("{warning}");
        }
        Ok(())
    }
}

/// The sizes of the small classifiers the experiments train and time.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ModelSize {
    /// Embedding width.
    pub embedding_dim: i64,
    /// Hidden size of the (unidirectional, single-layer) recurrent layer.
    pub hidden_size: i64,
}

impl ModelSize {
    /// Checks both sizes are at least 1.
    pub fn validate(&self) -> Result<()> {
        checks::at_least_one("--embedding-dim", self.embedding_dim)?;
        checks::at_least_one("--hidden-size", self.hidden_size)?;
        Ok(())
    }

    /// A unidirectional single-layer two-class [`TextClassifier`] over `vocab_size` tokens with
    /// `init`'s cell (and forget-gate bias), reading the final hidden state, no dropout.
    pub fn config(&self, init: CellInit, vocab_size: i64) -> TextClassifierConfig {
        let architecture = TextArchitecture {
            embedding_dim: self.embedding_dim,
            cell: init.cell,
            hidden_size: self.hidden_size,
            num_layers: 1,
            bidirectional: false,
            dropout: 0.0,
            embedding_dropout: 0.0,
            pooling: Pooling::Last,
            output_dropout: 0.0,
            forget_bias: init.forget_bias,
        };
        TextClassifierConfig { vocab_size, num_classes: 2, architecture }
    }

    /// A fresh CPU model with `cell`, its parameters drawn from the default generator (seed it
    /// first with `tch::manual_seed`).
    pub fn build(&self, cell: Cell, vocab_size: i64) -> Result<(nn::VarStore, TextClassifier)> {
        self.build_init(CellInit::pytorch(cell), vocab_size)
    }

    /// [`Self::build`] with `init`'s cell and forget-gate bias.
    pub fn build_init(&self, init: CellInit, vocab_size: i64) -> Result<(nn::VarStore, TextClassifier)> {
        let vs = nn::VarStore::new(tch::Device::Cpu);
        let model = TextClassifier::new(&vs.root(), self.config(init, vocab_size))?;
        Ok((vs, model))
    }
}

/// Mean, minimum and maximum of `values` (NaN for none).
pub fn summary(values: &[f64]) -> (f64, f64, f64) {
    if values.is_empty() {
        return (f64::NAN, f64::NAN, f64::NAN);
    }
    let mean = values.iter().sum::<f64>() / values.len() as f64;
    let min = values.iter().copied().fold(f64::INFINITY, f64::min);
    let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    (mean, min, max)
}

/// Checks a list option is non-empty and every value at least `min`.
pub(crate) fn check_list<T: PartialOrd + std::fmt::Display + Copy>(
    name: &str,
    values: &[T],
    min: T,
) -> Result<()> {
    ensure!(!values.is_empty(), "--{name} needs at least one value");
    if let Some(bad) = values.iter().find(|&&v| v < min) {
        anyhow::bail!("--{name} values must be at least {min}, got {bad}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_are_described_as_ranges_or_lists() {
        assert_eq!(describe_seeds(&[4]), "seed 4");
        assert_eq!(describe_seeds(&[0, 1, 2]), "seeds 0-2");
        assert_eq!(describe_seeds(&[1, 5]), "seeds 1,5");
    }

    #[test]
    fn summary_is_mean_min_max() {
        assert_eq!(summary(&[1.0, 4.0, 1.0]), (2.0, 1.0, 4.0));
        assert!(summary(&[]).0.is_nan());
    }

    #[test]
    fn lists_must_be_non_empty_and_in_range() {
        assert!(check_list("lengths", &[2usize, 10], 2).is_ok());
        let e = check_list("lengths", &[10usize, 1], 2).unwrap_err().to_string();
        assert!(e.contains("--lengths") && e.contains("got 1"), "{e}");
        assert!(check_list::<usize>("lengths", &[], 2).is_err());
    }
}
