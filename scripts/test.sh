#!/usr/bin/env bash
# lstm-tch's whole test suite, from a fresh clone: set up .venv (once), lint, then every test
# (unit, model-vs-PyTorch, bit-for-bit parity, CLI errors, crash and full-disk faults). CI runs
# exactly this (.ci/run). Each step prints its time.
#
# The tests build with the cargo feature `fault-injection` (the crash hooks of
# src/runtime/fault.rs), so clippy lints that same build and cargo compiles the crate once for
# both. Extra arguments go to `cargo test` (e.g. `scripts/test.sh -- text_cli::`).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
start=$SECONDS
step() { echo "== $* ($((SECONDS - start)) s)" >&2; }
scripts/setup.sh --no-chromium
source scripts/env.sh
# Chromium, for the page's browser test, installs in the background while clippy and the build
# run (apt-get: download and unpack, ~15 s); the tests wait for it. The exit trap waits too, so an
# early failure never leaves apt-get running.
mkdir -p target
scripts/setup.sh --chromium-only 2>target/setup-chromium.log &
chromium_setup=$!
trap 'wait' EXIT

step "cargo fmt --check"
cargo fmt --check
step "cargo clippy --all-targets --features fault-injection -- -D warnings"
cargo clippy --quiet --all-targets --features fault-injection -- -D warnings
# The download-libtorch feature has to compile, but this machine cannot download libtorch and
# torch-sys's build script would spend minutes recompiling its C++ wrapper for nothing new. With
# tch's `doc-only` on top, cargo compiles torch-sys's build script with the feature's download
# code (and its dependencies), skips the C++, and type-checks tch and this crate against it
# (this crate's build.rs then builds no native code: the fallback paths are checked too).
step "cargo check --features download-libtorch,tch/doc-only"
cargo check --quiet --lib --features download-libtorch,tch/doc-only
if kill -0 "$chromium_setup" 2>/dev/null; then step "waiting for the chromium install"; fi
wait "$chromium_setup" || true
cat target/setup-chromium.log >&2
step "cargo test --features fault-injection"
cargo test --features fault-injection "$@"
step "done"
