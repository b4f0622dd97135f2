//! Bit-for-bit parity with the article's Python script, through `scripts/compare.py`: for
//! seeds 0, 1, 2 and 42, on the article's configuration and on a wide one (input 4, hidden 17,
//! 3 layers, 5 classes, batch 3, 11 steps, lr 0.01, 30 epochs), every field of the Rust report
//! (inputs, initial and final parameters, every loss, logits, predictions, the printed line)
//! equals PyTorch's as float32 bit patterns with `--adam pytorch`: with PyTorch's default Adam
//! (single-tensor on the CPU), with `foreach=True`, and, where a GPU is present, on CUDA with
//! PyTorch's CUDA defaults. Tolerance: none.

use crate::common::{example, python, root, run, text};

fn compare(args: &[&str]) -> (bool, String) {
    let script = root().join("scripts/compare.py");
    let binary = example("article");
    let mut all = vec![script.to_str().unwrap(), "--rust-bin", binary.to_str().unwrap()];
    all.extend_from_slice(args);
    let output = run(python(), &all);
    let (stdout, stderr) = text(&output);
    println!("{stdout}{stderr}");
    (output.status.success(), stdout)
}

#[test]
fn pytorch_adam_is_bit_identical_to_the_python_script() {
    let (ok, stdout) = compare(&["--adam", "pytorch", "--seeds", "0", "1", "2", "42", "--threads", "1"]);
    assert!(ok, "Rust and PyTorch differ:\n{stdout}");
    // 2 configurations × 4 seeds, 8 fields each, all identical.
    assert_eq!(stdout.lines().filter(|l| l.matches("identical").count() == 8).count(), 8, "{stdout}");
}

#[test]
fn foreach_adam_is_bit_identical_to_torch_optim_adam_foreach() {
    // `--foreach on` against `torch.optim.Adam(..., foreach=True)`: PyTorch's `_multi_tensor_adam`
    // (its CUDA default), here run on CPU tensors, against src/runtime/native/adam.cpp's `_foreach_*`
    // calls. Tolerance: none.
    let (ok, stdout) =
        compare(&["--adam", "pytorch", "--foreach", "on", "--seeds", "0", "1", "2", "42", "--threads", "1"]);
    assert!(ok, "Rust and PyTorch differ with foreach=True:\n{stdout}");
    assert_eq!(stdout.lines().filter(|l| l.matches("identical").count() == 8).count(), 8, "{stdout}");
}

#[test]
fn pytorch_adam_on_cuda_is_bit_identical_to_pytorchs_cuda_defaults() {
    // On a GPU: the article on CUDA, PyTorch at its defaults there (the foreach Adam, cuDNN's
    // LSTM on flattened weights), every float32 bit and no warning on stderr.
    if !crate::common::cuda_or_skip("pytorch_adam_on_cuda_is_bit_identical_to_pytorchs_cuda_defaults") {
        return;
    }
    let (ok, stdout) = compare(&["--adam", "pytorch", "--device", "cuda", "--seeds", "0", "1", "2", "42"]);
    assert!(ok, "Rust and PyTorch differ on CUDA:\n{stdout}");
    assert_eq!(stdout.lines().filter(|l| l.matches("identical").count() == 8).count(), 8, "{stdout}");
}

#[test]
fn libtorch_adam_stays_within_its_documented_tolerance() {
    // libtorch's C++ Adam: losses within 1e-5 of PyTorch's, identical predictions.
    let (ok, stdout) = compare(&["--adam", "libtorch", "--seeds", "0", "1", "2", "42", "--threads", "1"]);
    assert!(ok, "libtorch Adam drifted beyond its tolerance:\n{stdout}");
}

#[test]
fn the_comparison_detects_a_difference() {
    // Control: libtorch's Adam is *not* bit-identical, and compare.py must say so.
    let (ok, stdout) = compare(&["--adam", "libtorch", "--exact", "--seeds", "0", "--configs", "article"]);
    assert!(!ok, "compare.py --exact accepted libtorch Adam's ulp differences:\n{stdout}");
    assert!(stdout.contains("max|Δ|"), "{stdout}");
}
