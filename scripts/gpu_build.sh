#!/usr/bin/env bash
# Builds, on this machine, the binaries scripts/gpu_check.sh runs on a GPU machine whose PyTorch
# is 2.11 (tch 0.26 wants libtorch 2.13, too large to copy there): the recipe of
# ../shared/docs/gpu.md, scripted. The result is a folder of stripped binaries to carry there;
# libtorch itself is not in it (the GPU machine's PyTorch provides it).
#
#   scripts/gpu_build.sh PATCH_SCRIPT [BUNDLE_DIR]
#
#   PATCH_SCRIPT  the script that stubs the torch-sys wrappers of ops torch 2.11 lacks
#                 (../shared/gpu/patch_torch_sys.py)
#   BUNDLE_DIR    where the binaries go [default: .gpu-bundle in the repository, which this
#                 script adds to .git/info/exclude]
#
# Environment: TORCH_VERSION (2.11.0), TORCH_VENV (/tmp/torch211: a venv with that torch, numpy
# and safetensors, created if missing, ~1-2 minutes), CARGO_TARGET_DIR (/work/target211: the
# first build compiles torch-sys, ~7 minutes on 2 cores), GPU_BUILD_DIR (/tmp/lstm-tch-gpu-build:
# the patched torch-sys and a scratch copy of this working tree), SST2_TSV (GLUE SST-2's
# train.tsv, copied into the bundle as sst2_train.tsv for the GPU benchmark's text rows when it
# exists [default: ../shared/data/sst2/train.tsv]; never committed). The bundle holds lstm-tch,
# article, the integration-test binary `suite` (gpu_check.sh runs its cuda_training,
# cuda_loading and text_parity modules) and BUILD_INFO.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
PATCH=${1:?usage: scripts/gpu_build.sh PATCH_SCRIPT [BUNDLE_DIR]}
PATCH=$(cd "$(dirname "$PATCH")" && pwd)/$(basename "$PATCH")
BUNDLE=${2:-$ROOT/.gpu-bundle}
VERSION=${TORCH_VERSION:-2.11.0}
VENV=${TORCH_VENV:-/tmp/torch211}
TARGET=${CARGO_TARGET_DIR:-/work/target211}
WORK=${GPU_BUILD_DIR:-/tmp/lstm-tch-gpu-build}
TESTS=(suite)
start=$SECONDS
say() { echo "gpu_build: $* ($((SECONDS - start)) s)" >&2; }

# 1. A Python environment with that torch (its libtorch is what the binaries link).
if ! "$VENV/bin/python" -c "import torch, numpy, safetensors, sys; sys.exit(torch.__version__.split('+')[0] != '$VERSION')" 2>/dev/null; then
  say "creating $VENV with torch==$VERSION numpy safetensors"
  python3 -m venv "$VENV"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "torch==$VERSION" numpy safetensors
fi
say "torch $("$VENV/bin/python" -c 'import torch; print(torch.__version__)') in $VENV"

# 2. torch-sys 0.26.0 with the wrappers of ops missing from that libtorch stubbed out.
mkdir -p "$WORK"
SYS=$WORK/torch-sys-0.26.0
if [[ ! -f $SYS/.lstm-tch-patched ]]; then
  src=$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/torch-sys-0.26.0 2>/dev/null | head -1)
  [[ -n $src ]] || { echo "gpu_build: torch-sys 0.26.0 is not in the cargo registry (build the project once)" >&2; exit 1; }
  rm -rf "$SYS"
  cp -a "$src" "$SYS"
  python3 "$PATCH" "$SYS/libtch/torch_api_generated.cpp" >&2
  touch "$SYS/.lstm-tch-patched"
fi

# 3. A scratch copy of this working tree (committed or not) that patches crates-io's torch-sys.
SCRATCH=$WORK/src
rm -rf "$SCRATCH"
mkdir -p "$SCRATCH"
git ls-files -z --cached --others --exclude-standard | while IFS= read -r -d '' file; do
  [[ -e $file ]] && printf '%s\0' "$file"
done | tar -c --null -T - | tar -x -C "$SCRATCH"
printf '\n[patch.crates-io]\ntorch-sys = { path = "%s" }\n' "$SYS" >>"$SCRATCH/Cargo.toml"

# 4. Release binaries and the test binaries, against that libtorch.
export VIRTUAL_ENV=$VENV PATH=$VENV/bin:$PATH LIBTORCH_USE_PYTORCH=1 LIBTORCH_BYPASS_VERSION_CHECK=1
export CARGO_TARGET_DIR=$TARGET
unset LIBTORCH LIBTORCH_INCLUDE LIBTORCH_LIB
cd "$SCRATCH"
say "building in $SCRATCH (target $TARGET)"
cargo build --release --bins --examples
tests=()
for t in "${TESTS[@]}"; do tests+=(--test "$t"); done
executables=$(cargo test --release --no-run "${tests[@]}" --message-format=json |
  python3 -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and "test" in m["target"]["kind"]:
        print(m["target"]["name"], m["executable"])
')

# 5. The bundle: stripped copies, and what they were built from.
rm -rf "$BUNDLE"
mkdir -p "$BUNDLE"
cp "$TARGET/release/lstm-tch" "$TARGET/release/examples/article" "$BUNDLE/"
while read -r name exe; do
  cp "$exe" "$BUNDLE/$name"
done <<<"$executables"
strip --strip-debug "$BUNDLE/lstm-tch" "$BUNDLE/article" "${TESTS[@]/#/$BUNDLE/}"
SST2=${SST2_TSV:-$ROOT/../shared/data/sst2/train.tsv}
if [[ -f $SST2 ]]; then
  cp "$SST2" "$BUNDLE/sst2_train.tsv"
  chmod u+w "$BUNDLE/sst2_train.tsv"
fi
for t in lstm-tch article "${TESTS[@]}"; do
  [[ -x $BUNDLE/$t ]] || { echo "gpu_build: $t missing from the bundle" >&2; exit 1; }
done
{
  echo "torch $VERSION"
  echo "commit $(git -C "$ROOT" rev-parse HEAD)$(git -C "$ROOT" diff --quiet HEAD || echo ' + uncommitted changes')"
  echo "built $(date -u +%Y-%m-%dT%H:%M:%SZ) against $VENV"
  [[ -f $BUNDLE/sst2_train.tsv ]] && echo "sst2_train.tsv from $SST2"
} >"$BUNDLE/BUILD_INFO"
if [[ $BUNDLE == "$ROOT/.gpu-bundle" ]]; then
  exclude=$(git -C "$ROOT" rev-parse --git-path info/exclude)
  [[ $exclude == /* ]] || exclude=$ROOT/$exclude
  grep -qx '/.gpu-bundle/' "$exclude" 2>/dev/null || echo '/.gpu-bundle/' >>"$exclude"
fi
say "bundle $BUNDLE: $(du -sh "$BUNDLE" | cut -f1)"
ls -l "$BUNDLE" >&2
