//! The text classifier against `scripts/text_reference.py`, a PyTorch program written as a
//! PyTorch user would (nn.Embedding, nn.Dropout, nn.LSTM, nn.GRU or nn.RNN on
//! pack_padded_sequence, max or mean over pad_packed_sequence, nn.Linear, optim.Adam,
//! nn.CrossEntropyLoss). On a slice of a sample
//! dataset, from the same seed, with no clipping and `--adam pytorch`: every per-batch training
//! loss is identical (dropout included: both draw from libtorch's generator in the same order),
//! and PyTorch loading the Rust checkpoint (safetensors) gives identical logits, with the default
//! batches and with `--bucket`; where a GPU is present, on CUDA too (both sides at PyTorch's CUDA
//! defaults: cuDNN on flattened weights, the foreach Adam). Each tokenizer mode runs on the
//! Chinese sample. Tolerance: none.

use std::path::Path;

use crate::common::{lstm_tch, parity_slice, python, root, run, tempdir, text, PARITY_TRAIN_FLAGS};
use lstm_tch::{checkpoint, data::Encoded, infer, runtime::device::DeviceSpec};
use serde_json::Value;
use tch::Device;

fn read_json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn bits(values: &Value) -> Vec<u32> {
    values.as_array().unwrap().iter().map(|v| (v.as_f64().unwrap() as f32).to_bits()).collect()
}

/// Trains on the first 240 texts of `sample`'s train.tsv (data/`sample`) with `flags` on the
/// CPU in batches of 16, then compares.
fn check(name: &str, sample: &str, model_flags: &[&str]) {
    check_on(name, sample, "cpu", "16", model_flags);
}

/// Trains on 240 texts of data/`sample` in batches of `batch_size` with `flags` on `device`,
/// through `lstm-tch train` and `scripts/text_reference.py`; compares every batch loss, then
/// PyTorch's logits from the Rust checkpoint.
fn check_on(name: &str, sample: &str, device: &str, batch_size: &str, model_flags: &[&str]) {
    let dir = tempdir(&format!("text-parity-{name}"));
    let slice = parity_slice(&dir, sample);
    let sample_dir = root().join("data").join(sample);
    let (ckpt, report, encoded, py_report) =
        (dir.join("ckpt"), dir.join("rust.json"), dir.join("encoded.json"), dir.join("py.json"));
    let (dev, test) = (sample_dir.join("dev.tsv"), sample_dir.join("test.tsv"));
    let mut args = vec![
        "train",
        "--train",
        slice.to_str().unwrap(),
        "--dev",
        dev.to_str().unwrap(),
        "--test",
        test.to_str().unwrap(),
        "--batch-size",
        batch_size,
        "--device",
        device,
        "--out",
        ckpt.to_str().unwrap(),
        "--report",
        report.to_str().unwrap(),
        "--export-encoded",
        encoded.to_str().unwrap(),
    ];
    args.extend_from_slice(&PARITY_TRAIN_FLAGS);
    args.extend_from_slice(model_flags);
    let output = run(lstm_tch(), &args);
    let (_, stderr) = text(&output);
    assert!(output.status.success(), "{stderr}");
    assert!(!stderr.to_lowercase().contains("warning"), "{name}: libtorch warned:\n{stderr}");

    // Training: per-batch losses.
    let script = root().join("scripts/text_reference.py");
    let output = run(
        python(),
        &[
            script.to_str().unwrap(),
            "train",
            "--encoded",
            encoded.to_str().unwrap(),
            "--threads",
            "1",
            "--device",
            device,
            "--report",
            py_report.to_str().unwrap(),
        ],
    );
    assert!(output.status.success(), "{}", text(&output).1);
    let rust = read_json(&report);
    let pytorch = read_json(&py_report);
    let rust_epochs = rust["epochs"].as_array().unwrap();
    let py_epochs = pytorch["batch_losses"].as_array().unwrap();
    assert_eq!(rust_epochs.len(), 2);
    let batches = 240usize.div_ceil(batch_size.parse().unwrap());
    for (epoch, (r, p)) in rust_epochs.iter().zip(py_epochs).enumerate() {
        let (r, p) = (bits(&r["batch_losses"]), bits(p));
        assert_eq!(r.len(), batches, "240 texts in batches of {batch_size}");
        assert_eq!(r, p, "{name}: epoch {} batch losses differ from PyTorch's", epoch + 1);
    }

    // Inference: PyTorch loads the Rust checkpoint; logits on the test split, in batches of 64
    // and one sentence at a time (the single-sequence path skips the identity permutations).
    let exported = read_json(&encoded);
    let ids: Vec<Vec<i64>> = serde_json::from_value(exported["test"]["ids"].clone()).unwrap();
    let data = Encoded::from_ids(&ids, vec![0; ids.len()]).unwrap();
    tch::set_num_threads(1);
    let device_name = device;
    let device: Device = device.parse::<DeviceSpec>().unwrap().resolve().unwrap();
    let loaded = checkpoint::load(&ckpt, device).unwrap();
    for eval_batch in ["64", "1"] {
        let output = run(
            python(),
            &[
                script.to_str().unwrap(),
                "logits",
                "--checkpoint",
                ckpt.to_str().unwrap(),
                "--encoded",
                encoded.to_str().unwrap(),
                "--split",
                "test",
                "--batch-size",
                eval_batch,
                "--threads",
                "1",
                "--device",
                device_name,
            ],
        );
        let (stdout, stderr) = text(&output);
        assert!(output.status.success(), "{stderr}");
        let py_logits = bits(&serde_json::from_str::<Value>(&stdout).unwrap()["logits"]);
        let logits = infer::logits(&loaded.model, &data, eval_batch.parse().unwrap(), device).unwrap();
        let rust_logits: Vec<u32> =
            Vec::<f32>::try_from(&logits.flatten(0, -1)).unwrap().iter().map(|v| v.to_bits()).collect();
        assert_eq!(rust_logits.len(), 800);
        assert_eq!(
            rust_logits, py_logits,
            "{name}, batches of {eval_batch}: PyTorch's logits from the Rust checkpoint differ"
        );
    }
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn unidirectional_last_state_matches_pytorch() {
    check("uni", "sample", &["--bidirectional", "false", "--pooling", "last", "--embedding-dropout", "0"]);
}

#[test]
fn bidirectional_two_layer_last_state_matches_pytorch() {
    check(
        "bi",
        "sample",
        &["--bidirectional", "--num-layers", "2", "--pooling", "last", "--embedding-dropout", "0"],
    );
}

#[test]
fn max_pooling_with_every_dropout_matches_pytorch() {
    let flags = [
        "--bidirectional",
        "--num-layers",
        "2",
        "--dropout",
        "0.2",
        "--embedding-dropout",
        "0.3",
        "--output-dropout",
        "0.4",
    ];
    check("max", "sample", &[&flags[..], &["--pooling", "max"]].concat());
}

#[test]
fn mean_pooling_and_class_weights_match_pytorch() {
    let flags = ["--bidirectional", "false", "--pooling", "mean", "--embedding-dropout", "0.1"];
    check("mean", "sample", &[&flags[..], &["--class-weights", "balanced", "--bucket", "false"]].concat());
}

#[test]
fn gru_matches_pytorch() {
    check("gru-uni", "sample", &["--cell", "gru", "--bidirectional", "false", "--pooling", "last"]);
    let flags =
        ["--num-layers", "2", "--dropout", "0.2", "--embedding-dropout", "0.3", "--output-dropout", "0.4"];
    check(
        "gru-bi-max",
        "sample",
        &[&flags[..], &["--cell", "gru", "--bidirectional", "--pooling", "max"]].concat(),
    );
}

#[test]
fn rnn_matches_pytorch() {
    check(
        "rnn-bi-last",
        "sample",
        &["--cell", "rnn", "--bidirectional", "--num-layers", "2", "--pooling", "last"],
    );
    let flags = ["--cell", "rnn", "--bidirectional", "false", "--num-layers", "3", "--dropout", "0.3"];
    check("rnn-mean", "sample-zh", &[&flags[..], &["--pooling", "mean", "--bucket", "false"]].concat());
}

#[test]
fn forget_bias_matches_pytorch() {
    // `--forget-bias 1`: the forget gate's bias set after PyTorch's draws (1 in bias_ih, 0 in
    // bias_hh, every layer and direction), as `set_forget_bias` does by hand in PyTorch; every
    // later draw, loss and logit the same bits.
    let flags =
        ["--forget-bias", "1", "--num-layers", "2", "--pooling", "last", "--embedding-dropout", "0.2"];
    check("forget-bias", "sample", &flags);
}

#[test]
fn each_tokenizer_mode_on_chinese_matches_pytorch() {
    for mode in ["unicode", "chars", "jieba"] {
        check(&format!("zh-{mode}"), "sample-zh", &["--tokenizer", mode]);
    }
}

#[test]
fn bucketed_training_matches_pytorch() {
    // Batches of 2: pools of 200 texts, so the 240 make a full pool and a partial one.
    check_on("bucket", "sample", "cpu", "2", &["--bucket", "--bidirectional"]);
}

#[test]
fn cuda_training_and_checkpoint_match_pytorchs_cuda_defaults() {
    if !crate::common::cuda_or_skip("cuda_training_and_checkpoint_match_pytorchs_cuda_defaults") {
        return;
    }
    check_on("cuda", "sample", "cuda", "16", &["--bidirectional", "--bucket", "false"]);
    check_on("cuda-bucket", "sample", "cuda", "4", &["--bucket"]);
    check_on("cuda-gru", "sample", "cuda", "16", &["--cell", "gru", "--num-layers", "2"]);
    check_on("cuda-rnn", "sample", "cuda", "16", &["--cell", "rnn", "--pooling", "last"]);
}
