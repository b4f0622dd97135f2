"""lstm-tch against PyTorch, on the same libtorch, in one run: one table of medians and ratios.

Every workload runs on both sides alternately (Rust first in even rounds, PyTorch first in odd
ones), with the thread count pinned on both, a warm-up and several repetitions; each side reports
the median of its repetitions and the table shows the median over rounds. In-process workloads
are `lstm-tch bench WORKLOAD` against `scripts/bench_worker.py WORKLOAD`; whole processes are
`lstm-tch predict` against `scripts/predict_oneshot.py`, and the article example against
`scripts/reference.py`, whose peak resident memory is read from the kernel (wait4).

    scripts/bench.sh                      # builds in release, then runs this
    .venv/bin/python scripts/bench.py --threads 1 2 --rounds 5 --json bench.json --plot bench.png
    scripts/bench.sh --device cuda --threads 1 --rounds 3     # the device suite, on the GPU

Run it on an otherwise idle machine: a busy second core can slow libtorch's threads 20x.

`--device cuda` (or `--suite device`) runs the device suite instead: the article step, the medium
step, one training epoch of `train`'s default model, bidirectional, over a synthetic SST-2-size
file (70,000 sentences from scripts/make_scale_data.py; loaded beforehand, untimed) with the
default batches and with `--bucket`, and in-process predict, each timed with a synchronize after
every repetition on both sides. The whole-process rows are the CPU suite's only.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
from make_scale_data import write_sst2  # noqa: E402
PY = sys.executable
PEAK_GFLOPS = 320.0  # 2 cores × 2.5 GHz × AVX-512 FMA (2 × 16 fp32 lanes × 2 FLOPs)
SENTENCE = "The acting was great, but the plot was far too long."

# (name, rust args, python args or None, repetitions (warm-up, reps), unit, target)
# unit "ms": lower is better, ratio Rust/PyTorch; "texts/s": higher is better, ratio Rust/PyTorch.
WORKLOADS = [
    ("article step, pytorch Adam", ["article", "--adam", "pytorch"], ["article"], (50, 300), "ms", ("<=", 0.5)),
    ("article step, libtorch Adam", ["article", "--adam", "libtorch"], ["article"], (50, 300), "ms", ("<=", 0.5)),
    ("medium step", ["medium"], ["medium"], (3, 15), "ms", ("<=", 1.0)),
    ("text training, 1 epoch", ["text"], ["text"], (1, 3), "texts/s", (">=", 1.3)),
    ("predict, in process p50", ["predict"], ["predict"], (20, 300), "ms", ("<=", 0.5)),
]
TEXT_SST2 = "text training, 1 epoch, SST-2 size"
TEXT_SST2_BUCKET = "text training, 1 epoch, SST-2 size, --bucket"


def device_workloads(data):
    """The device suite, same tuple layout as WORKLOADS: what a GPU is for. The text rows train
    `train`'s default model, bidirectional, on `data` (warm-up: one epoch over 2,000 texts)."""
    text = ["text", "--data", str(data), "--bidirectional"]
    return [
        ("article step", ["article"], ["article"], (50, 300), "ms", None),
        ("medium step", ["medium"], ["medium"], (3, 15), "ms", ("<=", 1.0)),
        (TEXT_SST2, text, text, (1, 1), "texts/s", (">=", 1.2)),
        (TEXT_SST2_BUCKET, text + ["--bucket"], text + ["--bucket"], (1, 1), "texts/s", None),
        ("predict, in process p50", ["predict"], ["predict"], (20, 300), "ms", None),
    ]


def run_json(cmd):
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if out.returncode != 0:
        sys.exit(f"bench: {' '.join(map(str, cmd))} failed:\n{out.stderr}")
    if out.stderr.strip():  # a libtorch warning, say: shown, never swallowed
        side = "pytorch" if str(cmd[1]).endswith("bench_worker.py") else "rust"
        for line in out.stderr.strip().splitlines():
            print(f"bench: {side} stderr ({' '.join(map(str, cmd[1:3]))}): {line}", file=sys.stderr)
    return json.loads(out.stdout)


def timed_process(cmd, env=None):
    """(wall seconds, peak resident MiB) of one process; `env` adds environment variables."""
    start = time.perf_counter()
    env = {**os.environ, **env} if env else None
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    if status != 0:
        sys.exit(f"bench: {' '.join(map(str, cmd))} failed: {proc.stderr.read().decode()}")
    return wall, usage.ru_maxrss / 1024.0


def alternate(rounds, rust, python):
    """Runs rust() and python() alternately; returns the lists of their results."""
    r, p = [], []
    for i in range(rounds):
        if i % 2 == 0:
            r.append(rust())
            p.append(python())
        else:
            p.append(python())
            r.append(rust())
    return r, p


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--quick", action="store_true", help="tiny sizes and few repetitions (smoke test)")
    ap.add_argument("--rust-bin", type=Path, default=ROOT / "target" / "release" / "lstm-tch")
    ap.add_argument("--article-bin", type=Path, default=ROOT / "target" / "release" / "examples" / "article")
    ap.add_argument("--json", type=Path, help="also write every measurement as JSON")
    ap.add_argument("--plot", type=Path, help="draw the ratios as a bar chart (PNG)")
    ap.add_argument("--device", default="cpu", help="where both sides run: cpu, cuda, cuda:N (default cpu)")
    ap.add_argument("--suite", choices=["cpu", "device"], help="workload set [default: cpu on the CPU, else device]")
    ap.add_argument("--text-data", type=Path, help="device suite: the text file [default: a synthetic SST-2-size TSV]")
    ap.add_argument("--text-size", type=int, default=70_000, help="device suite: sentences in the synthetic file")
    ap.add_argument("--python", default=PY, help="the Python that runs PyTorch's side (default: this one)")
    args = ap.parse_args()
    for binary in (args.rust_bin, args.article_bin):
        if not binary.exists():
            sys.exit(f"bench: {binary} not found; run scripts/bench.sh (cargo build --release --bins --examples)")
    rounds = 1 if args.quick else args.rounds
    suite = args.suite or ("cpu" if args.device == "cpu" else "device")
    py = args.python

    with tempfile.TemporaryDirectory() as tmp:
        ckpt = Path(tmp) / "ckpt"
        train = [args.rust_bin, "train", "--quiet", "--out", ckpt, "--threads", "2"]
        subprocess.run(train + (["--epochs", "1"] if args.quick else []), check=True, cwd=ROOT, capture_output=True)
        workloads = WORKLOADS
        if suite == "device":
            data = args.text_data
            if data is None:
                data = Path(tmp) / "sst2_size.tsv"
                write_sst2(data, 300 if args.quick else args.text_size)
            workloads = device_workloads(data)
        rows, results, device_name = [], [], args.device
        for threads in args.threads:
            for name, rust_args, py_args, (warmup, reps), unit, target in workloads:
                if args.quick:
                    warmup, reps = 1, (1 if rust_args[0] == "text" and suite == "device" else 2)
                extra = ["--threads", str(threads), "--warmup", str(warmup), "--reps", str(reps), "--device", args.device]
                extra += ["--checkpoint", str(ckpt), "--sentence", SENTENCE] if rust_args[0] == "predict" else []
                extra += ["--shrink", "8"] if args.quick and rust_args[0] == "medium" else []
                rust = lambda: run_json([args.rust_bin, "bench", *rust_args, *extra])  # noqa: E731
                python = lambda: run_json([py, "scripts/bench_worker.py", *py_args, *extra])  # noqa: E731
                r, p = alternate(rounds, rust, python)
                device_name = p[0].get("device_name", device_name)
                summary = lambda rs: statistics.median(statistics.median(x["times_ms"]) for x in rs)  # noqa: E731
                rust_ms, py_ms = summary(r), summary(p)
                entry = dict(workload=name, threads=threads, rust_ms=rust_ms, pytorch_ms=py_ms, target=target)
                if unit == "texts/s":
                    items = r[0]["items"]
                    entry.update(rust=items / rust_ms * 1e3, pytorch=items / py_ms * 1e3)
                else:
                    entry.update(rust=rust_ms, pytorch=py_ms)
                entry["ratio"] = entry["rust"] / entry["pytorch"]
                if r[0]["flops"]:
                    entry["rust_gflops"] = r[0]["flops"] / rust_ms / 1e6
                    entry["pytorch_gflops"] = p[0]["flops"] / py_ms / 1e6
                if name.startswith("predict"):
                    p99 = lambda rs: statistics.median(statistics.quantiles(x["times_ms"], n=100)[98] for x in rs)  # noqa: E731
                    if not args.quick:
                        results.append(dict(workload="predict, in process p99", threads=threads, rust=p99(r), pytorch=p99(p), ratio=p99(r) / p99(p), target=None, unit="ms"))
                entry["unit"] = unit
                if suite == "device":
                    entry["peak"] = None  # PEAK_GFLOPS is this CPU's
                results.append(entry)
                print(f"  measured {name}, {threads} thread(s)", file=sys.stderr, flush=True)
            if suite == "device":
                # The --bucket target is against the PyTorch program with its default batches.
                find = lambda n: next(e for e in results if e["workload"] == n and e["threads"] == threads)  # noqa: E731
                bucket, plain = find(TEXT_SST2_BUCKET), find(TEXT_SST2)
                results.append(dict(workload="--bucket (Rust) vs default batches (PyTorch)", threads=threads, rust=bucket["rust"], pytorch=plain["pytorch"], ratio=bucket["rust"] / plain["pytorch"], target=(">=", 2.0), unit="texts/s"))
                continue

            # Whole processes: wall time and peak memory.
            t = ["--threads", str(threads)]
            rust_predict = [args.rust_bin, "predict", "--checkpoint", ckpt, *t, SENTENCE]
            py_predict = [py, "scripts/predict_oneshot.py", "--checkpoint", ckpt, *t, SENTENCE]
            r, p = alternate(rounds, lambda: timed_process(rust_predict), lambda: timed_process(py_predict))
            wall = lambda xs: statistics.median(x[0] for x in xs) * 1e3  # noqa: E731
            peak = lambda xs: max(x[1] for x in xs)  # noqa: E731
            results.append(dict(workload="predict, whole process", threads=threads, rust=wall(r), pytorch=wall(p), ratio=wall(r) / wall(p), target=("<=", 0.1), unit="ms"))
            results.append(dict(workload="peak memory, predict", threads=threads, rust=peak(r), pytorch=peak(p), ratio=peak(r) / peak(p), target=("<=", 0.25), unit="MiB"))
            # What a machine with an NVIDIA driver sees: lstm-tch loads libtorch_cuda at start-up
            # there (PyTorch always does). LSTM_TCH_CUDA=on forces that load here.
            cuda_on = {"LSTM_TCH_CUDA": "on"}
            r, p = alternate(rounds, lambda: timed_process(rust_predict, cuda_on), lambda: timed_process(py_predict))
            results.append(dict(workload="predict, whole process, CUDA loaded", threads=threads, rust=wall(r), pytorch=wall(p), ratio=wall(r) / wall(p), target=None, unit="ms"))
            results.append(dict(workload="peak memory, predict, CUDA loaded", threads=threads, rust=peak(r), pytorch=peak(p), ratio=peak(r) / peak(p), target=None, unit="MiB"))
            epochs = ["--epochs", "2"] if args.quick else []
            ra, pa = alternate(rounds, lambda: timed_process([args.article_bin, *t, *epochs]), lambda: timed_process([py, "scripts/reference.py", *t, *epochs]))
            results.append(dict(workload="peak memory, article run", threads=threads, rust=peak(ra), pytorch=peak(pa), ratio=peak(ra) / peak(pa), target=("<=", 0.25), unit="MiB"))
            results.append(dict(workload="article run, whole process", threads=threads, rust=wall(ra), pytorch=wall(pa), ratio=wall(ra) / wall(pa), target=None, unit="ms"))
            print(f"  measured whole processes, {threads} thread(s)", file=sys.stderr, flush=True)

    for e in results:
        rows.append(format_row(e))
    header = ["workload", "threads", "Rust", "PyTorch", "Rust/PyTorch", "target", ""]
    widths = [max(len(str(r[i])) for r in rows + [header]) for i in range(len(header))]
    line = lambda r: "  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip()  # noqa: E731
    if suite == "device":
        print(f"medians of {rounds} alternating round(s); same libtorch; device {args.device} ({device_name}); on CUDA every repetition ends with a synchronize")
    else:
        print(f"medians of {rounds} alternating round(s); same libtorch; fp32 peak {PEAK_GFLOPS:.0f} GFLOP/s")
    print("\n".join([line(header), line(["-" * w for w in widths])] + [line(r) for r in rows]))
    if args.json:
        out = dict(rounds=rounds, quick=args.quick, suite=suite, device=args.device, device_name=device_name, results=results)
        args.json.write_text(json.dumps(out, indent=1) + "\n")
    if args.plot:
        plot(args.plot, results)


def fmt(value, unit):
    if unit == "texts/s":
        return f"{value:,.0f} texts/s"
    if unit == "MiB":
        return f"{value:.0f} MiB"
    return f"{value:.3f} ms" if value < 10 else f"{value:.1f} ms"


def format_row(e):
    unit = e["unit"]
    rust, py = fmt(e["rust"], unit), fmt(e["pytorch"], unit)
    if "rust_gflops" in e and e.get("peak", PEAK_GFLOPS):
        rust += f" ({e['rust_gflops']:.1f} GFLOP/s, {100 * e['rust_gflops'] / PEAK_GFLOPS:.0f}% of peak)"
        py += f" ({e['pytorch_gflops']:.1f} GFLOP/s)"
    elif "rust_gflops" in e:
        rust += f" ({e['rust_gflops']:.1f} GFLOP/s)"
        py += f" ({e['pytorch_gflops']:.1f} GFLOP/s)"
    target, met = "", ""
    if e.get("target"):
        op, bound = e["target"]
        target = f"{'≤' if op == '<=' else '≥'} {bound}"
        met = "met" if (e["ratio"] <= bound if op == "<=" else e["ratio"] >= bound) else "MISSED"
    return [e["workload"], e["threads"], rust, py, f"{e['ratio']:.3f}", target, met]


def plot(path, results):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(dict.fromkeys(e["workload"] for e in results))
    threads = sorted({e["threads"] for e in results})
    fig, ax = plt.subplots(figsize=(11, 5))
    width = 0.8 / len(threads)
    for k, t in enumerate(threads):
        values = [next((e["ratio"] for e in results if e["workload"] == n and e["threads"] == t), 0) for n in names]
        ax.bar([i + k * width for i in range(len(names))], values, width, label=f"{t} thread(s)")
    for i, n in enumerate(names):
        target = next((e["target"] for e in results if e["workload"] == n), None)
        if target:
            ax.hlines(target[1], i - width / 2, i + width * (len(threads) - 0.5), colors="k", linestyles="dashed")
    ax.axhline(1.0, color="grey", lw=0.8)
    ax.set_xticks([i + width * (len(threads) - 1) / 2 for i in range(len(names))], names, rotation=25, ha="right", fontsize=8)
    ax.set_ylabel("Rust / PyTorch (throughput for texts/s; dashed: target)")
    ax.set_yscale("log")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f"bench: wrote {path}")


if __name__ == "__main__":
    main()
