# Sourced by the project's scripts and by users after the set-up: puts .venv first on PATH, tells
# torch-sys to link the libtorch inside its `torch` wheel (so Rust and Python run the same
# libtorch binary), and puts target/debug on PATH, where scripts/main.sh builds `lstm-tch`, so
# `lstm-tch train` works as typed.
# Usage: source scripts/env.sh   (after scripts/setup.sh or scripts/main.sh)
_lstm_tch_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export VIRTUAL_ENV="$_lstm_tch_root/.venv"
export PATH="$VIRTUAL_ENV/bin:$_lstm_tch_root/target/debug:$PATH"
export LIBTORCH_USE_PYTORCH=1
# ccache, where installed, caches C and C++ compiles: torch-sys's C++ wrapper is compiled once for
# clippy's check build and again for the test build (cargo runs build scripts separately for the
# two), and the second is then a cache hit (about 75 s saved on 2 cores). A CC or CXX of your own
# is kept.
if command -v ccache >/dev/null 2>&1; then
  export CC="${CC:-ccache cc}" CXX="${CXX:-ccache c++}"
fi
unset _lstm_tch_root
