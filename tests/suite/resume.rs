//! Nothing lost: a training run killed at any moment (SIGKILL inside an epoch, at an epoch's
//! end, during a save) or stopped with Ctrl-C, then continued with `train --resume DIR`, ends
//! with the same bits in `model.safetensors` and the same report numbers as the run never
//! interrupted, with either Adam; a second Ctrl-C exits at once; a resume with changed data, of
//! a finished run, or with other flags is refused.

use std::{
    os::unix::process::ExitStatusExt,
    path::{Path, PathBuf},
    process::{Command, Output, Stdio},
    thread::sleep,
    time::{Duration, Instant},
};

use crate::common::{lstm_tch, tempdir, text};
use lstm_tch::checkpoint;
use serde_json::Value;
use tch::Device;

/// `lstm-tch train` with a tiny model on the sample data (63 batches per epoch: 2,000 texts,
/// batch 32, pinned so that the kill points below stay where they are), dropout on (so the
/// generator's state matters), bucketed batches (the default), for `epochs` epochs, the
/// training state saved every `save_every` batches (and at each epoch's end), to `out`, with
/// its report beside it.
fn command(out: &Path, epochs: usize, save_every: usize) -> Command {
    let mut command = Command::new(lstm_tch());
    command.current_dir(crate::common::root()).args([
        "train",
        "-q",
        "--embedding-dim",
        "8",
        "--hidden-size",
        "8",
        "--batch-size",
        "32",
    ]);
    command.args([
        "--threads",
        "1",
        "--epochs",
        &epochs.to_string(),
        "--save-every",
        &save_every.to_string(),
    ]);
    command.args(["--out", out.to_str().unwrap(), "--report", report_path(out).to_str().unwrap()]);
    command
}

/// 2 epochs, saving every 20 batches, with `extra` flags and `env` set.
fn train(out: &Path, extra: &[&str], env: &[(&str, &str)]) -> Output {
    command(out, 2, 20).args(extra).envs(env.iter().copied()).output().unwrap()
}

fn resume(out: &Path) -> Output {
    Command::new(lstm_tch()).args(["train", "--resume", out.to_str().unwrap()]).output().unwrap()
}

fn report_path(out: &Path) -> PathBuf {
    out.with_extension("json")
}

/// What must not change across interruptions: the weights' bytes, and the report's numbers
/// (every batch loss, every dev metric, the best epoch, the test metrics; timings aside).
fn outcome(out: &Path) -> (Vec<u8>, Value) {
    let weights = std::fs::read(out.join(checkpoint::WEIGHTS_FILE)).unwrap();
    let report: Value = serde_json::from_str(&std::fs::read_to_string(report_path(out)).unwrap()).unwrap();
    let epochs: Vec<Value> = report["epochs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| serde_json::json!([e["epoch"], e["train_loss"], e["batch_losses"], e["dev"], e["best"]]))
        .collect();
    (weights, serde_json::json!({"epochs": epochs, "best": report["best_epoch"], "test": report["test"]}))
}

fn assert_killed(output: &Output, what: &str) {
    assert_eq!(output.status.signal(), Some(9), "{what}: not killed\n{}", text(output).1);
}

fn assert_success(output: &Output, what: &str) {
    assert!(output.status.success(), "{what}: failed\n{}", text(output).1);
}

#[test]
fn runs_killed_anywhere_resume_to_the_same_bits() {
    let dir = tempdir("resume-kill");
    for adam in ["pytorch", "libtorch"] {
        let reference = dir.join(format!("reference-{adam}"));
        assert_success(&train(&reference, &["--adam", adam], &[]), "the uninterrupted run");
        let expected = outcome(&reference);
        // Each case: the kills in turn (the first run's, then each resumed run's).
        let cases: &[&[(&str, &str)]] = match adam {
            "pytorch" => &[
                &[("LSTM_TCH_FAULT_BATCH", "30")],  // inside epoch 1 (last saved at batch 20)
                &[("LSTM_TCH_FAULT_BATCH", "63")],  // epoch 1's last batch, before its dev evaluation
                &[("LSTM_TCH_FAULT_BATCH", "101")], // inside epoch 2
                &[("LSTM_TCH_FAULT_SAVE", "weights:2")], // while writing the second save
                &[("LSTM_TCH_FAULT_SAVE", "swapped:4")], // the epoch-end save, swapped, not synced
                // Killed again and again: inside epoch 1, then after resuming, inside epoch 2.
                &[
                    ("LSTM_TCH_FAULT_BATCH", "45"),
                    ("LSTM_TCH_FAULT_BATCH", "90"),
                    ("LSTM_TCH_FAULT_BATCH", "125"),
                ],
            ],
            _ => &[&[("LSTM_TCH_FAULT_BATCH", "50")], &[("LSTM_TCH_FAULT_BATCH", "110")]],
        };
        for (i, kills) in cases.iter().enumerate() {
            let what = format!("{adam} Adam, kills {kills:?}");
            let out = dir.join(format!("run-{adam}-{i}"));
            assert_killed(&train(&out, &["--adam", adam], &kills[..1]), &what);
            for kill in &kills[1..] {
                let again = Command::new(lstm_tch())
                    .args(["train", "--resume", out.to_str().unwrap()])
                    .env(kill.0, kill.1)
                    .output()
                    .unwrap();
                assert_killed(&again, &format!("{what}, resumed"));
            }
            checkpoint::load(&out, Device::Cpu)
                .unwrap_or_else(|e| panic!("{what}: the path does not load: {e:#}"));
            let resumed = resume(&out);
            assert_success(&resumed, &what);
            assert!(text(&resumed).1.contains("resuming"), "{what}: {}", text(&resumed).1);
            let got = outcome(&out);
            assert!(got.0 == expected.0, "{what}: model.safetensors differs from the uninterrupted run's");
            assert_eq!(got.1, expected.1, "{what}: the report differs");
        }
    }
    std::fs::remove_dir_all(dir).unwrap();
}

/// Spawns `command` and waits until its first save of the training state is there; `None`
/// if the run ended first (successfully: a failure fails the test).
fn spawn_until_saved(mut command: Command, out: &Path) -> Option<std::process::Child> {
    let mut child = command.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let started = Instant::now();
    while !out.join("training/state.json").exists() {
        if child.try_wait().unwrap().is_some() {
            let output = child.wait_with_output().unwrap();
            assert!(output.status.success(), "the run failed\n{}", text(&output).1);
            return None;
        }
        assert!(started.elapsed() < Duration::from_secs(300), "the run never saved its state");
        sleep(Duration::from_millis(5));
    }
    Some(child)
}

/// A run with enough epochs to be still training when signalled, once it has saved.
fn spawn_long_run(out: &Path) -> std::process::Child {
    spawn_until_saved(command(out, 50, 5), out).expect("50 epochs ended before the first save")
}

fn sigint(child: &std::process::Child) {
    // SAFETY: sends SIGINT to our own child process.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
}

#[test]
fn ctrl_c_saves_and_exits_130_and_a_second_one_exits_at_once() {
    let dir = tempdir("resume-ctrl-c");
    let out = dir.join("ck");
    let child = spawn_long_run(&out);
    sigint(&child);
    let stopped = child.wait_with_output().unwrap();
    let stderr = text(&stopped).1;
    assert_eq!(stopped.status.code(), Some(130), "{stderr}");
    let last = stderr.trim_end().lines().last().unwrap_or_default();
    assert!(
        last.starts_with("interrupted: saved the training state") && last.contains("lstm-tch train --resume"),
        "{stderr}"
    );
    checkpoint::load(&out, Device::Cpu).unwrap();
    // Resumed, the 50 epochs would take long: this test checks where it stopped instead.
    let state: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("training/state.json")).unwrap()).unwrap();
    assert_eq!(state["finished"], false);
    assert!(state["position"]["reports"].as_array().unwrap().len() < 50);

    // Twice: the process ends at once, with a loadable checkpoint and a resumable state left.
    let out2 = dir.join("ck2");
    let child = spawn_long_run(&out2);
    sigint(&child);
    sigint(&child);
    let started = Instant::now();
    let killed = child.wait_with_output().unwrap();
    assert_eq!(killed.status.code(), Some(130), "{}", text(&killed).1);
    assert!(started.elapsed() < Duration::from_secs(5), "the second Ctrl-C did not exit at once");
    checkpoint::load(&out2, Device::Cpu).unwrap();
    lstm_tch::train::state::load_state(&out2).unwrap();
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn ctrl_c_then_resume_gives_the_uninterrupted_bits() {
    let dir = tempdir("resume-ctrl-c-bits");
    let reference = dir.join("reference");
    assert_success(&train(&reference, &[], &[]), "the uninterrupted run");
    // A real SIGINT, as soon as the run has saved once (every 5 batches here: the bits do not
    // depend on where the state is saved).
    let out = dir.join("ck");
    let child = spawn_until_saved(command(&out, 2, 5), &out).expect("2 epochs ended before the first save");
    sigint(&child);
    let stopped = child.wait_with_output().unwrap();
    if stopped.status.success() {
        eprintln!("the run ended before the signal arrived; nothing to resume");
    } else {
        assert_eq!(stopped.status.code(), Some(130), "{}", text(&stopped).1);
        assert_success(&resume(&out), "resumed after Ctrl-C");
    }
    assert!(outcome(&out) == outcome(&reference), "resumed after Ctrl-C: differs from the uninterrupted run");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_resume_is_refused_with_changed_data_when_finished_or_with_other_flags() {
    let dir = tempdir("resume-refused");
    let sample = crate::common::root().join("data/sample");
    let train_file = dir.join("train.tsv");
    std::fs::copy(sample.join("train.tsv"), &train_file).unwrap();
    let out = dir.join("ck");
    let data = ["--train", train_file.to_str().unwrap()];
    assert_killed(&train(&out, &data, &[("LSTM_TCH_FAULT_BATCH", "30")]), "the first run");
    // The data changes: one label flipped.
    let original = std::fs::read_to_string(&train_file).unwrap();
    let changed = original.replacen("\tpositive", "\tnegative", 1);
    assert_ne!(changed, original);
    std::fs::write(&train_file, &changed).unwrap();
    let refused = resume(&out);
    let stderr = text(&refused).1;
    assert_eq!(refused.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("data changed since this run began") && stderr.lines().count() == 2, "{stderr}");
    // The original data back: the resume goes through, and the run is finished.
    std::fs::write(&train_file, &original).unwrap();
    assert_success(&resume(&out), "resumed with the original data");
    let again = resume(&out);
    assert!(text(&again).1.contains("finished"), "{}", text(&again).1);
    assert_eq!(again.status.code(), Some(1));
    // No state at all, and other flags.
    let empty = dir.join("empty");
    std::fs::create_dir(&empty).unwrap();
    let none = resume(&empty);
    assert!(text(&none).1.contains("holds no training state"), "{}", text(&none).1);
    let flags = Command::new(lstm_tch())
        .args(["train", "--resume", out.to_str().unwrap(), "--epochs", "3"])
        .output()
        .unwrap();
    assert_eq!(flags.status.code(), Some(2), "{}", text(&flags).1);
    std::fs::remove_dir_all(dir).unwrap();
}
