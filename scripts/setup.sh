#!/usr/bin/env bash
# Creates (or refreshes) the project's Python environment in .venv from scripts/requirements.txt.
#
# The Rust build links the libtorch that ships inside this environment's `torch` wheel
# (LIBTORCH_USE_PYTORCH=1), so the Rust binaries and the Python reference scripts run the very
# same libtorch. Idempotent: does nothing when .venv matches requirements.txt already.
#
# Usage: scripts/setup.sh            (then: source scripts/env.sh)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv="$root/.venv"
req="$root/scripts/requirements.txt"
stamp="$venv/.lstm-tch-requirements"
want=$(sha256sum "$req" | cut -d' ' -f1)

# ccache (scripts/env.sh uses it when present) saves the second compile of torch-sys's C++
# wrapper. Installed here only where it can be without asking: as root, with apt-get.
if ! command -v ccache >/dev/null 2>&1 && [[ $EUID -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
  echo "setup: installing ccache (apt-get) to cache C++ compiles" >&2
  apt-get install -y -qq ccache >/dev/null 2>&1 || { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq ccache >/dev/null 2>&1; } ||
    echo "setup: ccache not installed; builds will just take longer" >&2
fi

if [[ -x "$venv/bin/python" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
  exit 0
fi

python=${PYTHON:-python3}
command -v "$python" >/dev/null || { echo "setup: '$python' not found; install Python 3.10+ (or set PYTHON)" >&2; exit 1; }
echo "setup: creating $venv from scripts/requirements.txt (torch is ~4.7 GB; about 2-3 minutes)" >&2
start=$SECONDS
[[ -x "$venv/bin/python" ]] || "$python" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$req"
"$venv/bin/python" -c 'import torch; print(f"setup: torch {torch.__version__} ready", flush=True)' >&2
echo "$want" >"$stamp"
echo "setup: done in $((SECONDS - start)) s" >&2
