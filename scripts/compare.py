"""Runs the Rust port and the Python script side by side and compares every number they produce.

For each configuration and seed, the Rust example (`examples/article.rs`) writes a report and
the article's script (`scripts/reference.py`, run in this process) builds the same report. Every
field is compared as float32 bit patterns: inputs, initial parameters, the loss of every epoch,
final logits and parameters, predictions, and the printed line.

Exit status:
  --adam pytorch   non-zero on any difference at all (the port is bit-identical);
  --adam libtorch  non-zero when a loss drifts by more than 1e-5 or a prediction differs (or
                   anything before the first update differs);
  --exact          hold every mode to bit-identity (to see libtorch's Adam differ);
  and in every mode, non-zero when the Rust run writes anything to stderr (a libtorch warning).

    .venv/bin/python scripts/compare.py                       # article + wide, seeds 0 1 2 42
    .venv/bin/python scripts/compare.py --adam both --plot losses.png
    .venv/bin/python scripts/compare.py --foreach on          # torch.optim.Adam(foreach=True)
    .venv/bin/python scripts/compare.py --device cuda         # PyTorch's CUDA defaults (foreach)
"""

import argparse
import io
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import reference  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent

# Named configurations: the article's, and one that exercises every dimension at once.
CONFIGS = {
    "article": {},
    "wide": dict(input_size=4, hidden_size=17, num_layers=3, output_size=5, batch_size=3, seq_len=11, lr=0.01, epochs=30),
}
LIBTORCH_LOSS_TOLERANCE = 1e-5
FIELDS = ["inputs", "labels", "initial_parameters", "losses", "logits", "final_parameters", "predictions", "printed"]
# Fields computed before the first optimiser step: identical whatever the Adam path.
BEFORE_TRAINING = {"inputs", "labels", "initial_parameters"}


def f32(values):
    return np.array([np.nan if v is None else v for v in values], dtype=np.float32)


def compare_floats(rust, python, per_epoch=False):
    """(identical, max |difference|, first differing index) of two float32 value lists."""
    a, b = f32(rust), f32(python)
    if a.shape != b.shape:
        return False, float("inf"), 0
    same = a.view(np.uint32) == b.view(np.uint32)
    if same.all():
        return True, 0.0, None
    diff = np.abs(a.astype(np.float64) - b.astype(np.float64))
    return False, float(np.nanmax(diff)) if not np.isnan(diff).all() else float("nan"), int(np.argmin(same))


def compare_field(name, rust, python):
    """(identical, max |difference|, cell text) for one report field."""
    if name in ("labels", "predictions", "printed"):
        same = rust == python
        return same, 0.0 if same else float("inf"), "identical" if same else "DIFFERENT"
    if isinstance(rust, dict):
        if sorted(rust) != sorted(python):
            return False, float("inf"), "names differ"
        results = [compare_floats(rust[k], python[k]) for k in sorted(rust)]
        same = all(r[0] for r in results)
        worst = max(r[1] for r in results)
    else:
        same, worst, first = compare_floats(rust, python)
    if same:
        return True, 0.0, "identical"
    text = f"max|Δ| {worst:.1e}"
    if name == "losses":
        text += f" from epoch {first}"
    return False, worst, text


def run_rust(binary, config, seed, adam, threads, device="cpu", foreach="auto"):
    with tempfile.TemporaryDirectory() as tmp:
        report_path = Path(tmp) / "report.json"
        cmd = [str(binary), "--seed", str(seed), "--adam", adam, "--report", str(report_path)]
        cmd += ["--device", device, "--foreach", foreach]
        cmd += [arg for key, value in config.items() for arg in (f"--{key.replace('_', '-')}", str(value))]
        if threads:
            cmd += ["--threads", str(threads)]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            sys.exit(f"compare: {' '.join(cmd)} failed:\n{proc.stderr}")
        report = json.loads(report_path.read_text())
    report["printed"] = proc.stdout.rstrip("\n")
    report["stderr"] = proc.stderr
    return report


def run_python(config, seed, threads, device="cpu", foreach="auto"):
    args = reference.parser().parse_args([])
    for key, value in config.items():
        setattr(args, key, value)
    args.seed, args.threads, args.device, args.foreach = seed, threads, device, foreach
    printed = io.StringIO()
    report = reference.run(args, out=printed)
    report["printed"] = printed.getvalue().rstrip("\n")
    return report


def table(rows, header):
    widths = [max(len(str(r[i])) for r in rows + [header]) for i in range(len(header))]
    line = lambda r: "  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip()
    return "\n".join([line(header), line(["-" * w for w in widths])] + [line(r) for r in rows])


def plot(path, runs):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    configs = sorted({r["config"] for r in runs}, key=list(CONFIGS).index)
    fig, axes = plt.subplots(2, len(configs), figsize=(6 * len(configs), 7), squeeze=False)
    for col, name in enumerate(configs):
        top, bottom = axes[0][col], axes[1][col]
        for r in (r for r in runs if r["config"] == name):
            label = f"seed {r['seed']}, {r['adam']}"
            py, rs = f32(r["python"]["losses"]), f32(r["rust"]["losses"])
            top.plot(py, lw=2.5, alpha=0.35, label=f"PyTorch, {label}")
            top.plot(rs, lw=1, ls="--", label=f"Rust, {label}")
            bottom.plot(np.abs(rs.astype(np.float64) - py), lw=1, label=label)
        top.set(title=f"{name}: training loss", xlabel="epoch", ylabel="cross-entropy")
        bottom.set(title=f"{name}: |Rust − PyTorch| per epoch", xlabel="epoch", yscale="symlog")
        bottom.set_yscale("symlog", linthresh=1e-9)
        top.legend(fontsize=6)
        bottom.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f"compare: wrote {path}")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 42])
    p.add_argument("--configs", nargs="+", choices=list(CONFIGS), default=list(CONFIGS))
    p.add_argument("--adam", choices=["pytorch", "libtorch", "both"], default="pytorch")
    p.add_argument("--threads", type=int, default=1, help="libtorch threads on both sides (default 1)")
    p.add_argument("--device", default="cpu", help="where both sides train: cpu, cuda, cuda:N (default cpu)")
    p.add_argument("--foreach", choices=list(reference.FOREACH), default="auto",
                   help="torch.optim.Adam's foreach on both sides (default auto: PyTorch's default)")
    p.add_argument("--rust-bin", type=Path, default=ROOT / "target" / "debug" / "examples" / "article")
    p.add_argument("--exact", action="store_true", help="require bit-identity in libtorch mode too")
    p.add_argument("--plot", type=Path, help="draw both sides' loss curves into this PNG")
    args = p.parse_args()
    if not args.rust_bin.exists():
        sys.exit(f"compare: {args.rust_bin} not found; build it with `cargo build --examples`")

    modes = ["pytorch", "libtorch"] if args.adam == "both" else [args.adam]
    runs, failed, warned = [], False, []
    for adam in modes:
        exact = adam == "pytorch" or args.exact
        rows = []
        for name in args.configs:
            for seed in args.seeds:
                python = run_python(CONFIGS[name], seed, args.threads, args.device, args.foreach)
                rust = run_rust(args.rust_bin, CONFIGS[name], seed, adam, args.threads, args.device, args.foreach)
                if rust["stderr"].strip():
                    warned.append(f"{name} seed {seed} ({adam}): {rust['stderr'].strip()}")
                runs.append(dict(config=name, seed=seed, adam=adam, rust=rust, python=python))
                cells = []
                for field in FIELDS:
                    same, worst, text = compare_field(field, rust[field], python[field])
                    cells.append(text)
                    if same:
                        continue
                    if exact or field in BEFORE_TRAINING or field in ("predictions", "printed"):
                        failed = True
                    elif field == "losses" and not worst <= LIBTORCH_LOSS_TOLERANCE:
                        failed = True
                rows.append([name, seed] + cells)
        rule = "every float32 bit must match" if exact else f"losses within {LIBTORCH_LOSS_TOLERANCE:g}, same predictions"
        where = f"{args.threads} thread(s) each side" + ("" if args.device == "cpu" else f", on {args.device}")
        where += "" if args.foreach == "auto" else f", foreach {args.foreach}"
        print(f"\n--adam {adam} ({rule}; {where})")
        print(table(rows, ["config", "seed"] + [f.replace("_parameters", " params") for f in FIELDS]))
    if args.plot:
        plot(args.plot, runs)
    for line in warned:
        print(f"compare: the Rust run wrote to stderr: {line}")
    failed = failed or bool(warned)
    print("\ncompare: " + ("FAILED: the runs differ beyond the rule above" if failed else "OK"))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
