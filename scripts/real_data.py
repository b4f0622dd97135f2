"""Trains lstm-tch on real review corpora and prints what it reaches: docs/real-data.md's first table.

Each run is `lstm-tch train --train FILE` (a seeded 10 % dev and 10 % test holdout) plus the
flags of one setting; the table gives the test accuracy and macro-F1 of the best epoch on dev,
that epoch, its dev accuracy, and the wall time of the whole `train` command (loading,
tokenizing, training, every dev evaluation and the test evaluation). Settings are chosen on dev accuracy; the
test column is only reported.

    # the defaults on the two corpora of ../shared/data (release build):
    python scripts/real_data.py --waimai ../shared/data/waimai_10k.csv --sst2 ../shared/data/sst2/train.tsv
    # other settings: each --setting is a name and the train flags it adds
    python scripts/real_data.py --waimai FILE --setting "jieba=--tokenizer jieba" --setting "defaults="
    # several seeds (each its own holdout split and initialisation): a row per run, then the
    # means per corpus and setting
    python scripts/real_data.py --waimai FILE --seeds 0,1,2,3,4 --setting "defaults=" --setting "fb1=--forget-bias 1"

The corpora are not part of the project (see ../shared/data/README.md): waimai_10k is 11,987
Chinese food-delivery reviews (ChineseNlpCorpus), SST-2 the 67,349 GLUE training phrases.
"""

import argparse
import json
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def train(binary, data, flags, threads, seed):
    """One `lstm-tch train` run; returns its report (dict) and wall time."""
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.json"
        cmd = [str(binary), "train", "--train", str(data), "--out", str(Path(tmp) / "ckpt"), "--quiet",
               "--seed", str(seed), "--report", str(report)]
        if threads:
            cmd += ["--threads", str(threads)]
        cmd += flags
        start = time.perf_counter()
        subprocess.run(cmd, check=True, stderr=subprocess.DEVNULL if not sys.stderr.isatty() else None)
        return json.loads(report.read_text()), time.perf_counter() - start


def row(report, seconds):
    """A run's numbers: test accuracy and macro-F1, best epoch, dev accuracy and macro-F1, wall s."""
    best = report["best_epoch"]
    dev = report["epochs"][best - 1]["dev"] if best else {"accuracy": float("nan"), "macro_f1": float("nan")}
    test = report["test"]
    return [test["accuracy"], test["macro_f1"], best, dev["accuracy"], dev["macro_f1"], seconds]


def fmt(numbers):
    """`row`'s numbers (or their means over seeds) as the table's columns."""
    acc, f1, best, dev_acc, dev_f1, seconds = numbers
    return f"{acc:>8.4f} {f1:>8.4f} {best:>7.4g} {dev_acc:>8.4f} {dev_f1:>8.4f} {seconds:>7.1f}"


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--waimai", type=Path, help="waimai_10k.csv")
    p.add_argument("--sst2", type=Path, help="SST-2 train.tsv")
    p.add_argument("--data", action="append", default=[], metavar="NAME=FILE", help="another corpus")
    p.add_argument("--setting", action="append", metavar="NAME=FLAGS",
                   help="a named setting: train flags added to the defaults (default: the defaults alone)")
    p.add_argument("--binary", type=Path, default=ROOT / "target/release/lstm-tch")
    p.add_argument("--threads", type=int, help="--threads for train (default: libtorch's, as a user runs it)")
    p.add_argument("--seed", type=int, default=0, help="the seed of every run (see --seeds)")
    p.add_argument("--seeds", help="comma-separated seeds: every setting runs once per seed, then a mean row")
    p.add_argument("--json", type=Path, help="also write every report here")
    args = p.parse_args()

    corpora = [(n, f) for n, f in [("waimai_10k", args.waimai), ("SST-2 train", args.sst2)] if f]
    corpora += [tuple(d.split("=", 1)) for d in args.data]
    settings = [tuple(s.split("=", 1)) for s in (args.setting or ["defaults="])]
    seeds = [int(x) for x in args.seeds.split(",")] if args.seeds else [args.seed]
    reports = []
    print(f"{'corpus':<12} {'setting':<28} {'seed':>4} {'test acc':>8} {'macro-F1':>8} {'best ep':>7} "
          f"{'dev acc':>8} {'dev F1':>8} {'wall s':>7} {'vocab':>6}", flush=True)
    for corpus, path in corpora:
        for name, flags in settings:
            runs = []
            for seed in seeds:
                report, seconds = train(args.binary, path, shlex.split(flags), args.threads, seed)
                runs.append(row(report, seconds))
                print(f"{corpus:<12} {name:<28} {seed:>4} " + fmt(runs[-1]) + f" {report['vocab_size']:>6}",
                      flush=True)
                reports.append({"corpus": corpus, "setting": name, "flags": flags, "seed": seed,
                                "wall_seconds": seconds, "report": report})
            if len(seeds) > 1:
                mean = [sum(r[i] for r in runs) / len(runs) for i in range(len(runs[0]))]
                print(f"{corpus:<12} {name:<28} {'mean':>4} " + fmt(mean), flush=True)
    if args.json:
        args.json.write_text(json.dumps(reports) + "\n")


if __name__ == "__main__":
    main()
