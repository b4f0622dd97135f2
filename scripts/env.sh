# Sourced by the project's scripts and by users after the set-up: puts .venv first on PATH, tells
# torch-sys to link the libtorch inside its `torch` wheel (so Rust and Python run the same
# libtorch binary), and puts target/debug on PATH, where scripts/main.sh builds `lstm-tch`, so
# `lstm-tch train` works as typed.
# Usage: source scripts/env.sh   (after scripts/setup.sh or scripts/main.sh)
_lstm_tch_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export VIRTUAL_ENV="$_lstm_tch_root/.venv"
export PATH="$VIRTUAL_ENV/bin:$_lstm_tch_root/target/debug:$PATH"
export LIBTORCH_USE_PYTORCH=1
unset _lstm_tch_root
