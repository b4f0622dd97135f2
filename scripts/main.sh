#!/usr/bin/env bash
# lstm-tch's main job, from a fresh clone: set up .venv (once), build, run the article's script in
# Rust, cross-check it against the Python script, field by field, bit for bit, then train,
# evaluate and use the text sentiment classifier on the English and the Chinese sample data.
#
# Usage: scripts/main.sh [compare.py options, e.g. --adam both --plot losses.png]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
scripts/setup.sh
source scripts/env.sh

echo "== build (the first one compiles tch's C++ wrapper: a few minutes)" >&2
cargo build --quiet --bins --examples

echo "== the article, in Rust: target/debug/examples/article"
target/debug/examples/article

echo
echo "== cross-check against the article's Python script: scripts/compare.py${*:+ $*}"
python scripts/compare.py "$@"

echo
echo "== text sentiment classification on the sample data: lstm-tch train, eval, predict"
target/debug/lstm-tch train
target/debug/lstm-tch eval
target/debug/lstm-tch predict "Not bad at all." "The acting was great, but it was far too long." \
  "It was slow at first, but the ending was wonderful!"

echo
echo "== 中文: the same on the Chinese sample (data/sample-zh): train, eval, predict"
zh=data/sample-zh
target/debug/lstm-tch train --train $zh/train.tsv --dev $zh/dev.tsv --test $zh/test.tsv --out runs/sentiment-zh
target/debug/lstm-tch eval $zh/test.tsv --checkpoint runs/sentiment-zh
target/debug/lstm-tch predict --checkpoint runs/sentiment-zh "虽然送餐有点慢，但是味道非常好！" "一点也不好吃" \
  "包装很精致，不过菜太咸了。" "没有想象中好"
