//! `lstm-tch claims memory`: where each cell's memory ends, and how that moves as the training
//! budget grows.
//!
//! For each cell and initialisation ([`CellInit`]: RNN, GRU, LSTM, and the LSTM with its
//! forget-gate bias set to 1) the lengths of the ladder are tried in increasing order. At each
//! length, every seed trains a fresh model on one pass over fresh sequences, and its held-out
//! accuracy is measured at every budget (a number of Adam steps); a run stops at the first budget
//! where it reaches the solved accuracy (0.95 by default), or at the last budget. A length is
//! solved within budget B when every seed reached the solved accuracy by step B (the reach);
//! the longest length some seed solved is reported beside it, since one unlucky draw of the
//! data and the initialisation can stall a gated cell at chance for the whole budget. The search
//! of a cell stops at the first length fewer than half the seeds solve within the last budget:
//! longer lengths count as unsolved. That assumes a longer length is no easier, which one seed
//! alone need not obey (a plain RNN's seed can fail L = 30 and solve L = 200: hence half the
//! seeds, not one), and it is what keeps the experiment near half an hour: followed until no
//! seed at all solves, the RNN alone would take longer than the rest.

use std::{path::Path, time::Instant};

use anyhow::{ensure, Context, Result};
use serde::Serialize;

use super::{CellInit, MemoryTask, Training, Trial};
use crate::{
    lab::claims::{check_list, cpu_seconds, note, start, Figure, Machine, ModelSize},
    lab::plot::{Series, Typeface},
    train::{EpochReport, Flow, Observer, Snapshot},
};

/// What `lstm-tch claims memory` runs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MemoryConfig {
    /// The cells and initialisations compared, in the figure's order.
    pub inits: Vec<CellInit>,
    /// Sequence lengths (marker included), increasing, each at least 2.
    pub lengths: Vec<usize>,
    /// Adam steps after which held-out accuracy is measured, increasing; the last is a run's
    /// whole budget.
    pub budgets: Vec<usize>,
    /// The held-out accuracy at which a run counts as solved.
    pub solved_accuracy: f64,
    /// One run per seed, cell and length.
    pub seeds: Vec<u64>,
    /// The task's vocabulary.
    pub task: MemoryTask,
    /// The model's sizes.
    pub size: ModelSize,
    /// The training: one pass over `train` fresh sequences, which
    /// [`MemoryConfig::sequences_needed`] sets to the last budget's.
    pub training: Training,
}

impl MemoryConfig {
    /// Training sequences for one pass of `budget` steps in batches of `batch_size`.
    pub fn sequences_needed(budget: usize, batch_size: usize) -> usize {
        budget * batch_size
    }

    /// The whole budget of a run: the last of `budgets`.
    pub fn max_steps(&self) -> usize {
        self.budgets.last().copied().unwrap_or(0)
    }

    /// Checks every size before any work.
    pub fn validate(&self) -> Result<()> {
        ensure!(!self.inits.is_empty(), "--cells needs at least one cell");
        check_list("lengths", &self.lengths, 2)?;
        check_list("budgets", &self.budgets, 1)?;
        ensure!(self.lengths.windows(2).all(|w| w[0] < w[1]), "--lengths must increase");
        ensure!(self.budgets.windows(2).all(|w| w[0] < w[1]), "--budgets must increase");
        ensure!(
            self.solved_accuracy > 0.5 && self.solved_accuracy <= 1.0,
            "--solved-accuracy must be above chance (0.5) and at most 1, got {}",
            self.solved_accuracy
        );
        ensure!(!self.seeds.is_empty(), "--seeds needs at least one seed");
        self.task.validate()?;
        self.size.validate()?;
        // Each series' model, checked as it will be built (a forget-gate bias: LSTM only, finite).
        for &init in &self.inits {
            self.size.config(init, self.task.vocab_size()).validate().with_context(|| init.to_string())?;
        }
        self.training.validate()?;
        ensure!(
            self.training.steps() >= self.max_steps(),
            "{} training sequences make {} steps, fewer than the last budget's {}",
            self.training.train,
            self.training.steps(),
            self.max_steps()
        );
        Ok(())
    }
}

/// Held-out accuracy after some steps of a run.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Check {
    /// Adam steps taken.
    pub steps: usize,
    /// Held-out accuracy then.
    pub accuracy: f64,
}

/// One run's outcome.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MemoryRun {
    /// The cell and its initialisation.
    pub init: CellInit,
    /// The sequence length.
    pub length: usize,
    /// The seed of the data and the initialisation.
    pub seed: u64,
    /// The accuracy at each budget reached, in order.
    pub checks: Vec<Check>,
    /// The first budget at which the accuracy reached the solved accuracy (where the run
    /// stopped); `None` if it did not by the last.
    pub solved_at: Option<usize>,
    /// Wall-clock seconds of the run.
    pub seconds: f64,
}

/// How far one cell's memory reaches at each budget.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Reach {
    /// The cell and its initialisation.
    pub init: CellInit,
    /// Per budget (the config's order), the longest length solved on every seed within it
    /// (`None`: not even the shortest).
    pub longest: Vec<(usize, Option<usize>)>,
    /// Per budget, the longest length solved on at least one seed within it.
    pub longest_by_some_seed: Vec<(usize, Option<usize>)>,
    /// The length where the search stopped: the first that fewer than half the seeds solved
    /// within the last budget (`None`: the whole ladder was tried).
    pub stopped_at: Option<usize>,
}

impl Reach {
    /// The reach of `init` from its runs.
    pub fn of(config: &MemoryConfig, init: CellInit, runs: &[MemoryRun]) -> Self {
        let mine: Vec<&MemoryRun> = runs.iter().filter(|r| r.init == init).collect();
        // Seeds at `length` that solved it within `budget`, and how many ran.
        let solved = |length: usize, budget: usize| {
            let at_length: Vec<_> = mine.iter().filter(|r| r.length == length).collect();
            let solved = at_length.iter().filter(|r| r.solved_at.is_some_and(|s| s <= budget)).count();
            (solved, at_length.len())
        };
        let longest_where = |ok: &dyn Fn((usize, usize)) -> bool| -> Vec<(usize, Option<usize>)> {
            let last = |b: usize| config.lengths.iter().rev().copied().find(|&l| ok(solved(l, b)));
            config.budgets.iter().map(|&b| (b, last(b))).collect()
        };
        let longest = longest_where(&|(solved, ran)| ran == config.seeds.len() && solved == ran);
        let longest_by_some_seed = longest_where(&|(solved, _)| solved > 0);
        let stopped_at = config.lengths.iter().copied().find(|&l| {
            let (solved_at_all, ran) = solved(l, usize::MAX);
            ran > 0 && too_few(solved_at_all, ran)
        });
        Self { init, longest, longest_by_some_seed, stopped_at }
    }
}

/// `memory.json`: the configuration, where it ran, every run and each cell's reach.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MemoryReport {
    /// Always "memory".
    pub experiment: &'static str,
    /// Where it ran.
    pub machine: Machine,
    /// What ran.
    pub config: MemoryConfig,
    /// Wall-clock seconds of the whole experiment.
    pub seconds: f64,
    /// CPU seconds it used (every thread), where known: its cost on a machine doing nothing else.
    pub cpu_seconds: Option<f64>,
    /// Every run, by cell, then length, then seed.
    pub runs: Vec<MemoryRun>,
    /// Per cell, the longest length solved at each budget.
    pub reach: Vec<Reach>,
}

impl MemoryReport {
    /// The reach as a Markdown table: a row per cell, the longest length solved on every seed
    /// within each budget (in brackets, on some seed, where longer), then the length where its
    /// search stopped.
    pub fn reach_table(&self) -> String {
        let budgets: Vec<String> = self.config.budgets.iter().map(|b| format!("{b} steps")).collect();
        let mut table = format!("| cell | {} | search stopped at |\n", budgets.join(" | "));
        table += &format!("| --- |{}\n", " --- |".repeat(budgets.len() + 1));
        let length = |l: Option<usize>| l.map_or_else(|| "none".to_owned(), |l| l.to_string());
        for r in &self.reach {
            let cells: Vec<String> = r
                .longest
                .iter()
                .zip(&r.longest_by_some_seed)
                .map(|(&(_, every), &(_, some))| {
                    if some > every {
                        format!("{} ({})", length(every), length(some))
                    } else {
                        length(every)
                    }
                })
                .collect();
            table += &format!("| {} | {} | {} |\n", r.init, cells.join(" | "), length(r.stopped_at));
        }
        table
    }

    /// Every run as a Markdown table: per cell and length, each seed's steps to solve (the
    /// first budget where it reached the solved accuracy) or its last accuracy when it did not.
    pub fn runs_table(&self) -> String {
        let mut table = String::from(
            "| cell | L | seeds: steps to solve, or the accuracy reached |\n| --- | --- | --- |\n",
        );
        for &init in &self.config.inits {
            for &length in &self.config.lengths {
                let runs: Vec<String> = self
                    .runs
                    .iter()
                    .filter(|r| r.init == init && r.length == length)
                    .map(|r| match (r.solved_at, r.checks.last()) {
                        (Some(steps), _) => steps.to_string(),
                        (None, Some(c)) => format!("{:.2}", c.accuracy),
                        (None, None) => "?".to_owned(),
                    })
                    .collect();
                if !runs.is_empty() {
                    table += &format!("| {init} | {length} | {} |\n", runs.join(" / "));
                }
            }
        }
        table
    }
}

/// Runs the experiment: the search of every cell; writes `memory.json` and `memory.png` (the
/// longest length solved against the budget, one line per cell) into `out`.
pub fn run(config: &MemoryConfig, out: &Path, face: &Typeface) -> Result<MemoryReport> {
    config.validate()?;
    let (machine, json) = start(out, "memory.json")?;
    let started = (Instant::now(), cpu_seconds());
    let mut runs = vec![];
    for &init in &config.inits {
        search(config, init, &mut runs)?;
    }
    let reach: Vec<Reach> = config.inits.iter().map(|&init| Reach::of(config, init, &runs)).collect();
    figure(config, &machine, &reach).draw(out, face)?;
    let seconds = started.0.elapsed().as_secs_f64();
    let cpu_seconds = cpu_seconds().zip(started.1).map(|(end, start)| end - start);
    let report = MemoryReport {
        experiment: "memory",
        machine,
        config: config.clone(),
        seconds,
        cpu_seconds,
        runs,
        reach,
    };
    json.write(&report)?;
    Ok(report)
}

/// Tries `init` on the lengths in increasing order, every seed, until fewer than half the
/// seeds solve one within the last budget.
fn search(config: &MemoryConfig, init: CellInit, runs: &mut Vec<MemoryRun>) -> Result<()> {
    for &length in &config.lengths {
        let mut solved = 0;
        for &seed in &config.seeds {
            let run = train_one(config, init, length, seed)?;
            solved += usize::from(run.solved_at.is_some());
            runs.push(run);
        }
        if too_few(solved, config.seeds.len()) {
            break;
        }
    }
    Ok(())
}

/// Whether `solved` seeds of `ran` are too few to go on to longer lengths: fewer than half.
fn too_few(solved: usize, ran: usize) -> bool {
    solved * 2 < ran
}

/// Trains and tests one model of `init` on sequences of `length` drawn with `seed`.
fn train_one(config: &MemoryConfig, init: CellInit, length: usize, seed: u64) -> Result<MemoryRun> {
    let started = Instant::now();
    let trial = Trial::new(&config.task, &config.size, &config.training, init, length, seed)?;
    let mut watch = BudgetWatch { trial: &trial, config, checks: vec![], solved_at: None };
    trial.fit_watched(&config.training, &mut watch)?;
    let (checks, solved_at) = (watch.checks, watch.solved_at);
    let seconds = started.elapsed().as_secs_f64();
    let last = checks.last().map_or(f64::NAN, |c| c.accuracy);
    let outcome = solved_at.map_or_else(|| "not solved".to_owned(), |s| format!("solved by step {s}"));
    eprintln!("memory {init} length {length} seed {seed}: accuracy {last:.3}, {outcome} ({seconds:.1} s)");
    Ok(MemoryRun { init, length, seed, checks, solved_at, seconds })
}

/// Measures a run's held-out accuracy at every budget and stops it once solved or spent.
struct BudgetWatch<'a> {
    trial: &'a Trial,
    config: &'a MemoryConfig,
    checks: Vec<Check>,
    solved_at: Option<usize>,
}

impl Observer for BudgetWatch<'_> {
    fn after_batch(&mut self, snapshot: &Snapshot<'_>) -> Result<Flow> {
        // One epoch: the batches done are the steps taken.
        let steps = snapshot.position.batches_done;
        if !self.config.budgets.contains(&steps) {
            return Ok(Flow::Continue);
        }
        let accuracy = self.trial.accuracy()?;
        self.checks.push(Check { steps, accuracy });
        if accuracy >= self.config.solved_accuracy {
            self.solved_at = Some(steps);
            return Ok(Flow::Stop);
        }
        Ok(if steps >= self.config.max_steps() { Flow::Stop } else { Flow::Continue })
    }

    fn after_epoch(&mut self, _: &EpochReport, _: &Snapshot<'_>) -> Result<Flow> {
        Ok(Flow::Continue)
    }
}

/// `memory.png`: per cell, the longest length solved on every seed against the budget, with a
/// bar up to the longest solved on some seed.
fn figure(config: &MemoryConfig, machine: &Machine, reach: &[Reach]) -> Figure<'static> {
    let y = |l: Option<usize>| l.map_or(0.0, |l| l as f64);
    let series = reach
        .iter()
        .map(|r| Series {
            name: r.init.to_string(),
            points: r.longest.iter().map(|&(b, l)| (b as f64, y(l))).collect(),
            spread: r
                .longest
                .iter()
                .zip(&r.longest_by_some_seed)
                .map(|(&(b, every), &(_, some))| (b as f64, y(every), y(some)))
                .collect(),
        })
        .collect();
    let lengths: Vec<String> = config.lengths.iter().map(usize::to_string).collect();
    let title = format!(
        "Where memory ends: the longest L solved (held-out accuracy >= {} on every seed) within each budget\n{}; \
         bars up to the longest L solved on some seed; L tried: {}; one pass over fresh sequences, {} per batch, \
         hidden {}; 0: not even L = {}",
        config.solved_accuracy,
        note(machine, &config.seeds),
        lengths.join(", "),
        config.training.batch_size,
        config.size.hidden_size,
        config.lengths[0],
    );
    Figure {
        name: "memory.png",
        title,
        x_label: "budget (Adam steps)",
        y_label: "longest sequence length L solved",
        series,
        log_y: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::Cell;

    fn config() -> MemoryConfig {
        MemoryConfig {
            inits: vec![CellInit::pytorch(Cell::Gru)],
            lengths: vec![10, 20, 30],
            budgets: vec![100, 200],
            solved_accuracy: 0.95,
            seeds: vec![0, 1],
            task: MemoryTask { noise_tokens: 8 },
            size: ModelSize { embedding_dim: 4, hidden_size: 4 },
            training: Training {
                train: 400,
                test: 10,
                batch_size: 2,
                epochs: 1,
                lr: 0.01,
                clip_grad_norm: 1.0,
            },
        }
    }

    fn run(length: usize, seed: u64, solved_at: Option<usize>) -> MemoryRun {
        MemoryRun {
            init: CellInit::pytorch(Cell::Gru),
            length,
            seed,
            checks: vec![],
            solved_at,
            seconds: 0.0,
        }
    }

    #[test]
    fn reach_is_the_longest_length_every_seed_solved_within_each_budget() {
        let gru = CellInit::pytorch(Cell::Gru);
        let runs = [
            run(10, 0, Some(100)),
            run(10, 1, Some(100)),
            run(20, 0, Some(100)),
            run(20, 1, Some(200)),
            run(30, 0, None),
            run(30, 1, Some(200)),
        ];
        let reach = Reach::of(&config(), gru, &runs);
        assert_eq!(reach.longest, [(100, Some(10)), (200, Some(20))]);
        // Seed 1 solved 30 within 200 steps, seed 0 did not: on some seed, not every one.
        assert_eq!(reach.longest_by_some_seed, [(100, Some(20)), (200, Some(30))]);
        assert_eq!(reach.stopped_at, None);
        // No seed solved 20: the search stopped there.
        let runs = [run(10, 0, Some(100)), run(10, 1, Some(100)), run(20, 0, None), run(20, 1, None)];
        let reach = Reach::of(&config(), gru, &runs);
        assert_eq!((reach.longest_by_some_seed[1], reach.stopped_at), ((200, Some(10)), Some(20)));
        // A length that ran on fewer seeds than configured is not solved on every seed.
        assert_eq!(Reach::of(&config(), gru, &runs[..1]).longest, [(100, None), (200, None)]);
        assert_eq!(
            Reach::of(&config(), CellInit::pytorch(Cell::Lstm), &runs).longest,
            [(100, None), (200, None)]
        );
    }

    #[test]
    fn the_tables_list_the_reach_and_every_run() {
        let mut one = run(10, 0, None);
        one.checks = vec![Check { steps: 100, accuracy: 0.61 }, Check { steps: 200, accuracy: 0.72 }];
        let runs = vec![run(10, 1, Some(200)), one, run(20, 0, Some(100)), run(20, 1, None)];
        let reach = vec![Reach::of(&config(), CellInit::pytorch(Cell::Gru), &runs)];
        let machine = Machine { cpu: "cpu".into(), cores: 2, threads: 1, load_average: None };
        let report = MemoryReport {
            experiment: "memory",
            machine,
            config: config(),
            seconds: 1.0,
            cpu_seconds: None,
            runs,
            reach,
        };
        assert_eq!(
            report.reach_table(),
            "| cell | 100 steps | 200 steps | search stopped at |\n| --- | --- | --- | --- |\n\
             | gru | none (20) | none (20) | none |\n"
        );
        assert_eq!(report.runs_table().lines().nth(2), Some("| gru | 10 | 200 / 0.72 |"));
    }

    #[test]
    fn the_config_is_checked_before_any_work() {
        assert!(config().validate().is_ok());
        let bad = |c: MemoryConfig| format!("{:#}", c.validate().unwrap_err());
        assert!(bad(MemoryConfig { budgets: vec![200, 100], ..config() }).contains("--budgets must increase"));
        assert!(bad(MemoryConfig { lengths: vec![20, 10], ..config() }).contains("--lengths must increase"));
        assert!(bad(MemoryConfig { solved_accuracy: 0.5, ..config() }).contains("above chance"));
        let gru_bias = CellInit { cell: Cell::Gru, forget_bias: Some(1.0) };
        assert!(
            bad(MemoryConfig { inits: vec![gru_bias], ..config() }).contains("the LSTM only"),
            "{}",
            bad(MemoryConfig { inits: vec![gru_bias], ..config() })
        );
        let short = Training { train: 100, ..config().training };
        assert!(bad(MemoryConfig { training: short, ..config() }).contains("fewer than the last budget"));
    }
}
