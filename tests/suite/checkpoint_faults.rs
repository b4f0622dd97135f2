//! A checkpoint path is never empty and never half-written: `lstm-tch train` is killed with
//! SIGKILL at each step of a save in turn (inside the writing of the new directory, after it,
//! after the swap, after the save), on the save that creates the directory and on one that
//! replaces it. After each kill the path holds a complete checkpoint that loads (the previous
//! or the new one), or, before the very first save completed, nothing at all; and the next run
//! saving there cleans up the scratch directory the killed one left.

use std::{os::unix::process::ExitStatusExt, path::Path, process::Command};

use crate::common::{lstm_tch, tempdir, text};
use lstm_tch::checkpoint;
use tch::Device;

/// `lstm-tch train` on the sample data with a tiny model, saving to `out`, 3 epochs (each a
/// new best on dev, so 3 saves), with `LSTM_TCH_FAULT_SAVE=fault` when given.
fn train(out: &Path, fault: Option<&str>) -> std::process::Output {
    let mut command = Command::new(lstm_tch());
    command.current_dir(crate::common::root()).args([
        "train",
        "-q",
        "--epochs",
        "3",
        "--embedding-dim",
        "8",
        "--hidden-size",
        "8",
        "--threads",
        "1",
        "--out",
        out.to_str().unwrap(),
    ]);
    if let Some(fault) = fault {
        command.env("LSTM_TCH_FAULT_SAVE", fault);
    }
    command.output().unwrap()
}

/// The scratch directories beside `out` (`.NAME.tmp-PID`, `.NAME.old-PID`).
fn leftovers(out: &Path) -> Vec<String> {
    let prefix = format!(".{}.", out.file_name().unwrap().to_string_lossy());
    std::fs::read_dir(out.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(&prefix))
        .collect()
}

#[test]
fn a_save_killed_at_any_step_leaves_a_loadable_checkpoint() {
    let dir = tempdir("checkpoint-faults");
    for nth in [1, 2] {
        for step in ["weights", "written", "swapped", "saved"] {
            let what = format!("killed at '{step}' of save {nth}");
            if nth == 1 && step == "swapped" {
                continue; // the first save moves the new directory in: there is nothing to swap
            }
            let out = dir.join(format!("ck-{step}-{nth}"));
            let killed = train(&out, Some(&format!("{step}:{nth}")));
            assert_eq!(killed.status.signal(), Some(9), "{what}: not killed\n{}", text(&killed).1);
            let before_first = nth == 1 && matches!(step, "weights" | "written");
            if before_first {
                assert!(!out.exists(), "{what}: a checkpoint that was never completed is at the path");
            } else {
                let loaded = checkpoint::load(&out, Device::Cpu);
                assert!(loaded.is_ok(), "{what}: the path does not load: {:#}", loaded.unwrap_err());
            }
            // A run that saves there again succeeds and removes what the killed one left.
            let again = train(&out, None);
            assert!(again.status.success(), "{what}: the next run failed\n{}", text(&again).1);
            checkpoint::load(&out, Device::Cpu).unwrap();
            assert_eq!(leftovers(&out), Vec::<String>::new(), "{what}: scratch directories remain");
        }
    }
    std::fs::remove_dir_all(dir).unwrap();
}
