//! `lstm-tch train` under torchrun against `scripts/text_reference.py train --ddp` (PyTorch's
//! `DistributedDataParallel` over a `DistributedSampler`, as a PyTorch user writes it): at
//! world sizes 2 and 4, with both Adam updates, with and without `--bucket`, on the English and
//! Chinese samples, every rank's every batch loss, the dev accuracy of every epoch and the best
//! epoch's weights are the same bits. Then what ends a job: a rank started with other flags,
//! and a store nobody serves.

use std::{
    path::Path,
    process::{Command, Output},
    time::{Duration, Instant},
};

use serde_json::Value;
use tch::Tensor;

use super::torchrun_command;
use crate::common::{assert_clean_failure, lstm_tch, parity_slice, root, tempdir, text, PARITY_TRAIN_FLAGS};

/// One configuration of the matrix.
struct Case {
    name: &'static str,
    sample: &'static str,
    batch_size: usize,
    flags: &'static [&'static str],
}

fn succeeded(output: Output, what: &str) -> Output {
    assert!(output.status.success(), "{what} failed:\n{}", text(&output).1);
    output
}

fn read_json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// `[epoch][batch][rank]` losses as float32 bits.
fn loss_bits(epochs: &[Value]) -> Vec<Vec<Vec<u32>>> {
    epochs
        .iter()
        .map(|epoch| {
            epoch
                .as_array()
                .unwrap()
                .iter()
                .map(|batch| {
                    batch.as_array().unwrap().iter().map(|l| (l.as_f64().unwrap() as f32).to_bits()).collect()
                })
                .collect()
        })
        .collect()
}

/// Every tensor of a safetensors file, by name, as raw bytes.
fn tensors(path: &Path) -> Vec<(String, Vec<u8>)> {
    let mut named: Vec<(String, Vec<u8>)> = Tensor::read_safetensors(path)
        .unwrap()
        .into_iter()
        .map(|(name, t)| {
            let numel = t.numel();
            let mut bytes = vec![0u8; numel * t.kind().elt_size_in_bytes()];
            t.contiguous().copy_data_u8(&mut bytes, numel);
            (name, bytes)
        })
        .collect();
    named.sort();
    named
}

/// Trains every case (all of one world size) under torchrun with `lstm-tch`, then all of them
/// in one `text_reference.py --ddp` job (torch's import and the rendezvous paid once), and
/// compares each.
fn check(world_size: usize, cases: &[Case]) {
    let dir = tempdir(&format!("dist-train-{world_size}"));
    let path = |p: &Path| p.to_str().unwrap().to_owned();
    let mut pytorch = torchrun_command(world_size);
    pytorch.arg(root().join("scripts/text_reference.py")).args(["train", "--ddp", "--threads", "1"]);
    for case in cases {
        let case_dir = dir.join(case.name);
        std::fs::create_dir_all(&case_dir).unwrap();
        let slice = parity_slice(&case_dir, case.sample);
        let dev = root().join("data").join(case.sample).join("dev.tsv");
        let batch_size = case.batch_size.to_string();
        let mut rust = torchrun_command(world_size);
        rust.arg("--no-python").arg(lstm_tch()).args([
            "train",
            "--train",
            &path(&slice),
            "--dev",
            &path(&dev),
            "--batch-size",
            &batch_size,
        ]);
        rust.args(PARITY_TRAIN_FLAGS);
        rust.arg("--out").arg(case_dir.join("ckpt")).arg("--report").arg(case_dir.join("rust.json"));
        rust.arg("--export-encoded").arg(case_dir.join("encoded.json"));
        succeeded(
            rust.args(case.flags).output().unwrap(),
            &format!("{}: lstm-tch under torchrun", case.name),
        );
        pytorch.arg("--encoded").arg(case_dir.join("encoded.json"));
        pytorch.arg("--report").arg(case_dir.join("py.json"));
        pytorch.arg("--weights").arg(case_dir.join("py.safetensors"));
    }
    succeeded(pytorch.output().unwrap(), &format!("world size {world_size}: text_reference.py --ddp"));
    for case in cases {
        compare(case, world_size, &dir.join(case.name));
    }
    std::fs::remove_dir_all(dir).unwrap();
}

/// Compares the Rust run of `case` in `dir` with PyTorch's: every rank's batch losses, the dev
/// accuracy of each epoch and the best epoch's weights, as bits.
fn compare(case: &Case, world_size: usize, dir: &Path) {
    let (rust, pytorch) = (read_json(&dir.join("rust.json")), read_json(&dir.join("py.json")));
    let rust_epochs = rust["epochs"].as_array().unwrap();
    let rust_losses: Vec<Value> = rust_epochs.iter().map(|e| e["rank_losses"].clone()).collect();
    let rust_losses = loss_bits(&rust_losses);
    let expected_batches = 240usize.div_ceil(world_size).div_ceil(case.batch_size);
    assert_eq!(rust_losses.len(), 2);
    for epoch in &rust_losses {
        assert_eq!(epoch.len(), expected_batches, "{}: batches per rank", case.name);
        assert!(epoch.iter().all(|batch| batch.len() == world_size));
    }
    assert_eq!(
        rust_losses,
        loss_bits(pytorch["rank_losses"].as_array().unwrap()),
        "{}: batch losses differ from PyTorch DDP's",
        case.name
    );
    let rust_accuracy: Vec<f64> =
        rust_epochs.iter().map(|e| e["dev"]["accuracy"].as_f64().unwrap()).collect();
    let py_accuracy: Vec<f64> =
        pytorch["dev_accuracy"].as_array().unwrap().iter().map(|a| a.as_f64().unwrap()).collect();
    assert_eq!(rust_accuracy, py_accuracy, "{}: dev accuracy", case.name);
    let rust_weights = tensors(&dir.join("ckpt/model.safetensors"));
    let py_weights = tensors(&dir.join("py.safetensors"));
    assert_eq!(
        rust_weights.iter().map(|(n, _)| n).collect::<Vec<_>>(),
        py_weights.iter().map(|(n, _)| n).collect::<Vec<_>>()
    );
    for ((name, r), (_, p)) in rust_weights.iter().zip(&py_weights) {
        assert!(r == p, "{}: {name} differs from PyTorch DDP's best epoch", case.name);
    }
}

// Each dimension takes both its values at each world size: English and Chinese, both Adams, plain
// and bucketed batches (and the cells, dropout and class weights between them).
#[test]
fn train_under_torchrun_matches_pytorch_ddp_at_world_size_2() {
    check(
        2,
        &[
            Case { name: "en", sample: "sample", batch_size: 16, flags: &["--bucket", "false"] },
            Case {
                name: "zh-libtorch-bucket-dropout",
                sample: "sample-zh",
                batch_size: 4,
                flags: &[
                    "--adam",
                    "libtorch",
                    "--bucket",
                    "--dropout",
                    "0.2",
                    "--num-layers",
                    "2",
                    "--output-dropout",
                    "0.3",
                ],
            },
        ],
    );
}

#[test]
fn train_under_torchrun_matches_pytorch_ddp_at_world_size_4() {
    check(
        4,
        &[
            Case { name: "en-bucket", sample: "sample", batch_size: 8, flags: &["--bucket"] },
            Case {
                name: "zh-libtorch-gru",
                sample: "sample-zh",
                batch_size: 8,
                flags: &[
                    "--adam",
                    "libtorch",
                    "--bucket",
                    "false",
                    "--cell",
                    "gru",
                    "--class-weights",
                    "balanced",
                ],
            },
        ],
    );
}

/// Rank `rank` of a two-rank job without torchrun (rank 0 serves the store, as env:// does) at
/// 127.0.0.1:`port`, training on `slice` with `flags`.
fn rank_process(rank: usize, port: u16, slice: &Path, out: &Path, flags: &[&str]) -> std::process::Child {
    Command::new(lstm_tch())
        .current_dir(root())
        .env("RANK", rank.to_string())
        .env("WORLD_SIZE", "2")
        .env("MASTER_ADDR", "127.0.0.1")
        .env("MASTER_PORT", port.to_string())
        .args(["train", "--train", slice.to_str().unwrap(), "--epochs", "1", "--embedding-dim", "8"])
        .args(["--hidden-size", "8", "--threads", "1", "--quiet", "--dist-timeout", "20", "--out"])
        .arg(out.join(format!("ckpt{rank}")))
        .args(flags)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[test]
fn ranks_started_with_other_flags_all_stop_with_one_line() {
    let dir = tempdir("dist-mismatch");
    let slice = parity_slice(&dir, "sample");
    let port = free_port();
    let started = Instant::now();
    let ranks =
        [rank_process(0, port, &slice, &dir, &[]), rank_process(1, port, &slice, &dir, &["--lr", "0.01"])];
    for (rank, child) in ranks.into_iter().enumerate() {
        let output = child.wait_with_output().unwrap();
        let (_, stderr) = text(&output);
        assert!(!output.status.success(), "rank {rank} went on");
        // Rank 0 says what it read first.
        let errors: Vec<&str> = stderr.lines().filter(|l| !l.starts_with("data: ")).collect();
        assert_eq!(
            errors,
            ["error: rank 1 started with other flags or data than rank 0: start every rank with the same"],
            "rank {rank}"
        );
    }
    assert!(started.elapsed() < Duration::from_secs(20), "took {:?}", started.elapsed());
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_rank_whose_store_is_not_there_stops_within_its_timeout() {
    let dir = tempdir("dist-no-store");
    let slice = parity_slice(&dir, "sample");
    let port = free_port();
    let started = Instant::now();
    let output = Command::new(lstm_tch())
        .current_dir(root())
        .envs([("RANK", "1"), ("WORLD_SIZE", "2"), ("MASTER_ADDR", "127.0.0.1")])
        .env("MASTER_PORT", port.to_string())
        .env("TORCHELASTIC_USE_AGENT_STORE", "True")
        .args(["train", "--train", slice.to_str().unwrap(), "--dist-timeout", "2", "--out"])
        .arg(dir.join("ckpt"))
        .output()
        .unwrap();
    assert_clean_failure(
        &output,
        &format!("rank 1 of 2 cannot join the job at 127.0.0.1:{port}"),
        "no store",
    );
    assert_eq!(text(&output).1.lines().count(), 1, "one line: {}", text(&output).1);
    // The process starts and reads its data first: a second more than the store alone.
    let bound = super::store_gives_up_within(Duration::from_secs(2)) + Duration::from_secs(1);
    assert!(started.elapsed() < bound, "took {:?}", started.elapsed());
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn ctrl_c_stops_every_rank_after_the_same_step_with_the_state_saved() {
    let dir = tempdir("dist-interrupt");
    let out = dir.join("ckpt");
    let job = torchrun_command(2)
        .arg("--no-python")
        .arg(lstm_tch())
        .args(["train", "--epochs", "50", "--embedding-dim", "8", "--hidden-size", "8", "--threads", "1"])
        .args(["--quiet", "--save-every", "5", "--out"])
        .arg(&out)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let state = out.join("training/state.json");
    let started = Instant::now();
    while !state.is_file() {
        assert!(started.elapsed() < Duration::from_secs(60), "no save within a minute");
        std::thread::sleep(Duration::from_millis(50));
    }
    // What a terminal's Ctrl-C does to torchrun: it passes SIGINT on to its workers.
    // SAFETY: a signal to the child we started.
    unsafe { libc::kill(job.id() as i32, libc::SIGINT) };
    let output = job.wait_with_output().unwrap();
    let (_, stderr) = text(&output);
    // The ranks' lines may interleave on the shared stderr: find each rank's message.
    let marker = "interrupted: saved the training state (";
    let stops: Vec<&str> =
        stderr.split(marker).skip(1).map(|rest| rest.split(')').next().unwrap_or_default()).collect();
    assert_eq!(stops.len(), 2, "both ranks stop:\n{stderr}");
    assert_eq!(stops[0], stops[1], "the ranks stopped at different steps:\n{stderr}");
    let saved: Value = read_json(&state);
    assert!(!saved["finished"].as_bool().unwrap());
    assert_eq!(saved["world_size"], 2);
    std::fs::remove_dir_all(dir).unwrap();
}
