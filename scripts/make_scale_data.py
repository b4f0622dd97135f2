"""Writes SYNTHETIC datasets the size of SST-2 and IMDB, to measure loading and training at scale.

    python3 scripts/make_scale_data.py OUT_DIR [--only sst2|imdb] [--sst2-texts N]

OUT_DIR/sst2_size.tsv: 70,000 short sentences (SST-2's `sentence<TAB>label`, ~67k in GLUE).
OUT_DIR/imdb_size/{pos,neg}/*.txt: 25,000 reviews of ~230 words (aclImdb/train's layout and size).
Sentences come from make_sample_data.py's templates. Not committed: regenerate as needed.
"""

import argparse
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_sample_data import sentence  # noqa: E402

SST2_TEXTS = 70_000


def write_sst2(path, texts=SST2_TEXTS, seed=7):
    """`texts` labelled sentences as SST-2's TSV (`sentence<TAB>label`, labels 0/1)."""
    rng = random.Random(seed)
    with open(path, "w", encoding="utf-8") as f:
        f.write("sentence\tlabel\n")
        for _ in range(texts):
            text, label = sentence(rng)
            f.write(f"{text}\t{int(label == 'positive')}\n")


def write_imdb(out, rng):
    for label in ("pos", "neg"):
        (out / label).mkdir(parents=True, exist_ok=True)
    for i in range(25_000):
        parts, label = [], "pos" if i % 2 else "neg"
        while sum(len(p.split()) for p in parts) < 230:
            text, verdict = sentence(rng)
            if (verdict == "positive") == (label == "pos") or rng.random() < 0.3:
                parts.append(text)
        review = " ".join(parts[:-1]) + "<br /><br />" + parts[-1]
        (out / label / f"{i}_{7 if label == 'pos' else 2}.txt").write_text(review, encoding="utf-8")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("out", type=Path)
    p.add_argument("--only", choices=["sst2", "imdb"], help="write one of the two datasets")
    p.add_argument("--sst2-texts", type=int, default=SST2_TEXTS, help="sentences in sst2_size.tsv")
    args = p.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    if args.only in (None, "sst2"):
        write_sst2(args.out / "sst2_size.tsv", args.sst2_texts)
        print(f"wrote {args.out}/sst2_size.tsv")
    if args.only in (None, "imdb"):
        # The reviews continue the SST-2 file's generator (one generator wrote both at first),
        # so they are the same files whatever --only and --sst2-texts say.
        rng = random.Random(7)
        for _ in range(SST2_TEXTS):
            sentence(rng)
        write_imdb(args.out / "imdb_size", rng)
        print(f"wrote {args.out}/imdb_size/")


if __name__ == "__main__":
    main()
