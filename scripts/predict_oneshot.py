"""Classifies sentences with an lstm-tch checkpoint in PyTorch: the Python twin of
`lstm-tch predict`, as one process, for the whole-process benchmark (scripts/bench.py).

    python scripts/predict_oneshot.py --checkpoint runs/sentiment "not bad at all"
"""

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import text_reference as tr  # noqa: E402


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("sentences", nargs="+")
    p.add_argument("--checkpoint", default="runs/sentiment")
    p.add_argument("--threads", type=int)
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    model, config = tr.load_checkpoint(args.checkpoint)
    ids = {t: i for i, t in enumerate(config["vocab"])}
    for text in args.sentences:
        tokens = tr.encode(tr.tokenize(text, config["tokenizer"]["lowercase"]), ids, config["max_len"])
        with torch.no_grad():
            probs = torch.softmax(model(torch.tensor([tokens]), torch.tensor([len(tokens)])), dim=1)[0]
        label = config["labels"][int(probs.argmax())]
        print(label, " ".join(f"{n}={p:.4f}" for n, p in zip(config["labels"], probs.tolist())), text, sep="\t")


if __name__ == "__main__":
    main()
