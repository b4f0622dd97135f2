"""scripts/serve_bench.sh's helper: the texts, the machine's facts, oha's figures, /metrics.

serve_bench.sh runs the servers and the load tool and leaves every raw figure in one run
directory (target/serve-bench/runs/DATE/); this reads them. Subcommands:

    texts   --lang en|zh --out DIR     request bodies and predict's file, from ../shared/data
    init    RUN_DIR ...                run.json: date, machine, versions, placement, command
    brief   OHA.json [--p99-ms 50]     one line for the shell: rps p50_ms p99_ms ok pass
    metric  METRICS.txt NAME           a sample's value from Prometheus text (sum of label sets)
    capacity RUN_DIR LANG              our capacity measured in that run (req/s), for the stress runs
    record  OUT KEY=VALUE...           one JSON object (the shell's records of a step or a run)
    report  RUN_DIR                    results.json beside the raw files, the markdown on stdout

The report's summaries are serve_bench_results.py's, its markdown serve_bench_report.py's (`report`
imports them).
Latencies are oha's: from the request's intended start (`--latency-correction` at a fixed rate)
to the end of its answer; where tcpdump ran, also the wire's (scripts/wire_latency.py). Nothing
here needs more than the standard library.
"""

import argparse
import csv
import datetime
import json
import os
import platform
import random
import re
import sqlite3
import statistics
import subprocess
import sys
from pathlib import Path

csv.field_size_limit(10**7)


# ---------------------------------------------------------------------------------------------
# texts


def clean(text):
    return " ".join(text.split())


def read_corpus(lang, sst2, waimai):
    if lang == "en":
        with open(sst2, encoding="utf-8", newline="") as f:
            rows = csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
            texts = [clean(r["sentence"]) for r in rows]
    else:
        with open(waimai, encoding="utf-8-sig", newline="") as f:
            texts = [clean(r["review"]) for r in csv.DictReader(f)]
    return list(dict.fromkeys(t for t in texts if t))  # distinct, in file order


def texts(args):
    """texts-LANG.txt (predict --file: N texts, the corpus cycled if shorter), bodies-LANG.jsonl
    (oha -Z: one {"inputs": text} per line, every distinct text, shuffled), texts-LANG.json."""
    corpus = read_corpus(args.lang, args.sst2, args.waimai)
    rng = random.Random(args.seed)
    shuffled = corpus[:]
    rng.shuffle(shuffled)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    file_texts = [shuffled[i % len(shuffled)] for i in range(args.n)]
    (out / f"texts-{args.lang}.txt").write_text("".join(t + "\n" for t in file_texts), encoding="utf-8")
    with open(out / f"bodies-{args.lang}.jsonl", "w", encoding="utf-8") as f:
        for t in shuffled[: args.bodies]:
            f.write(json.dumps({"inputs": t}, ensure_ascii=False) + "\n")
    lengths = sorted(len(t) for t in shuffled[: args.bodies])
    median_text = sorted(shuffled[: args.bodies], key=len)[len(lengths) // 2]
    stats = dict(lang=args.lang, corpus_texts=len(corpus), bodies=min(args.bodies, len(shuffled)),
                 file_texts=args.n, chars_mean=round(statistics.mean(lengths), 1),
                 chars_p50=lengths[len(lengths) // 2], chars_p99=lengths[int(len(lengths) * 0.99)],
                 chars_max=lengths[-1], median_text=median_text)
    (out / f"texts-{args.lang}.json").write_text(json.dumps(stats, ensure_ascii=False) + "\n", encoding="utf-8")
    print(median_text)


# ---------------------------------------------------------------------------------------------
# the machine, the versions


def cpu_model():
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def version_of(package):
    try:
        from importlib.metadata import version

        return version(package)
    except Exception:
        return None


def init(args):
    oha = subprocess.run([args.oha, "--version"], capture_output=True, text=True).stdout.strip()
    run = dict(
        date=datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        command=args.command,
        cpu=cpu_model(),
        cores=os.cpu_count(),
        memory_gib=round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        threads=args.threads,
        server_cpus=args.server_cpus,
        load_cpus=args.load_cpus,
        placement=args.placement,
        oha_nice=args.oha_nice,
        quick=args.quick,
        step_seconds=args.step_seconds,
        p99_limit_ms=args.p99_ms,
        versions=dict(oha=oha.removeprefix("oha ").strip(), torch=version_of("torch"), fastapi=version_of("fastapi"),
                      uvicorn=version_of("uvicorn"), uvloop=version_of("uvloop"), httptools=version_of("httptools"),
                      python=platform.python_version(), lstm_tch=args.lstm_tch_version, git=args.git),
    )
    Path(args.run_dir).mkdir(parents=True, exist_ok=True)
    (Path(args.run_dir) / "run.json").write_text(json.dumps(run, indent=1) + "\n")


# ---------------------------------------------------------------------------------------------
# oha's figures

DEADLINE = "aborted due to deadline"
# Errors where no connection was made: the request never reached a server (a clean refusal).
REFUSED = re.compile(r"refused|os error 111", re.I)


def oha_figures(path, p99_limit_ms=None):
    """The figures of one oha --output-format json run."""
    d = json.loads(Path(path).read_text())
    percentiles = d.get("latencyPercentiles") or {}
    ms = lambda v: None if v is None else v * 1e3  # noqa: E731
    statuses = {int(k): v for k, v in (d.get("statusCodeDistribution") or {}).items()}
    errors = {k: v for k, v in (d.get("errorDistribution") or {}).items() if k != DEADLINE}
    answered = sum(statuses.values())
    ok = statuses.get(200, 0)
    fig = dict(
        rps=d["summary"]["requestsPerSec"], elapsed_s=d["summary"]["total"], answered=answered, ok=ok,
        statuses=statuses, errors=errors, aborted_at_deadline=(d.get("errorDistribution") or {}).get(DEADLINE, 0),
        p50_ms=ms(percentiles.get("p50")), p90_ms=ms(percentiles.get("p90")), p99_ms=ms(percentiles.get("p99")),
        p999_ms=ms(percentiles.get("p99.9")), max_ms=ms(d["summary"].get("slowest")),
        mean_ms=ms(d["summary"].get("average")),
    )
    # rps counts every answer over the whole run; the throughput of 200s alone:
    fig["ok_rps"] = ok / fig["elapsed_s"] if fig["elapsed_s"] else 0.0
    clean_run = answered > 0 and ok == answered and not errors
    fig["passes"] = bool(clean_run and p99_limit_ms is not None and fig["p99_ms"] is not None
                         and fig["p99_ms"] <= p99_limit_ms)
    return fig


def brief(args):
    f = oha_figures(args.file, args.p99_ms)
    errs = sum(f["errors"].values()) + (f["answered"] - f["ok"])
    print(f"{f['ok_rps']:.1f} {f['p50_ms'] or 0:.2f} {f['p99_ms'] or 0:.2f} {errs} {1 if f['passes'] else 0}")


def classify_errors(errors):
    """(clean refusals: no connection made, the other errors) among oha's error counts."""
    refused = sum(v for k, v in errors.items() if REFUSED.search(k))
    return refused, sum(errors.values()) - refused


def sqlite_rows(db):
    """(start, start_latency_correction, end, status) per request of an oha --output-format sqlite db."""
    if not Path(db).exists():
        return []
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT start, start_latency_correction, end, status FROM oha").fetchall()


def pct(values, q):
    """The q-quantile of values (the nearest rank), None without any."""
    if not values:
        return None
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


# ---------------------------------------------------------------------------------------------
# Prometheus text


def metric_value(text, name):
    """The sum of the samples named `name` (`name{label="value",...}`: of those with these labels
    among theirs), None when there is none."""
    name, _, want = name.partition("{")
    want = [w for w in want.rstrip("}").split(",") if w]
    total, seen = 0.0, False
    for line in text.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        m = re.match(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)", line)
        if m and m.group(1) == name and all(w in (m.group(2) or "") for w in want):
            total += float(m.group(3))
            seen = True
    return total if seen else None


def batch_metric(text):
    """The batch-size histogram's name in this server's /metrics (lstm_tch_batch_size, or another
    `lstm_tch_batch_*` histogram of texts)."""
    names = re.findall(r"^# TYPE (lstm_tch_batch_\w+) histogram", text, re.M)
    return names[0] if names else None


def batch_delta(before, after):
    """(mean batch size, batches) between two /metrics texts."""
    b, a = Path(before).read_text(), Path(after).read_text()
    name = batch_metric(a)
    if not name:
        return None, None
    count = (metric_value(a, name + "_count") or 0) - (metric_value(b, name + "_count") or 0)
    total = (metric_value(a, name + "_sum") or 0) - (metric_value(b, name + "_sum") or 0)
    return (total / count if count else None), count


def metric(args):
    v = metric_value(Path(args.file).read_text(), args.name)
    print("" if v is None else f"{v:g}")


# ---------------------------------------------------------------------------------------------
# the run directory's other raw files; our capacity


def read_json(path, default=None):
    p = Path(path)
    return json.loads(p.read_text()) if p.exists() else default


def times_p50(path):
    """The median of a timing file's times_ms (`bench predict`, serve_peer.py --time-forward), or None."""
    d = read_json(path)
    return statistics.median(d["times_ms"]) if d else None


def samples(path):
    """(t, rss_kib, fds) rows of a sampler's TSV."""
    rows = []
    if Path(path).exists():
        for line in Path(path).read_text().splitlines():
            parts = line.split()
            if len(parts) == 3 and all(p.replace(".", "").isdigit() for p in parts):
                rows.append((float(parts[0]), int(parts[1]), int(parts[2])))
    return rows


def steps_of(server_dir):
    """Every load step a server ran, in order, with its figures (`wire`: its latencies on the
    wire, scripts/wire_latency.py's, where captured)."""
    steps = []
    for desc in sorted(Path(server_dir).glob("*.step.json")):
        step = json.loads(desc.read_text())
        stem = str(desc)[: -len(".step.json")]
        if not Path(stem + ".oha.json").exists():
            continue
        step.update(oha_figures(stem + ".oha.json", step.get("p99_limit_ms")))
        if Path(stem + ".metrics1.txt").exists():
            step["mean_batch"], step["batches"] = batch_delta(stem + ".metrics0.txt", stem + ".metrics1.txt")
        step["wire"] = read_json(stem + ".wire.json")
        steps.append(step)
    return steps


def summarize_server(server_dir, p99_limit):
    """A server's load steps: capacity (the best passing fixed rate), the sweep's ceiling, the fixed
    rates, the mean batch size, errors, peak RSS."""
    steps = steps_of(server_dir)
    measured = [s for s in steps if s["kind"] != "warmup"]
    sweep = [s for s in measured if s["kind"] == "sweep"]
    rates = [s for s in measured if s["kind"] in ("search", "rate")]
    passing = [s for s in rates if s["passes"] and s["ok_rps"] >= 0.95 * s["rate"]]
    best = max(passing, key=lambda s: s["ok_rps"], default=None)
    ceiling = max(sweep, key=lambda s: s["ok_rps"], default=None)
    batches = [s for s in measured if s.get("batches")]
    total_batches = sum(s["batches"] for s in batches)
    mean_batch = (sum(s["mean_batch"] * s["batches"] for s in batches) / total_batches) if total_batches else None
    rss = read_json(Path(server_dir) / "rss.json", {})
    return dict(
        steps=steps,
        capacity_rps=best["ok_rps"] if best else None, capacity_rate=best["rate"] if best else None,
        capacity_p99_ms=best["p99_ms"] if best else None,
        capacity_mean_batch=best.get("mean_batch") if best else None,
        ceiling_rps=ceiling["ok_rps"] if ceiling else None,
        ceiling_concurrency=ceiling["concurrency"] if ceiling else None,
        fixed={s["label"]: s for s in rates if s["kind"] == "rate"},
        mean_batch=mean_batch,
        errors=sum(sum(s["errors"].values()) + s["answered"] - s["ok"] for s in measured),
        requests=sum(s["answered"] + sum(s["errors"].values()) for s in measured),
        vmhwm_mib=rss.get("vmhwm_kib", 0) / 1024 or None,
        p99_limit_ms=p99_limit,
    )


# ---------------------------------------------------------------------------------------------
# the subcommands that write


def report(args):
    """results.json and report.md in RUN_DIR (serve_bench_report.py), the markdown on stdout."""
    import serve_bench_report  # here, not at the top: it imports this module's readers

    print(serve_bench_report.write_report(Path(args.run_dir)), end="")


def capacity(args):
    """Our capacity (req/s at p99 within the limit) for LANG measured in RUN_DIR, or nothing."""
    ours = Path(args.run_dir, "load", args.lang, "ours")
    run = read_json(Path(args.run_dir, "run.json"), {})
    v = summarize_server(ours, run.get("p99_limit_ms", 50))["capacity_rps"] if ours.is_dir() else None
    print("" if v is None else f"{v:.0f}")


def record(args):
    """KEY=VALUE pairs as one JSON object in OUT: numbers and null as such, the rest as strings."""
    def value(v):
        if v == "null":
            return None
        try:
            return int(v)
        except ValueError:
            try:
                return float(v)
            except ValueError:
                return v
    obj = {k: value(v) for k, _, v in (pair.partition("=") for pair in args.pairs)}
    Path(args.out).write_text(json.dumps(obj, ensure_ascii=False) + "\n", encoding="utf-8")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    t = sub.add_parser("texts")
    t.add_argument("--lang", choices=["en", "zh"], required=True)
    t.add_argument("--out", required=True)
    t.add_argument("--sst2", default="../shared/data/sst2/train.tsv")
    t.add_argument("--waimai", default="../shared/data/waimai_10k.csv")
    t.add_argument("--n", type=int, default=20000, help="texts in predict's file")
    t.add_argument("--bodies", type=int, default=20000, help="request bodies (distinct texts)")
    t.add_argument("--seed", type=int, default=0)
    t.set_defaults(run=texts)
    i = sub.add_parser("init")
    i.add_argument("run_dir")
    for flag in ("--oha", "--command", "--server-cpus", "--load-cpus", "--lstm-tch-version", "--git"):
        i.add_argument(flag, required=True)
    i.add_argument("--placement", choices=["shared", "split"], required=True,
                   help="shared: servers and oha on every CPU; split: servers on CPUs 0..T-1, oha on the others")
    i.add_argument("--oha-nice", type=int, default=0, help="oha's niceness (the servers run at 0)")
    i.add_argument("--threads", type=int, required=True)
    i.add_argument("--step-seconds", type=float, required=True)
    i.add_argument("--p99-ms", type=float, required=True)
    i.add_argument("--quick", action="store_true")
    i.set_defaults(run=init)
    b = sub.add_parser("brief")
    b.add_argument("file")
    b.add_argument("--p99-ms", type=float, default=50)
    b.set_defaults(run=brief)
    m = sub.add_parser("metric")
    m.add_argument("file")
    m.add_argument("name")
    m.set_defaults(run=metric)
    r = sub.add_parser("report")
    r.add_argument("run_dir")
    r.set_defaults(run=report)
    c = sub.add_parser("capacity")
    c.add_argument("run_dir")
    c.add_argument("lang")
    c.set_defaults(run=capacity)
    w = sub.add_parser("record")
    w.add_argument("out")
    w.add_argument("pairs", nargs="*", metavar="KEY=VALUE")
    w.set_defaults(run=record)
    args = p.parse_args()
    args.run(args)


if __name__ == "__main__":
    sys.exit(main())
