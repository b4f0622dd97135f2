//! A one-line progress bar on stderr: batches done, running loss, throughput. Drawn only when
//! stderr is a terminal (and not `--quiet`), at most ten times a second, and erased when done,
//! so logs and pipes get only the per-epoch summary lines.

use std::{
    io::{IsTerminal, Write},
    time::{Duration, Instant},
};

/// A progress bar over `total` steps.
#[derive(Debug)]
pub struct Progress {
    total: usize,
    label: String,
    enabled: bool,
    started: Instant,
    last_draw: Option<Instant>,
}

impl Progress {
    /// A bar for `total` steps, prefixed by `label`; drawn if `enabled` and stderr is a terminal.
    pub fn new(total: usize, label: impl Into<String>, enabled: bool) -> Self {
        let enabled = enabled && std::io::stderr().is_terminal();
        Self { total, label: label.into(), enabled, started: Instant::now(), last_draw: None }
    }

    /// Reports `done` steps, the mean loss so far and the items processed so far.
    pub fn update(&mut self, done: usize, loss: f64, items: usize) {
        if !self.enabled
            || self.last_draw.is_some_and(|t| t.elapsed() < Duration::from_millis(100)) && done < self.total
        {
            return;
        }
        self.last_draw = Some(Instant::now());
        const WIDTH: usize = 30;
        let filled = (done * WIDTH).checked_div(self.total).unwrap_or(WIDTH).min(WIDTH);
        let rate = items as f64 / self.started.elapsed().as_secs_f64().max(1e-9);
        let bar: String = "=".repeat(filled) + &" ".repeat(WIDTH - filled);
        let mut err = std::io::stderr().lock();
        let _ = write!(
            err,
            "\r{} [{bar}] {done}/{} batches  loss {loss:.4}  {rate:.0} texts/s \x1b[K",
            self.label, self.total
        );
        let _ = err.flush();
    }

    /// Erases the bar.
    pub fn finish(&self) {
        if self.enabled && self.last_draw.is_some() {
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\r\x1b[K");
            let _ = err.flush();
        }
    }
}
