"""PyTorch's side of the benchmark: times one workload in this process and prints JSON.

The twin of `lstm-tch bench WORKLOAD` (src/lab/bench.rs), with the same flags and output; driven by
scripts/bench.py. The models and loops are the article's (reference.py) and the text program's
(text_reference.py); the text workload includes loading, tokenizing and batching, as in Rust.

    python scripts/bench_worker.py article --threads 1 --warmup 20 --reps 100
    python scripts/bench_worker.py text --device cuda --data sst2_size.tsv --bidirectional --bucket

`--device cuda` runs on the GPU at PyTorch's defaults there (`model.to(device)`, which flattens
the LSTM's weights; the foreach Adam) and ends every repetition with `torch.cuda.synchronize()`.
`--data FILE` makes `text` an epoch over that file, loaded and encoded beforehand (untimed),
after a warm-up epoch over its first 2,000 texts, as `lstm-tch bench text --data` does.
"""

import argparse
import csv
import json
import sys
import time
from collections import Counter
from pathlib import Path

import torch
import torch.nn as nn
import torch.optim as optim

sys.path.insert(0, str(Path(__file__).resolve().parent))
import reference  # noqa: E402
import text_reference as tr  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
# `lstm-tch train`'s defaults (TrainConfig in src/train/config.rs).
TEXT_DEFAULTS = dict(embedding_dim=128, hidden_size=128, num_layers=1, bidirectional=True, dropout=0.0,
                     embedding_dropout=0.3, pooling="max", output_dropout=0.0)
BATCH_SIZE, LR, MAX_LEN = 64, 0.003, 256
# The data is English and ASCII (the sample generator's), where text_reference.tokenize (the
# format-1 scanner's regular expression) and the default `unicode` tokenizer give the same tokens.


DEVICE = torch.device("cpu")


def synchronize():
    if DEVICE.type == "cuda":
        torch.cuda.synchronize(DEVICE)


def time_reps(warmup, reps, body, pause_s=0.0):
    for _ in range(warmup):
        body()
    synchronize()
    times = []
    for _ in range(reps):
        if pause_s > 0:
            time.sleep(pause_s)  # untimed (lstm-tch bench --pause-ms)
        start = time.perf_counter()
        body()
        synchronize()
        times.append((time.perf_counter() - start) * 1e3)
    return times


def training_steps(args, input_size, hidden_size, num_layers, batch, seq_len):
    torch.manual_seed(0)
    inputs = torch.randn(batch, seq_len, input_size).to(DEVICE)
    labels = torch.tensor([i % 2 for i in range(batch)]).to(DEVICE)
    model = reference.LSTMModel(input_size, hidden_size, num_layers, 2).to(DEVICE)
    criterion = nn.CrossEntropyLoss()
    optimizer = optim.Adam(model.parameters(), lr=0.001)

    def step():
        outputs = model(inputs)
        loss = criterion(outputs, labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    times = time_reps(args.warmup, args.reps, step, args.pause_ms / 1e3)
    h = hidden_size
    forward = sum(2 * batch * 4 * h * ((input_size if layer == 0 else h) + h) * seq_len for layer in range(num_layers))
    return times, batch, 3.0 * forward


def prepare_text(path):
    """`lstm-tch train`'s data preparation with its defaults: (token ids, labels, vocabulary size,
    number of classes)."""
    with open(path, encoding="utf-8", newline="") as f:
        rows = [r for r in csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE)]
    labels = sorted({r["label"] for r in rows})
    tokenized = [tr.tokenize(r["sentence"]) for r in rows]
    counts = Counter(t for tokens in tokenized for t in tokens)
    vocab = ["<pad>", "<unk>"] + sorted(counts, key=lambda t: (-counts[t], t))
    ids = {t: i for i, t in enumerate(vocab)}
    encoded = [tr.encode(tokens, ids, MAX_LEN) for tokens in tokenized]
    targets = [labels.index(r["label"]) for r in rows]
    return encoded, targets, len(vocab), len(labels)


def train_epoch(encoded, targets, vocab_size, num_classes, bidirectional=False, bucket=False):
    """One epoch of `lstm-tch train`'s default model from seed 0, on DEVICE."""
    torch.manual_seed(0)
    config = dict(TEXT_DEFAULTS, bidirectional=TEXT_DEFAULTS["bidirectional"] or bidirectional)
    model = tr.TextRNN(vocab_size, num_classes=num_classes, **config).to(DEVICE)
    criterion = nn.CrossEntropyLoss()
    optimizer = optim.Adam(model.parameters(), lr=LR)
    model.train()
    for indices in tr.epoch_batches(encoded, BATCH_SIZE, bucket):
        tokens, lengths, y = tr.make_batch(encoded, targets, indices)
        loss = criterion(model(tokens.to(DEVICE), lengths), y.to(DEVICE))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        loss.item()
    return len(encoded)


def text_epoch(args):
    """One epoch of `lstm-tch train` with its defaults on the sample data, loading included."""
    data = prepare_text(ROOT / "data" / "sample" / "train.tsv")
    return train_epoch(*data, bidirectional=args.bidirectional, bucket=args.bucket)


def text_epochs(args):
    if args.data is None:
        n = []
        times = time_reps(min(args.warmup, 1), args.reps, lambda: n.append(text_epoch(args)), args.pause_ms / 1e3)
        return times, n[-1], None
    encoded, targets, vocab_size, num_classes = prepare_text(args.data)
    if args.warmup > 0:
        head = min(len(encoded), 2000)
        train_epoch(encoded[:head], targets[:head], vocab_size, num_classes, args.bidirectional, args.bucket)
    epoch = lambda: train_epoch(encoded, targets, vocab_size, num_classes, args.bidirectional, args.bucket)  # noqa: E731
    return time_reps(0, args.reps, epoch, args.pause_ms / 1e3), len(encoded), None


def predictions(args):
    model, config = tr.load_checkpoint(args.checkpoint)
    model.to(DEVICE)
    ids = {t: i for i, t in enumerate(config["vocab"])}
    lowercase = config["tokenizer"]["lowercase"]

    def predict():
        tokens = tr.encode(tr.tokenize(args.sentence, lowercase), ids, config["max_len"])
        with torch.no_grad():
            logits = model(torch.tensor([tokens]).to(DEVICE), torch.tensor([len(tokens)]))
            torch.softmax(logits, dim=1).tolist()

    return time_reps(args.warmup, args.reps, predict, args.pause_ms / 1e3), 1, None


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("workload", choices=["article", "medium", "text", "predict"])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--warmup", type=int, default=20)
    p.add_argument("--reps", type=int, default=100)
    p.add_argument("--pause-ms", type=float, default=0.0,
                   help="untimed sleep before each timed repetition (100: ten a second)")
    p.add_argument("--checkpoint", default=str(ROOT / "runs" / "sentiment"))
    p.add_argument("--sentence", default="The acting was great, but the plot was far too long.")
    p.add_argument("--shrink", type=int, default=1)
    p.add_argument("--device", default="cpu")
    p.add_argument("--data", help="text: train on this TSV (sentence, label), loaded beforehand")
    p.add_argument("--bucket", action="store_true", help="text: length-bucketed batches")
    p.add_argument("--bidirectional", action="store_true", help="text: a bidirectional LSTM")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    global DEVICE
    DEVICE = torch.device(args.device)
    if args.workload == "article":
        times, items, flops = training_steps(args, 1, 64, 1, 2, 5)
    elif args.workload == "medium":
        s = args.shrink
        times, items, flops = training_steps(args, 32 // s, 256 // s, 2, 64 // s, 50 // s)
    elif args.workload == "text":
        times, items, flops = text_epochs(args)
    else:
        times, items, flops = predictions(args)
    name = torch.cuda.get_device_name(DEVICE) if DEVICE.type == "cuda" else DEVICE.type
    print(json.dumps(dict(workload=args.workload, threads=args.threads, device=str(DEVICE), device_name=name, times_ms=times, items=items, flops=flops)))


if __name__ == "__main__":
    main()
