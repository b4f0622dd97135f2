# Sourced by the project's scripts: puts .venv first on PATH and tells torch-sys to link the
# libtorch inside its `torch` wheel, so Rust and Python run the same libtorch binary.
# Usage: source scripts/env.sh   (after scripts/setup.sh)
_lstm_tch_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export VIRTUAL_ENV="$_lstm_tch_root/.venv"
export PATH="$VIRTUAL_ENV/bin:$PATH"
export LIBTORCH_USE_PYTORCH=1
unset _lstm_tch_root
