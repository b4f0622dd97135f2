//! Ctrl-C during training. The first SIGINT (or SIGTERM, as a preempted machine or `kill`
//! sends) asks the run to stop: it finishes the current batch, saves its state and ends; a second
//! one ends the process at once with status 130 (the last saved state is still whole: saves are
//! atomic).

use std::sync::{
    atomic::{AtomicBool, Ordering},
    Arc,
};

use anyhow::{Context, Result};

/// Whether the user asked the run to stop.
#[derive(Debug, Clone, Default)]
pub struct Interrupt {
    flag: Arc<AtomicBool>,
}

impl Interrupt {
    /// A flag only [`Interrupt::request`] sets (for library callers and tests).
    pub fn new() -> Self {
        Self::default()
    }

    /// A flag the process's SIGINT and SIGTERM set; the second such signal exits at once with
    /// status 130. Installed once per process, by the command line.
    pub fn from_signals() -> Result<Self> {
        let interrupt = Self::new();
        for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
            // In this order: a signal arriving with the flag already set exits; otherwise the
            // second handler sets it.
            signal_hook::flag::register_conditional_shutdown(signal, 130, Arc::clone(&interrupt.flag))
                .and_then(|_| signal_hook::flag::register(signal, Arc::clone(&interrupt.flag)))
                .context("cannot install the Ctrl-C handler")?;
        }
        Ok(interrupt)
    }

    /// Asks the run to stop, as a first Ctrl-C does.
    pub fn request(&self) {
        self.flag.store(true, Ordering::SeqCst);
    }

    /// Whether a stop was asked for.
    pub fn requested(&self) -> bool {
        self.flag.load(Ordering::SeqCst)
    }
}

/// The error a run stopped by [`Interrupt`] ends with: its message says where the state is and
/// how to resume; `lstm-tch` exits with status 130 (128 + SIGINT), as shells expect.
#[derive(Debug)]
pub struct Interrupted {
    /// What was saved and how to go on.
    pub message: String,
}

impl std::fmt::Display for Interrupted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Interrupted {}
