//! Fault injection for the crash and full-disk tests, compiled only with the cargo feature
//! `fault-injection` (which only `scripts/test.sh` enables): a release build reads no such
//! variable and has none of this code. Without the feature every hook is an empty inline
//! function.
//!
//! - `LSTM_TCH_FAULT_SAVE=STEP[:N]`: the process kills itself with SIGKILL (as a power cut or
//!   the OOM killer would) the Nth time (default: the first) a checkpoint save reaches `STEP`:
//!   `weights` (inside the new directory's writing), `written`, `swapped` or `saved`;
//! - `LSTM_TCH_FAULT_SAVE_ERROR=STEP[:N]`: that step fails instead with "No space left on
//!   device", as a full disk would make it;
//! - `LSTM_TCH_FAULT_BATCH=N`: the process kills itself right after the run's Nth training
//!   batch (counted from the start of the run, resumed batches included).
//!
//! Under torchrun, a fault fires only in the job's first attempt (`TORCHELASTIC_RESTART_COUNT`
//! unset or 0, so a restarted worker runs through), and with `LSTM_TCH_FAULT_RANK=R` only on
//! rank R.

/// A checkpoint save reached `step`: kills the process or fails as the environment asks.
#[cfg(feature = "fault-injection")]
pub fn save_step(step: &str) -> std::io::Result<()> {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static KILL_SEEN: AtomicUsize = AtomicUsize::new(0);
    static ERROR_SEEN: AtomicUsize = AtomicUsize::new(0);
    let reached = |var: &str, seen: &AtomicUsize| {
        let Ok(spec) = std::env::var(var) else { return false };
        let (name, nth) =
            spec.split_once(':').map_or((spec.as_str(), 1), |(n, k)| (n, k.parse().unwrap_or(1)));
        name == step && seen.fetch_add(1, Ordering::SeqCst) + 1 == nth
    };
    if !armed() {
        return Ok(());
    }
    if reached("LSTM_TCH_FAULT_SAVE", &KILL_SEEN) {
        kill_this_process();
    }
    if reached("LSTM_TCH_FAULT_SAVE_ERROR", &ERROR_SEEN) {
        #[cfg(unix)]
        return Err(std::io::Error::from_raw_os_error(libc::ENOSPC));
        #[cfg(not(unix))]
        return Err(std::io::Error::from(std::io::ErrorKind::StorageFull));
    }
    Ok(())
}

/// A checkpoint save reached `step` (no fault injection in this build).
#[cfg(not(feature = "fault-injection"))]
#[inline(always)]
pub fn save_step(_step: &str) -> std::io::Result<()> {
    Ok(())
}

/// A training run finished its batch number `batches_done()` (counted from the start of the
/// run): kills the process if the environment asks for it there.
#[cfg(feature = "fault-injection")]
pub fn batch_done(batches_done: impl FnOnce() -> usize) {
    // Read once: this runs after every batch.
    static KILL_AFTER: std::sync::OnceLock<Option<usize>> = std::sync::OnceLock::new();
    let kill_after = KILL_AFTER
        .get_or_init(|| std::env::var("LSTM_TCH_FAULT_BATCH").ok()?.parse().ok().filter(|_| armed()));
    if kill_after.is_some_and(|n| batches_done() == n) {
        kill_this_process();
    }
}

/// A training run finished a batch (no fault injection in this build).
#[cfg(not(feature = "fault-injection"))]
#[inline(always)]
pub fn batch_done(_batches_done: impl FnOnce() -> usize) {}

/// Whether faults fire in this process: not in a job torchrun restarted, and, with
/// `LSTM_TCH_FAULT_RANK`, only on that rank.
#[cfg(feature = "fault-injection")]
fn armed() -> bool {
    let var = |name: &str| std::env::var(name).ok();
    let first_attempt = var("TORCHELASTIC_RESTART_COUNT").is_none_or(|c| c.trim() == "0");
    let this_rank = var("LSTM_TCH_FAULT_RANK").is_none_or(|r| var("RANK").is_some_and(|mine| mine == r));
    first_attempt && this_rank
}

/// Ends the process with SIGKILL, as a power cut or the OOM killer would, after one line on
/// stderr saying so (the tests' evidence that the kill happened: under torchrun, which of a
/// killed rank and the peers its death fails the agent reports first is a race).
#[cfg(feature = "fault-injection")]
fn kill_this_process() -> ! {
    let rank = std::env::var("RANK").map(|r| format!(" (rank {r})")).unwrap_or_default();
    eprintln!("fault injection: SIGKILL to process {}{rank}", std::process::id());
    #[cfg(unix)]
    // SAFETY: sends SIGKILL to this very process.
    unsafe {
        libc::kill(libc::getpid(), libc::SIGKILL);
    }
    std::process::abort()
}
