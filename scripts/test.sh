#!/usr/bin/env bash
# lstm-tch's whole test suite, from a fresh clone: set up .venv (once), lint, then every test
# (unit, model-vs-PyTorch, bit-for-bit parity, CLI errors). CI runs exactly this (.ci/run).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
scripts/setup.sh
source scripts/env.sh

echo "== cargo fmt --check" >&2
cargo fmt --check
echo "== cargo clippy --all-targets -- -D warnings" >&2
cargo clippy --quiet --all-targets -- -D warnings
# The download-libtorch feature only has to compile here: this machine cannot reach PyTorch's
# servers, and with LIBTORCH_USE_PYTORCH set torch-sys does not download.
echo "== cargo check --features download-libtorch" >&2
cargo check --quiet --features download-libtorch
echo "== cargo test" >&2
cargo test
