#!/usr/bin/env bash
# Benchmarks lstm-tch against PyTorch on the same libtorch (docs/performance.md).
# Usage: scripts/bench.sh [bench.py options, e.g. --threads 1 --rounds 3 --json b.json --plot b.png]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
scripts/setup.sh
source scripts/env.sh
cargo build --quiet --release --bins --examples
exec python scripts/bench.py "$@"
