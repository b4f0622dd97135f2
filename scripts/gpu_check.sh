#!/usr/bin/env bash
# The GPU check (issue 9) in one run of a few minutes: prints a PASS/FAIL line per check and
# writes everything to a log. It runs prebuilt binaries, so it works on a machine with no Rust
# toolchain: scripts/gpu_build.sh builds them against the GPU machine's PyTorch (see
# ../shared/docs/gpu.md and docs/gpu.md, "The GPU check").
#
#   scripts/gpu_check.sh [--device cuda|cuda:N|cpu] [--quick]
#
#   --device  where the checks run (default cuda); `--device cpu` rehearses the whole script on
#             a machine without a GPU (the CUDA-only checks then report INFO or skip).
#   --quick   the benchmark at tiny sizes (a rehearsal of the script, not a measurement).
#
# Environment:
#   LSTM_TCH_BIN_DIR  a folder with lstm-tch, article and the integration-test binary suite
#                     (its cuda_training, cuda_loading and text_parity modules are run;
#                     scripts/gpu_build.sh's .gpu-bundle) [default:
#                     target/release, else target/debug, as cargo lays them out]
#   PYTHON            the Python with torch, numpy and safetensors that runs PyTorch's side
#                     [default: .venv/bin/python, else python3]
#   OUT               folder for the log (gpu_check.log), bench.json and every command's output
#                     [default: a new folder under /tmp]
#   SST2_TSV          the benchmark's text file [default: the bundle's sst2_train.tsv (real GLUE
#                     SST-2 train split) when there, else a synthetic SST-2-size file]
# LD_LIBRARY_PATH gets PYTHON's torch/lib first, so the binaries run on that PyTorch's libtorch
# (a bundle's RUNPATH points at the build machine's), and the bundle's torch version must be it.
#
# Checks: `lstm-tch info` sees the CUDA device; no command of the Rust side writes a libtorch
# warning to stderr; the article bit-identical to PyTorch at its defaults on the device (and on
# the CPU, with and without foreach); text training bit-identical to scripts/text_reference.py on
# the device with the default batches and with --bucket; a checkpoint trained there evaluates
# the same on the device and the CPU; the CUDA test binaries; the device benchmark with its
# targets (text ≥ 1.2x PyTorch, --bucket ≥ 2x PyTorch's default batches, medium step ≤ 1.0x).
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD

DEVICE=cuda
QUICK=()
while [[ $# -gt 0 ]]; do
  case $1 in
    --device) DEVICE=${2:?--device needs a value}; shift 2 ;;
    --quick) QUICK=(--quick); shift ;;
    -h | --help) sed -n '2,31p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "gpu_check: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
ON_GPU=0
[[ $DEVICE == cuda* ]] && ON_GPU=1

OUT_DIR=${OUT:-$(mktemp -d /tmp/gpu_check.XXXXXX)}
mkdir -p "$OUT_DIR/logs"
OUT_DIR=$(cd "$OUT_DIR" && pwd)
LOG=$OUT_DIR/gpu_check.log
exec > >(tee -a "$LOG") 2>&1
START=$SECONDS
PASSED=0
FAILED=0
WARNED=()
RUST_COMMANDS=0

pass() { echo "PASS  $*"; PASSED=$((PASSED + 1)); }
fail() { echo "FAIL  $*"; FAILED=$((FAILED + 1)); }
info() { echo "INFO  $*"; }
step() { echo; echo "== $* (at $((SECONDS - START)) s)"; }
# A performance target: PASS/FAIL on a GPU, INFO when rehearsing on the CPU.
target() { if [[ $ON_GPU == 1 ]]; then if [[ $1 == 1 ]]; then pass "${@:2}"; else fail "${@:2}"; fi; else info "${@:2} (a GPU target)"; fi; }

# run NAME CMD...: runs a Rust command, stdout to logs/NAME.out, stderr to logs/NAME.err; the
# stderr is searched for libtorch warnings. Returns the command's status.
run() {
  local name=$1
  shift
  RUST_COMMANDS=$((RUST_COMMANDS + 1))
  "$@" >"$OUT_DIR/logs/$name.out" 2>"$OUT_DIR/logs/$name.err"
  local status=$?
  if grep -Eiq 'warning|flatten_parameters' "$OUT_DIR/logs/$name.err"; then
    WARNED+=("$name")
    echo "  $name wrote a warning:"
    grep -Ei 'warning|flatten_parameters' "$OUT_DIR/logs/$name.err" | head -3 | sed 's/^/    /'
  fi
  return $status
}

# ---------------------------------------------------------------------------------------------
step "environment"
if [[ -z ${PYTHON:-} ]]; then
  if [[ -x .venv/bin/python ]]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
PYTHON=$(command -v "$PYTHON") || { fail "no Python '$PYTHON'"; exit 1; }
TORCH=$("$PYTHON" -c 'import os, torch; print(torch.__version__, os.path.dirname(torch.__file__) + "/lib")') ||
  { fail "$PYTHON cannot import torch"; exit 1; }
TORCH_VERSION=${TORCH%% *}
TORCH_LIB=${TORCH#* }
export LD_LIBRARY_PATH="$TORCH_LIB${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export LSTM_TCH_ROOT=$ROOT LSTM_TCH_PYTHON=$PYTHON

if [[ -n ${LSTM_TCH_BIN_DIR:-} ]]; then
  BIN=$(cd "$LSTM_TCH_BIN_DIR" && pwd)
  export LSTM_TCH_BIN_DIR=$BIN
  ARTICLE=$BIN/article
  test_binary() { [[ -x $BIN/$1 ]] && echo "$BIN/$1"; }
else
  BIN=
  for profile in release debug; do
    if [[ -x target/$profile/lstm-tch && -x target/$profile/examples/article ]]; then
      BIN=$ROOT/target/$profile
      break
    fi
  done
  [[ -n $BIN ]] || { fail "no binaries: set LSTM_TCH_BIN_DIR or build (cargo build --release --bins --examples)"; exit 1; }
  ARTICLE=$BIN/examples/article
  # The newest test executable cargo built for tests/NAME/.
  test_binary() { find "$BIN/deps" -maxdepth 1 -type f -executable -name "$1-*" -printf '%T@ %p\n' 2>/dev/null | sort -nr | head -1 | cut -d' ' -f2-; }
fi
LSTM_TCH=$BIN/lstm-tch
echo "device        $DEVICE"
echo "python        $PYTHON (torch $TORCH_VERSION)"
echo "libtorch      $TORCH_LIB"
echo "binaries      $BIN"
echo "log           $LOG"
if [[ -f $BIN/BUILD_INFO ]]; then
  sed 's/^/bundle        /' "$BIN/BUILD_INFO"
  built_for=$(sed -n 's/^torch //p' "$BIN/BUILD_INFO")
  if [[ -n $built_for && $built_for != "${TORCH_VERSION%%+*}" ]]; then
    fail "the bundle was built for torch $built_for, this Python has $TORCH_VERSION"
    exit 1
  fi
fi
command -v nvidia-smi >/dev/null && nvidia-smi -L

# ---------------------------------------------------------------------------------------------
step "lstm-tch info"
if run info "$LSTM_TCH" info; then
  cat "$OUT_DIR/logs/info.out"
  devices=$(sed -n 's/^CUDA devices *//p' "$OUT_DIR/logs/info.out")
  if [[ $ON_GPU == 1 ]]; then
    if grep -q '^CUDA  *CUDA support loaded from' "$OUT_DIR/logs/info.out" && [[ ${devices:-0} -ge 1 ]]; then
      pass "lstm-tch info: CUDA support loaded, $devices device(s)"
    else
      fail "lstm-tch info does not show a CUDA device"
    fi
  else
    pass "lstm-tch info runs ($devices CUDA device(s) here)"
  fi
else
  fail "lstm-tch info failed: $(head -c 500 "$OUT_DIR/logs/info.err")"
fi

# ---------------------------------------------------------------------------------------------
step "the article against PyTorch's script, bit for bit"
# compare.py fails on any differing bit and on anything the Rust side writes to stderr.
compare() {
  local what=$1
  shift
  if "$PYTHON" scripts/compare.py --rust-bin "$ARTICLE" "$@" >"$OUT_DIR/logs/compare-$what.txt" 2>&1; then
    pass "article parity, $what: $(grep -c ' identical .* identical$' "$OUT_DIR/logs/compare-$what.txt") runs identical in every field"
  else
    fail "article parity, $what:"
    sed 's/^/    /' "$OUT_DIR/logs/compare-$what.txt" | tail -15
  fi
}
compare "$DEVICE, PyTorch's defaults" --device "$DEVICE" --seeds 0 1 2 42
if [[ $ON_GPU == 1 ]]; then
  compare "$DEVICE, foreach=False on both sides" --device "$DEVICE" --foreach off --seeds 0 42
  compare "cpu, PyTorch's defaults" --device cpu --seeds 0 42
fi
compare "cpu, foreach=True on both sides" --device cpu --foreach on --seeds 0 42

# ---------------------------------------------------------------------------------------------
step "text training against scripts/text_reference.py, bit for bit"
# The sample data (2,000 texts), train's default model and batch size (64), 2 epochs; per-batch
# losses compared as float32 bits.
same_losses() {
  "$PYTHON" - "$1" "$2" <<'EOF'
import json, sys
import numpy as np
rust = [e["batch_losses"] for e in json.load(open(sys.argv[1]))["epochs"]]
py = json.load(open(sys.argv[2]))["batch_losses"]
bits = lambda v: np.asarray(v, dtype=np.float32).view(np.uint32)
if len(rust) != len(py):
    sys.exit(f"{len(rust)} epochs against {len(py)}")
for epoch, (r, p) in enumerate(zip(rust, py), 1):
    r, p = bits(r), bits(p)
    if r.shape != p.shape or (r != p).any():
        first = int(np.argmax(r != p)) if r.shape == p.shape else 0
        sys.exit(f"epoch {epoch}: {len(r)} batches against {len(p)}, first difference at batch {first}")
print(f"{len(rust)} epochs x {len(rust[0])} batches")
EOF
}
for mode in default bucket; do
  flags=(--bucket false)  # train buckets by default: "default" is PyTorch's plain shuffled batches
  [[ $mode == bucket ]] && flags=(--bucket true)
  ck=$OUT_DIR/ck-$mode
  rm -rf "$ck"
  if ! run "train-$mode" "$LSTM_TCH" train --device "$DEVICE" --epochs 2 --bidirectional --threads 1 --quiet \
    --out "$ck" --report "$OUT_DIR/rust-$mode.json" --export-encoded "$OUT_DIR/enc-$mode.json" "${flags[@]}"; then
    fail "text training ($mode batches): lstm-tch train failed: $(tail -3 "$OUT_DIR/logs/train-$mode.err")"
    continue
  fi
  if ! "$PYTHON" scripts/text_reference.py train --encoded "$OUT_DIR/enc-$mode.json" --device "$DEVICE" --threads 1 \
    --report "$OUT_DIR/py-$mode.json" >"$OUT_DIR/logs/text_reference-$mode.txt" 2>&1; then
    fail "text training ($mode batches): text_reference.py failed: $(tail -3 "$OUT_DIR/logs/text_reference-$mode.txt")"
    continue
  fi
  if result=$(same_losses "$OUT_DIR/rust-$mode.json" "$OUT_DIR/py-$mode.json" 2>&1); then
    pass "text training on $DEVICE, $mode batches: every batch loss identical ($result)"
  else
    fail "text training on $DEVICE, $mode batches: $result"
  fi
done
if [[ -d $OUT_DIR/ck-default ]]; then
  run eval-device "$LSTM_TCH" eval --checkpoint "$OUT_DIR/ck-default" --device "$DEVICE" --json
  run eval-cpu "$LSTM_TCH" eval --checkpoint "$OUT_DIR/ck-default" --device cpu --json
  if [[ -s $OUT_DIR/logs/eval-cpu.out ]] && cmp -s "$OUT_DIR/logs/eval-device.out" "$OUT_DIR/logs/eval-cpu.out"; then
    pass "the checkpoint trained on $DEVICE evaluates identically on $DEVICE and cpu"
  else
    fail "eval of the checkpoint differs between $DEVICE and cpu (logs/eval-*.out)"
  fi
  run predict-device "$LSTM_TCH" predict --checkpoint "$OUT_DIR/ck-default" --device "$DEVICE" \
    "Not bad at all." "The acting was great, but it was far too long." || fail "predict on $DEVICE failed"
  sed 's/^/  /' "$OUT_DIR/logs/predict-device.out"
fi

# ---------------------------------------------------------------------------------------------
step "test binaries"
suite=$(test_binary suite)
for name in cuda_training cuda_loading text_parity; do
  if [[ -z $suite ]]; then
    info "test binary suite not found in $BIN: $name not run"
    continue
  fi
  RUST_COMMANDS=$((RUST_COMMANDS + 1))
  if "$suite" "$name::" >"$OUT_DIR/logs/test-$name.txt" 2>&1; then
    summary=$(grep -E '^test result' "$OUT_DIR/logs/test-$name.txt" | tail -1)
    skipped=$(grep -c 'skipped: no CUDA' "$OUT_DIR/logs/test-$name.txt")
    if [[ $ON_GPU == 1 && $skipped -gt 0 ]]; then
      fail "tests/suite/$name.rs: $skipped test(s) skipped for want of CUDA on a GPU run"
    elif [[ $skipped -gt 0 ]]; then
      pass "tests/suite/$name.rs: ${summary#test result: } ($skipped skipped: no CUDA)"
    else
      pass "tests/suite/$name.rs: ${summary#test result: }"
    fi
  else
    fail "tests/suite/$name.rs:"
    grep -E 'panicked|assert|FAILED|failures:' "$OUT_DIR/logs/test-$name.txt" | head -12 | sed 's/^/    /'
  fi
done

# ---------------------------------------------------------------------------------------------
step "benchmark on $DEVICE: Rust against PyTorch, one run"
TEXT_DATA=()
SST2=${SST2_TSV:-$BIN/sst2_train.tsv}
if [[ ${#QUICK[@]} -eq 0 && -f $SST2 ]]; then
  TEXT_DATA=(--text-data "$SST2")
  info "text rows: $SST2 ($(($(wc -l <"$SST2") - 1)) sentences)"
else
  info "text rows: a synthetic SST-2-size file (scripts/make_scale_data.py)"
fi
if "$PYTHON" scripts/bench.py --device "$DEVICE" --suite device --threads 1 --rounds 1 "${QUICK[@]}" "${TEXT_DATA[@]}" \
  --rust-bin "$LSTM_TCH" --article-bin "$ARTICLE" --python "$PYTHON" --json "$OUT_DIR/bench.json" \
  >"$OUT_DIR/logs/bench.txt" 2>"$OUT_DIR/logs/bench.err"; then
  cat "$OUT_DIR/logs/bench.txt"
  RUST_COMMANDS=$((RUST_COMMANDS + 1))
  if grep -q '^bench: rust stderr' "$OUT_DIR/logs/bench.err"; then
    WARNED+=(bench)
    grep '^bench: rust stderr' "$OUT_DIR/logs/bench.err" | head -3 | sed 's/^/    /'
  fi
  while IFS=$'\t' read -r met line; do
    if [[ $met == info ]]; then info "$line"; else target "$met" "$line"; fi
  done < <("$PYTHON" - "$OUT_DIR/bench.json" <<'EOF'
import json, sys
for e in json.load(open(sys.argv[1]))["results"]:
    unit = e["unit"]
    show = (lambda v: f"{v:,.0f} texts/s") if unit == "texts/s" else (lambda v: f"{v:.3f} ms")
    line = f"{e['workload']}: Rust {show(e['rust'])}, PyTorch {show(e['pytorch'])}, ratio {e['ratio']:.2f}"
    if e.get("target"):
        op, bound = e["target"]
        met = e["ratio"] <= bound if op == "<=" else e["ratio"] >= bound
        print(f"{int(met)}\ttarget {'≤' if op == '<=' else '≥'} {bound}: {line}")
    else:
        print(f"info\t{line}")
EOF
  )
else
  fail "the benchmark failed: $(tail -5 "$OUT_DIR/logs/bench.err")"
fi

# ---------------------------------------------------------------------------------------------
step "summary"
if [[ ${#WARNED[@]} -eq 0 ]]; then
  pass "no libtorch warning on stderr from any of the $RUST_COMMANDS Rust commands"
else
  fail "libtorch warnings on stderr from: ${WARNED[*]} (logs/*.err)"
fi
echo "gpu_check: $PASSED passed, $FAILED failed, on $DEVICE, in $((SECONDS - START)) s; log: $LOG"
[[ $FAILED -eq 0 ]]
