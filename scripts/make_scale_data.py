"""Writes SYNTHETIC datasets the size of SST-2 and IMDB, to measure loading and training at scale.

    python3 scripts/make_scale_data.py OUT_DIR

OUT_DIR/sst2_size.tsv: 70,000 short sentences (SST-2's `sentence<TAB>label`, ~67k in GLUE).
OUT_DIR/imdb_size/{pos,neg}/*.txt: 25,000 reviews of ~230 words (aclImdb/train's layout and size).
Sentences come from make_sample_data.py's templates. Not committed: regenerate as needed.
"""

import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_sample_data import sentence  # noqa: E402


def main():
    out = Path(sys.argv[1])
    rng = random.Random(7)
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "sst2_size.tsv", "w", encoding="utf-8") as f:
        f.write("sentence\tlabel\n")
        for _ in range(70_000):
            text, label = sentence(rng)
            f.write(f"{text}\t{int(label == 'positive')}\n")
    for label in ("pos", "neg"):
        (out / "imdb_size" / label).mkdir(parents=True, exist_ok=True)
    for i in range(25_000):
        parts, label = [], "pos" if i % 2 else "neg"
        while sum(len(p.split()) for p in parts) < 230:
            text, verdict = sentence(rng)
            if (verdict == "positive") == (label == "pos") or rng.random() < 0.3:
                parts.append(text)
        review = " ".join(parts[:-1]) + "<br /><br />" + parts[-1]
        (out / "imdb_size" / label / f"{i}_{7 if label == 'pos' else 2}.txt").write_text(review, encoding="utf-8")
    print(f"wrote {out}/sst2_size.tsv and {out}/imdb_size/")


if __name__ == "__main__":
    main()
