"""Data-parallel scaling of `lstm-tch train` on one machine: docs/distributed.md's table.

Three ways to use two cores on each corpus, in one run, one after the other: one process at one
thread, one process at two threads (`--threads 2`), and two processes at one thread each under
`torchrun` (data-parallel, DDP over Gloo). Each trains with the defaults on a seeded 10 % dev and
10 % test holdout; the table gives the training throughput (texts per second of training time,
evaluation excluded), the time per step, the wall time of the whole command, the best epoch's
dev accuracy and its test accuracy.

    python scripts/dist_scaling.py --waimai ../shared/data/waimai_10k.csv --sst2 ../shared/data/sst2/train.tsv
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SETUPS = [("1 process x 1 thread", 1, 1), ("1 process x 2 threads", 1, 2), ("2 processes x 1 thread", 2, 1)]


def train(binary, data, processes, threads, flags):
    """One `lstm-tch train` run (under torchrun for several processes); its report and wall time."""
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.json"
        cmd = [str(binary), "train", "--train", str(data), "--out", str(Path(tmp) / "ckpt"), "--quiet",
               "--threads", str(threads), "--report", str(report)] + flags
        if processes > 1:
            torchrun = Path(sys.executable).with_name("torchrun")
            cmd = [str(torchrun), "--standalone", "--nproc-per-node", str(processes), "--no-python"] + cmd
        env = dict(os.environ, OMP_NUM_THREADS=str(threads))
        start = time.perf_counter()
        subprocess.run(cmd, check=True, env=env, stderr=subprocess.DEVNULL if not sys.stderr.isatty() else None)
        return json.loads(report.read_text()), time.perf_counter() - start


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--waimai", type=Path, help="waimai_10k.csv")
    p.add_argument("--sst2", type=Path, help="SST-2 train.tsv")
    p.add_argument("--binary", type=Path, default=ROOT / "target/release/lstm-tch")
    p.add_argument("--flags", default="", help="train flags added to every run")
    p.add_argument("--json", type=Path, help="also write the numbers here")
    args = p.parse_args()
    corpora = [(n, f) for n, f in [("waimai_10k", args.waimai), ("SST-2 train", args.sst2)] if f]
    rows = []
    print(f"{'corpus':<12} {'setup':<24} {'texts/s':>8} {'x':>5} {'ms/step':>8} {'wall s':>7} "
          f"{'dev acc':>8} {'test acc':>8} {'best':>4}")
    for corpus, data in corpora:
        base = None
        for name, processes, threads in SETUPS:
            report, wall = train(args.binary, data, processes, threads, args.flags.split())
            seconds = sum(e["seconds"] for e in report["epochs"])
            texts_per_s = report["train_texts"] * len(report["epochs"]) / seconds
            steps = sum(len(e["batch_losses"]) for e in report["epochs"])
            base = base or texts_per_s
            best = report["best_epoch"]
            dev = report["epochs"][best - 1]["dev"]["accuracy"]
            row = dict(corpus=corpus, setup=name, texts_per_s=texts_per_s, speedup=texts_per_s / base,
                       ms_per_step=1000 * seconds / steps, wall=wall, dev=dev, test=report["test"]["accuracy"],
                       best=best)
            rows.append(row)
            print(f"{corpus:<12} {name:<24} {texts_per_s:>8.0f} {row['speedup']:>5.2f} {row['ms_per_step']:>8.2f} "
                  f"{wall:>7.1f} {dev:>8.4f} {row['test']:>8.4f} {best:>4}", flush=True)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
