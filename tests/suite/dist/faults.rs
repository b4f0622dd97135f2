//! What a distributed run survives and what ends it. Under `torchrun --max-restarts 3`, a
//! worker killed with SIGKILL (mid-epoch, or rank 0 in the middle of a save) is restarted with its peers, every rank resumes from the last save in `--out`, and the
//! final `model.safetensors` is byte-identical to the uninterrupted run's, at world sizes 2 and
//! 4. Without restarts, a dead rank ends the job within seconds, and its state is refused by a
//! resume at another world size, in one line.

use std::{
    path::Path,
    process::Output,
    time::{Duration, Instant},
};

use super::torchrun_command;
use crate::common::{assert_clean_failure, lstm_tch, parity_slice, run, tempdir, text};

/// A `torchrun --max-restarts` job of `lstm-tch train` on `slice` into `out` (2 epochs of
/// 15 batches per rank at world size 2, saving every 3, with dropout: every generator matters),
/// with the fault-injection variables `faults`.
fn job(world_size: usize, max_restarts: usize, slice: &Path, out: &Path, faults: &[(&str, &str)]) -> Output {
    let mut command = torchrun_command(world_size);
    command
        .args(["--max-restarts", &max_restarts.to_string(), "--no-python"])
        .arg(lstm_tch())
        .args(["train", "--train", slice.to_str().unwrap(), "--epochs", "2", "--batch-size", "8"])
        .args(["--embedding-dim", "16", "--hidden-size", "24", "--num-layers", "2", "--dropout", "0.2"])
        .args(["--embedding-dropout", "0.3", "--seed", "3", "--threads", "1", "--quiet", "--save-every", "3"])
        .args(["--holdout", "0.1", "--dist-timeout", "30", "--out"])
        .arg(out)
        .envs(faults.iter().copied());
    command.output().unwrap()
}

#[test]
fn a_killed_worker_is_restarted_and_the_run_ends_with_the_same_bytes() {
    let dir = tempdir("dist-kill");
    let slice = parity_slice(&dir, "sample");
    for world_size in [2usize, 4] {
        let reference = dir.join(format!("reference-{world_size}"));
        let output = job(world_size, 0, &slice, &reference, &[]);
        assert!(output.status.success(), "{}", text(&output).1);
        let expected = std::fs::read(reference.join("model.safetensors")).unwrap();
        let kills: &[(&str, &[(&str, &str)])] = match world_size {
            2 => &[
                ("rank 1 after batch 5", &[("LSTM_TCH_FAULT_BATCH", "5"), ("LSTM_TCH_FAULT_RANK", "1")]),
                (
                    "rank 0 inside its third save",
                    &[("LSTM_TCH_FAULT_SAVE", "weights:3"), ("LSTM_TCH_FAULT_RANK", "0")],
                ),
            ],
            _ => &[("rank 2 after batch 4", &[("LSTM_TCH_FAULT_BATCH", "4"), ("LSTM_TCH_FAULT_RANK", "2")])],
        };
        for (i, (what, faults)) in kills.iter().enumerate() {
            let out = dir.join(format!("killed-{world_size}-{i}"));
            let output = job(world_size, 3, &slice, &out, faults);
            let (_, stderr) = text(&output);
            assert!(output.status.success(), "world size {world_size}, {what}:\n{stderr}");
            // The rank says so as it kills itself; torchrun may report its death (exitcode -9) or
            // first a peer's failure (exitcode 1), whichever it notices first.
            assert!(
                stderr.contains("fault injection: SIGKILL") && stderr.contains("failed (exitcode: "),
                "world size {world_size}, {what}: nothing was killed\n{stderr}"
            );
            assert!(
                stderr.contains("resuming"),
                "world size {world_size}, {what}: no rank resumed\n{stderr}"
            );
            let bytes = std::fs::read(out.join("model.safetensors")).unwrap();
            assert!(bytes == expected, "world size {world_size}, {what}: the final model differs");
        }
    }
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_rank_that_dies_without_restarts_ends_the_job_and_its_state_needs_as_many_ranks() {
    let dir = tempdir("dist-death");
    let slice = parity_slice(&dir, "sample");
    let out = dir.join("ckpt");
    let started = Instant::now();
    let output = job(2, 0, &slice, &out, &[("LSTM_TCH_FAULT_BATCH", "5"), ("LSTM_TCH_FAULT_RANK", "1")]);
    let elapsed = started.elapsed();
    let (_, stderr) = text(&output);
    assert!(!output.status.success(), "the job survived a dead rank:\n{stderr}");
    let survivor: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error: ")).collect();
    assert_eq!(survivor.len(), 1, "rank 0 ends with one line:\n{stderr}");
    assert!(survivor[0].starts_with("error: rank 0 of 2: step 6 of epoch 1 failed"), "{}", survivor[0]);
    assert!(elapsed < Duration::from_secs(60), "took {elapsed:?}");

    let resumed = run(lstm_tch(), &["train", "--resume", out.to_str().unwrap()]);
    assert_clean_failure(
        &resumed,
        "holds a run on 2 rank(s); resume it on as many (this is 1)",
        "resume alone",
    );
    assert_eq!(text(&resumed).1.lines().count(), 1);
    std::fs::remove_dir_all(dir).unwrap();
}
