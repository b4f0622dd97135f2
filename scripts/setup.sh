#!/usr/bin/env bash
# Creates (or refreshes) the project's Python environment in .venv from scripts/requirements.txt.
#
# The Rust build links the libtorch that ships inside this environment's `torch` wheel
# (LIBTORCH_USE_PYTORCH=1), so the Rust binaries and the Python reference scripts run the very
# same libtorch. Idempotent: does nothing when .venv matches requirements.txt already.
#
# Also installs, where it can without asking (as root, with apt-get), ccache, Gloo's headers (for
# distributed training: build.rs) and the Chromium that the page's browser test drives
# (tests/suite/serve_page.rs).
#
# Usage: scripts/setup.sh            (then: source scripts/env.sh)
#        scripts/setup.sh --no-chromium / --chromium-only
#                                    (scripts/test.sh: Chromium's install, ~15 s, runs apart,
#                                    in the background while the build runs)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# Chromium and chromedriver from Debian's `chromium` and `chromium-driver`, when missing (or
# CHROME and CHROMEDRIVER name binaries). Without recommends: 25 packages instead of 130 (no
# systemd, avahi or perl), and headless Chromium needs none of them. Where it cannot install
# them, the browser test fails saying so.
install_chromium() {
  if { [[ -n ${CHROME:-} ]] || command -v chromium >/dev/null 2>&1; } &&
    { [[ -n ${CHROMEDRIVER:-} ]] || command -v chromedriver >/dev/null 2>&1; }; then
    return 0
  fi
  if [[ $EUID -ne 0 ]] || ! command -v apt-get >/dev/null 2>&1; then
    echo "setup: install chromium and chromedriver (or set CHROME and CHROMEDRIVER) for the page's browser test" >&2
    return 0
  fi
  echo "setup: installing chromium and chromium-driver (apt-get) for the page's browser test" >&2
  local start=$SECONDS install=(apt-get install -y -qq --no-install-recommends -o DPkg::Lock::Timeout=120 chromium chromium-driver)
  if "${install[@]}" >/dev/null 2>&1 || { apt-get update -qq >/dev/null 2>&1 && "${install[@]}" >/dev/null 2>&1; }; then
    echo "setup: chromium installed in $((SECONDS - start)) s" >&2
  else
    echo "setup: chromium not installed; the page's browser test will fail" >&2
  fi
}

case ${1:-} in
  --chromium-only) install_chromium; exit 0 ;;
  --no-chromium) ;;
  "") install_chromium ;;
  *) echo "usage: scripts/setup.sh [--no-chromium | --chromium-only]" >&2; exit 2 ;;
esac
venv="$root/.venv"
req="$root/scripts/requirements.txt"
stamp="$venv/.lstm-tch-requirements"
want=$(sha256sum "$req" | cut -d' ' -f1)

# Debian packages installed only where it can be done without asking (as root, with apt-get):
# apt_install PACKAGE WHY FALLBACK-MESSAGE.
apt_install() {
  if [[ $EUID -ne 0 ]] || ! command -v apt-get >/dev/null 2>&1; then
    echo "setup: $3" >&2
    return 0
  fi
  echo "setup: installing $1 (apt-get) $2" >&2
  local install=(apt-get install -y -qq --no-install-recommends -o DPkg::Lock::Timeout=120 "$1")
  "${install[@]}" >/dev/null 2>&1 || { apt-get update -qq >/dev/null 2>&1 && "${install[@]}" >/dev/null 2>&1; } ||
    echo "setup: $1 not installed: $3" >&2
}
# ccache (scripts/env.sh uses it when present) saves the second compile of torch-sys's C++
# wrapper.
if ! command -v ccache >/dev/null 2>&1; then
  apt_install ccache "to cache C++ compiles" "without ccache, builds just take longer"
fi
# Gloo's headers, which libtorch's ProcessGroupGloo.hpp includes and the PyTorch wheel lacks:
# without them the crate builds without distributed training (build.rs; GLOO_INCLUDE names
# another directory holding gloo/).
if [[ -z ${GLOO_INCLUDE:-} && ! -f /usr/include/gloo/config.h ]]; then
  apt_install libgloo-dev "for distributed training (its headers)" \
    "install Gloo's headers (Debian: libgloo-dev) for distributed training"
fi

if [[ -x "$venv/bin/python" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
  exit 0
fi

python=${PYTHON:-python3}
command -v "$python" >/dev/null || { echo "setup: '$python' not found; install Python 3.10+ (or set PYTHON)" >&2; exit 1; }
echo "setup: creating ${venv#"$root"/} from scripts/requirements.txt (torch is ~4.7 GB; about 2-3 minutes)" >&2
start=$SECONDS
[[ -x "$venv/bin/python" ]] || "$python" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$req"
"$venv/bin/python" -c 'import torch; print(f"setup: torch {torch.__version__} ready", flush=True)' >&2
echo "$want" >"$stamp"
echo "setup: done in $((SECONDS - start)) s" >&2
