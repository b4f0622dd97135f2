"""The speed-up of data-parallel training on N machines, estimated from measured step times.

Each of N workers (one process, one thread, a batch of 64 per step) computes its step in C ms,
then DDP all-reduces the gradient (S bytes; the embedding's gradient is dense, so S grows with
the vocabulary) with Gloo's ring: 2 (N - 1) / N x S / B seconds over links of B bytes/s, plus
2 (N - 1) hops of latency a each (the losses' and stop flags' all-reduce adds another 2 (N - 1)
hops). No overlap of the all-reduce with the backward is assumed (a model this size fills one
bucket), so the estimate is conservative. Speed-up = N x C / (C + all-reduce time): the
training throughput of N workers against one.

C comes from `scripts/dist_scaling.py --json` (the 1 process x 1 thread rows); the corpus of
Amazon-polarity size (3.6 million reviews) is SST-2's step scaled to its longer texts, with its
vocabulary capped by --max-vocab.

    python scripts/dist_estimate.py --scaling scaling.json
"""

import argparse
import json
from pathlib import Path

EMBEDDING, HIDDEN = 128, 128
# The default model's parameters beside the embedding: a bidirectional LSTM (per direction
# 4 x hidden x (embedding + hidden) weights and 2 x 4 x hidden biases) and the linear layer.
RECURRENT = 2 * (4 * HIDDEN * (EMBEDDING + HIDDEN) + 2 * 4 * HIDDEN) + (2 * HIDDEN * 2 + 2)


def gradient_bytes(vocab):
    return 4 * (vocab * EMBEDDING + RECURRENT)


def allreduce_ms(n, size, bandwidth, latency_ms):
    return 1000 * 2 * (n - 1) / n * size / bandwidth + 4 * (n - 1) * latency_ms


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--scaling", type=Path, required=True, help="dist_scaling.py --json output")
    p.add_argument("--vocab", default="waimai_10k=2626,SST-2 train=13736", help="NAME=VOCAB of the measured corpora")
    p.add_argument("--large-vocab", type=int, default=100_000, help="--max-vocab of the 3.6M-review corpus")
    p.add_argument("--large-length", type=float, default=8.0,
                   help="its texts' length against SST-2's (Amazon reviews ~80 tokens, SST-2 phrases ~10)")
    p.add_argument("--large-texts", type=int, default=3_600_000)
    args = p.parse_args()
    rows = json.loads(args.scaling.read_text())
    step_ms = {r["corpus"]: r["ms_per_step"] for r in rows if r["setup"] == "1 process x 1 thread"}
    vocab = dict((n, int(v)) for n, v in (x.split("=") for x in args.vocab.split(",")))
    corpora = [(name, step_ms[name], gradient_bytes(vocab[name]), None) for name in step_ms]
    if "SST-2 train" in step_ms:
        corpora.append((f"{args.large_texts / 1e6:.1f}M reviews, vocab {args.large_vocab:,}",
                        step_ms["SST-2 train"] * args.large_length, gradient_bytes(args.large_vocab), args.large_texts))
    links = [("10 Gb/s, 50 us", 1.25e9, 0.05), ("25 Gb/s, 20 us", 3.125e9, 0.02), ("1 Gb/s, 100 us", 0.125e9, 0.1)]
    print(f"{'corpus':<28} {'step ms':>7} {'grad MB':>7} {'link':<16} " + " ".join(f"{f'N={n}':>6}" for n in (2, 4, 8, 16)))
    for name, c, size, texts in corpora:
        for link, bandwidth, latency in links:
            speedups = [n * c / (c + allreduce_ms(n, size, bandwidth, latency)) for n in (2, 4, 8, 16)]
            print(f"{name:<28} {c:>7.1f} {size / 1e6:>7.1f} {link:<16} " + " ".join(f"{s:>6.1f}" for s in speedups))
        if texts:
            hours = texts / 64 * c / 1000 / 3600
            print(f"{'':<28} one worker: {hours:.1f} h per epoch at this step time")


if __name__ == "__main__":
    main()
