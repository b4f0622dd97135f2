//! The article example as a user runs it: its output, and every bad input rejected with a
//! one-line message and a non-zero exit, before libtorch sees it.

use crate::common::{assert_clean_failure, example, run, text};

#[test]
fn prints_the_articles_prediction() {
    let output = run(example("article"), &["--threads", "1"]);
    let (stdout, stderr) = text(&output);
    assert!(output.status.success(), "{stderr}");
    assert_eq!(stdout, "tensor([0, 1])\n");
}

#[test]
fn zero_epochs_is_valid_and_leaves_the_parameters_untouched() {
    let dir = crate::common::tempdir("epochs0");
    let report = dir.join("report.json");
    let output =
        run(example("article"), &["--epochs", "0", "--threads", "1", "--report", report.to_str().unwrap()]);
    assert!(output.status.success(), "{}", text(&output).1);
    let report: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert_eq!(report["losses"].as_array().unwrap().len(), 0);
    assert_eq!(report["initial_parameters"], report["final_parameters"]);
    assert_eq!(report["logits"].as_array().unwrap().len(), 4);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn bad_input_fails_cleanly() {
    let cuda_devices = lstm_tch::runtime::device::cuda_device_count();
    let mut cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["--batch-size", "0"], "batch size must be at least 1"),
        (vec!["--seq-len", "0"], "sequence length must be at least 1"),
        (vec!["--input-size", "0"], "input size must be at least 1"),
        (vec!["--hidden-size", "0"], "hidden size must be at least 1"),
        (vec!["--num-layers", "0"], "number of layers must be at least 1"),
        (vec!["--output-size", "0"], "output size must be at least 1"),
        (vec!["--hidden-size=-3"], "hidden size must be at least 1"),
        (vec!["--lr", "0"], "learning rate must be positive and at most float32"),
        (vec!["--lr=-0.1"], "learning rate must be positive and at most float32"),
        (vec!["--lr", "nan"], "learning rate must be positive and at most float32"),
        (vec!["--lr", "inf"], "learning rate must be positive and at most float32"),
        (vec!["--threads", "0"], "--threads must be at least 1"),
        (vec!["--device", "gpu"], "unknown device 'gpu'"),
        (vec!["--device", "cuda:x"], "unknown device 'cuda:x'"),
        (vec!["--epochs=-1"], "invalid value '-1' for '--epochs"),
        (
            vec!["--report", "/nonexistent-dir/report.json"],
            "cannot write report /nonexistent-dir/report.json",
        ),
        (vec!["--report", "/"], "cannot write report /"),
        (vec!["--batch-size", "9223372036854775807", "--seq-len", "2"], "overflows"),
    ];
    if cuda_devices == 0 {
        cases.push((vec!["--device", "cuda"], "device cuda:0 is not available"));
    }
    if cuda_devices < 2 {
        cases.push((vec!["--device", "cuda:1"], "device cuda:1 is not available"));
    }
    if !tch::utils::has_mps() {
        cases.push((vec!["--device", "mps"], "device mps is not available"));
    }
    for (args, needle) in cases {
        let output = run(example("article"), &args);
        assert_clean_failure(&output, needle, &args.join(" "));
    }
}
