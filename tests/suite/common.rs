//! Helpers shared by the integration tests: where the repository, its Python environment and
//! the built binaries are, and running them.
//!
//! Test binaries carried to another machine (scripts/gpu_check.sh runs them on a GPU machine
//! that has no Rust toolchain) find everything through environment variables instead of the
//! paths compiled in: `LSTM_TCH_ROOT` (the repository), `LSTM_TCH_PYTHON` (the Python with
//! torch) and `LSTM_TCH_BIN_DIR` (a folder holding `lstm-tch` and the examples).

#![allow(dead_code)] // a helper may be used only by tests gated off in this build

use std::{
    path::PathBuf,
    process::{Command, Output},
};

/// libtorch's default generator is global and the tests run on parallel threads of one
/// process: every test that seeds it and draws from it (building a model does) holds this lock,
/// so no other test's draws come in between.
pub fn generator() -> std::sync::MutexGuard<'static, ()> {
    static GENERATOR: std::sync::Mutex<()> = std::sync::Mutex::new(());
    GENERATOR.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The repository root: `LSTM_TCH_ROOT`, else the source tree this test was built from.
pub fn root() -> PathBuf {
    std::env::var_os("LSTM_TCH_ROOT").map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from)
}

/// The project's Python (`.venv`, made by `scripts/setup.sh`; `LSTM_TCH_PYTHON` overrides it):
/// the reference side of every parity test. Its absence is a failure, not a skip: parity is
/// the project's promise.
pub fn python() -> PathBuf {
    let python =
        std::env::var_os("LSTM_TCH_PYTHON").map_or_else(|| root().join(".venv/bin/python"), PathBuf::from);
    assert!(python.exists(), "{} missing: run scripts/setup.sh (scripts/test.sh does)", python.display());
    python
}

/// A built example binary (cargo builds the examples before it runs integration tests), or
/// `LSTM_TCH_BIN_DIR/name`.
pub fn example(name: &str) -> PathBuf {
    if let Some(dir) = std::env::var_os("LSTM_TCH_BIN_DIR") {
        return PathBuf::from(dir).join(name);
    }
    let exe = std::env::current_exe().expect("test binary path");
    let profile_dir = exe.parent().and_then(|deps| deps.parent()).expect("target/<profile>");
    let path = profile_dir.join("examples").join(name);
    assert!(path.exists(), "{} missing: build with `cargo test` or `cargo build --examples`", path.display());
    path
}

/// Runs `program args...` and returns its output.
pub fn run(program: impl Into<PathBuf>, args: &[&str]) -> Output {
    let program = program.into();
    Command::new(&program)
        .args(args)
        .current_dir(root())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", program.display()))
}

/// The environment under which libtorch computes the same float32 bits on every x86 CPU: MKL's
/// conditional numerical reproducibility mode (`MKL_CBWR=COMPATIBLE`: its SSE2 code paths,
/// whatever the CPU), ATen's portable kernels (`ATEN_CPU_CAPABILITY=default`, no AVX2/AVX-512
/// dispatch) and oneDNN held to SSE4.1 (not on today's paths: pinned for any that goes through
/// it). Bits stored in the repository are written and checked under it; measured 2026-12-01, the
/// format-1 fixture's probabilities differ between an AVX-512 Xeon and an AMD EPYC in the default
/// mode and agree under this one (docs/parity.md, "Across machines").
pub const REPRODUCIBLE_ACROSS_CPUS: [(&str, &str); 3] =
    [("MKL_CBWR", "COMPATIBLE"), ("ATEN_CPU_CAPABILITY", "default"), ("ONEDNN_MAX_CPU_ISA", "SSE41")];

/// [`run`] under [`REPRODUCIBLE_ACROSS_CPUS`]: for comparisons against bits stored in the
/// repository.
pub fn run_reproducible(program: impl Into<PathBuf>, args: &[&str]) -> Output {
    let program = program.into();
    Command::new(&program)
        .args(args)
        .envs(REPRODUCIBLE_ACROSS_CPUS)
        .current_dir(root())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", program.display()))
}

/// Stdout and stderr as text.
pub fn text(output: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Asserts the command failed cleanly: non-zero status, a message containing `needle` on
/// stderr's first line, and no panic or C++ backtrace.
pub fn assert_clean_failure(output: &Output, needle: &str, what: &str) {
    let (_, stderr) = text(output);
    assert!(!output.status.success(), "{what}: expected failure, got success");
    let first = stderr.lines().next().unwrap_or_default();
    assert!(first.contains(needle), "{what}: expected '{needle}' in the first line of stderr:\n{stderr}");
    for bad in ["panicked", "RUST_BACKTRACE", "Exception raised from", "frame #"] {
        assert!(!stderr.contains(bad), "{what}: stderr shows a crash ('{bad}'):\n{stderr}");
    }
}

/// The `lstm-tch` binary (`LSTM_TCH_BIN_DIR/lstm-tch` when that is set).
pub fn lstm_tch() -> PathBuf {
    match std::env::var_os("LSTM_TCH_BIN_DIR") {
        Some(dir) => PathBuf::from(dir).join("lstm-tch"),
        None => PathBuf::from(env!("CARGO_BIN_EXE_lstm-tch")),
    }
}

/// The parity tests' training set: the header and first 240 texts of data/`sample`/train.tsv,
/// written into `dir` as train.tsv (its path returned).
pub fn parity_slice(dir: &std::path::Path, sample: &str) -> PathBuf {
    let slice = dir.join("train.tsv");
    let texts = std::fs::read_to_string(root().join("data").join(sample).join("train.tsv")).unwrap();
    std::fs::write(&slice, texts.lines().take(241).collect::<Vec<_>>().join("\n") + "\n").unwrap();
    slice
}

/// The parity tests' `lstm-tch train` flags beside the data, the batch and the model's own:
/// 2 epochs of a small model from seed 3, on one thread, quietly (what
/// `scripts/text_reference.py` is run with too).
pub const PARITY_TRAIN_FLAGS: [&str; 11] = [
    "--epochs",
    "2",
    "--embedding-dim",
    "16",
    "--hidden-size",
    "24",
    "--seed",
    "3",
    "--threads",
    "1",
    "--quiet",
];

/// A fresh, empty directory under the system's temporary directory.
pub fn tempdir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("lstm-tch-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Whether this process can use a CUDA device; when not, says on the real stderr (not the
/// test harness's captured output, so it shows in `cargo test`'s output) that `test` is skipped.
pub fn cuda_or_skip(test: &str) -> bool {
    use std::io::Write;
    if lstm_tch::runtime::device::cuda_device_count() > 0 {
        return true;
    }
    let line = format!("{test}: skipped: no CUDA device ({})\n", lstm_tch::runtime::device::cuda_support());
    let _ = std::io::stderr().lock().write_all(line.as_bytes()); // one write: tests run in parallel
    false
}

/// A PNG file's size from its signature and IHDR chunk (panics if `path` is no PNG), after
/// decoding the whole image with the `png` crate (so a truncated or corrupt file fails too).
pub fn png_size(path: &std::path::Path) -> (u32, u32) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "{}: no PNG signature", path.display());
    assert_eq!(&bytes[12..16], b"IHDR", "{}: the first chunk is not IHDR", path.display());
    let be = |at: usize| u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap());
    let (width, height) = (be(16), be(20));
    let mut reader = png::Decoder::new(std::io::Cursor::new(&bytes)).read_info().unwrap();
    let mut pixels = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut pixels).unwrap();
    assert_eq!((info.width, info.height), (width, height));
    (width, height)
}
