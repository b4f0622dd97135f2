"""scripts/serve_bench.sh's results: a run directory's raw files summarized (results.json).

Per language and server the load runs (capacity, sweep, in-process forward, `predict --file`, the
servers' agreement), then the overload, soak, shutdown and reloads: one function per section, of
the raw files as serve_bench.py reads them. serve_bench_report.py writes them and their markdown.
"""

import json
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from serve_bench import (REFUSED, classify_errors, metric_value, oha_figures, pct, read_json,  # noqa: E402
                         samples, sqlite_rows, summarize_server, times_p50)


def agreement(lang_dir):
    """Both servers' answers to the same bodies: same top label, largest score difference."""
    def read(name):
        p = lang_dir / f"answers-{name}.jsonl"
        return [json.loads(line) for line in p.read_text(encoding="utf-8").splitlines()] if p.exists() else []
    ours, peer = read("ours"), read("peer")
    pairs = [(a, b) for a, b in zip(ours, peer) if a and b]
    if not pairs:
        return None
    same = sum(a[0]["label"] == b[0]["label"] for a, b in pairs)
    diff = max(abs({x["label"]: x["score"] for x in a}[y["label"]] - y["score"]) for a, b in pairs for y in b)
    return dict(texts=len(pairs), same_label=same, max_score_diff=diff,
                unanswered=sum(1 for a, b in zip(ours, peer) if not a or not b))


def load_section(run_dir, run):
    out = {}
    for lang_dir in sorted(Path(run_dir, "load").glob("*")):
        lang = lang_dir.name
        servers = {s.name: summarize_server(s, run.get("p99_limit_ms", 50))
                   for s in sorted(lang_dir.iterdir()) if s.is_dir()}
        ceiling = read_json(lang_dir / "ceiling.json")
        out[lang] = dict(
            servers=servers, texts=read_json(lang_dir / "texts.json"), train=read_json(lang_dir / "train.json"),
            agreement=agreement(lang_dir),
            predict_file=ceiling,
            predict_file_texts_per_s=(ceiling["texts"] / ceiling["seconds"]) if ceiling else None,
            inproc_p50_ms={k: times_p50(lang_dir / f"inproc-{k}.json") for k in ("ours", "peer")},
            inproc_paced_p50_ms={k: times_p50(lang_dir / f"inproc-{k}-paced.json") for k in ("ours", "peer")},
        )
    return out


# The overload's latencies leave out the requests sent in its first second, while oha opens its
# 1,024 connections (their set-up, not the server's answer, is then the time).
SETTLE_S = 1.0


# oha keeps every result in one buffer that doubles when full (its channel's queue); the copy at
# 2^k results (k >= 16: 8 MB and more) stops its one thread for milliseconds, up to about 70 at
# 2^20, and every answer that arrives meanwhile is timed late (when the pause ends). PAUSE_S
# after the 2^k-th answer is counted as such a pause.
PAUSE_MIN_K, PAUSE_S = 16, 0.25


def oha_pauses(rows):
    """The end times of the 2^k-th answers (k >= PAUSE_MIN_K) of oha's run `rows`."""
    ends = sorted(end for _, _, end, _ in rows)
    return [ends[(1 << k) - 1] for k in range(PAUSE_MIN_K, 64) if (1 << k) <= len(ends)]


def in_pause(end, pauses):
    return any(0 <= end - p <= PAUSE_S for p in pauses)


def server_seconds(before, after, status):
    """The server's own /predict durations of `status` between two /metrics snapshots: (answers,
    answers within 10 ms, the smallest bucket bound holding them all in seconds), or None."""
    name = "lstm_tch_request_duration_seconds"
    labels = f'route="/predict",status="{status}"'
    delta = lambda n: (metric_value(after, n) or 0) - (metric_value(before, n) or 0)  # noqa: E731
    total = delta(f"{name}_count{{{labels}}}")
    if not total:
        return None
    # the histogram's bucket bounds, as the server wrote them
    bounds = sorted({float(le) for le in re.findall(rf'^{name}_bucket{{.*?le="([0-9.e+-]+)"', after, re.M)})
    within = {b: delta(f'{name}_bucket{{{labels},le="{b}"}}') for b in bounds}
    slowest = next((b for b in bounds if within[b] >= total), None)
    return dict(answers=int(total), within_10ms=int(within.get(0.01, 0)), all_within_s=slowest)


def overload_section(d):
    info = read_json(d / "overload.json", {})
    all_rows = sqlite_rows(d / "overload.db")
    rows = [r for r in all_rows if r[0] >= SETTLE_S]
    # from the request's actual send to its answer: the server's time (with more connections than
    # the server admits, oha always has one free, so sends are not held back)
    refused = [(end - start) * 1e3 for start, _, end, status in rows if status == 429]
    accepted = [(end - start) * 1e3 for start, _, end, status in rows if status == 200]
    other = {}
    for *_, status in all_rows:
        if status not in (200, 429):
            other[status] = other.get(status, 0) + 1
    fig = oha_figures(d / "overload.oha.json")
    rss = samples(d / "samples.tsv")
    warm = info.get("rss_warm_kib")
    peak = max((r for _, r, _ in rss), default=None)
    after = oha_figures(d / "after.oha.json", info.get("p99_limit_ms", 50)) if (d / "after.oha.json").exists() else None
    seconds = fig["elapsed_s"] - SETTLE_S
    pauses = oha_pauses(all_rows)
    slow_refusals = [end for start, _, end, status in rows if status == 429 and (end - start) * 1e3 > 10]
    snapshots = [d / f"overload.metrics{i}.txt" for i in (0, 1)]
    metrics = [p.read_text() for p in snapshots] if all(p.exists() for p in snapshots) else None
    return dict(
        oha_pauses=len(pauses), refused_over_10ms_in_pauses=sum(in_pause(e, pauses) for e in slow_refusals),
        server_429=server_seconds(*metrics, 429) if metrics else None,
        server_200=server_seconds(*metrics, 200) if metrics else None,
        info=info, settle_s=SETTLE_S, requests=len(all_rows) + sum(fig["errors"].values()),
        refused_429_all=sum(1 for r in all_rows if r[3] == 429), accepted=len(accepted), refused_429=len(refused),
        other_statuses=other, errors=fig["errors"], offered_rps=info.get("rate"),
        refused_over_10ms=sum(1 for v in refused if v > 10), refused_p50_ms=pct(refused, 0.5),
        refused_p99_ms=pct(refused, 0.99), refused_max_ms=max(refused, default=None),
        accepted_p50_ms=pct(accepted, 0.5), accepted_p99_ms=pct(accepted, 0.99),
        accepted_rps=len(accepted) / seconds if seconds > 0 else None,
        rss_warm_mib=warm / 1024 if warm else None, rss_peak_mib=peak / 1024 if peak else None,
        rss_growth=(peak / warm - 1) if warm and peak else None,
        after=after, wire=read_json(d / "overload.wire.json"),
    )


def soak_section(d):
    info = read_json(d / "soak.json", {})
    rows = samples(d / "samples.tsv")
    fig = oha_figures(d / "soak.oha.json", info.get("p99_limit_ms", 50)) if (d / "soak.oha.json").exists() else None
    rss = [r for _, r, _ in rows]
    fds = [f for _, _, f in rows]
    # flat: the spread after the first sample (warm-up) within 10 % of that first sample
    spread = lambda v: (max(v) - min(v)) / v[0] if v and v[0] else None  # noqa: E731
    return dict(info=info, samples=len(rows), rss_first_mib=rss[0] / 1024 if rss else None,
                rss_min_mib=min(rss) / 1024 if rss else None, rss_max_mib=max(rss) / 1024 if rss else None,
                rss_spread=spread(rss), fds_min=min(fds, default=None), fds_max=max(fds, default=None),
                fds_spread=spread(fds), load=fig)


def shutdown_section(d):
    out = {}
    for mode in ("new-connections", "keep-alive"):
        if not (d / f"{mode}.json").exists():
            continue
        info = read_json(d / f"{mode}.json", {})
        fig = oha_figures(d / f"{mode}.oha.json")
        refused_connect, lost = classify_errors(fig["errors"])
        statuses = fig["statuses"]
        out[mode] = dict(info=info, answered=fig["answered"], ok=fig["ok"], connection_refused=refused_connect,
                         refused_503=statuses.get(503, 0),
                         other_statuses={k: v for k, v in statuses.items() if k not in (200, 503)},
                         lost=lost, lost_detail={k: v for k, v in fig["errors"].items() if not REFUSED.search(k)})
    return out


def reload_section(d):
    info = read_json(d / "reload.json", {})
    fig = oha_figures(d / "reload.oha.json", info.get("p99_limit_ms")) if (d / "reload.oha.json").exists() else None
    statuses = {}
    for line in (d / "reloads.txt").read_text().split() if (d / "reloads.txt").exists() else []:
        statuses[line] = statuses.get(line, 0) + 1
    return dict(info=info, reload_statuses=statuses, load=fig,
                load_errors=(sum(fig["errors"].values()) + fig["answered"] - fig["ok"]) if fig else None)


def steal_section(run_dir):
    """{command: % of the CPUs' time the hypervisor took (steal) while it ran}, from the
    /proc/stat lines serve_bench.sh writes to cpu.txt before and after each command."""
    marks, steal = {}, {}
    path = run_dir / "cpu.txt"
    for line in path.read_text().splitlines() if path.exists() else []:
        command, _, *ticks = line.split()
        ticks = [int(t) for t in ticks[:8]]  # user nice system idle iowait irq softirq steal
        if command in marks:
            before = marks.pop(command)
            total = sum(ticks) - sum(before)
            steal[command] = round(100 * (ticks[7] - before[7]) / total, 2) if total > 0 else None
        else:
            marks[command] = ticks
    return steal


def results(run_dir):
    """Every section a run directory holds, as results.json keeps them."""
    run = read_json(run_dir / "run.json")
    res = dict(run=run, steal=steal_section(run_dir))
    if (run_dir / "load").exists():
        res["load"] = load_section(run_dir, run)
    # a stress run's section once it has finished (its last file written)
    for name, fn, done in (("overload", overload_section, "overload.json"), ("soak", soak_section, "soak.json"),
                           ("shutdown", shutdown_section, "new-connections.json"),
                           ("reload", reload_section, "reload.json")):
        if (run_dir / name / done).exists():
            res[name] = fn(run_dir / name)
    return res
