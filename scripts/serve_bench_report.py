"""scripts/serve_bench.sh's report: a run directory's summaries and its markdown.

serve_bench.py's `report RUN_DIR` calls write_report: results.json and report.md in the run
directory, the markdown returned. The summaries, of the raw files as serve_bench.py reads them:
per language and server the load runs (capacity, sweep, in-process forward, `predict --file`, the
servers' agreement), then the overload, soak, shutdown and reloads. The markdown: one function per
section, then the footer (machine, placement, versions, command).
"""

import json
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from serve_bench import (REFUSED, classify_errors, metric_value, oha_figures, pct, read_json,  # noqa: E402
                         samples, sqlite_rows, summarize_server, times_p50)


# ---------------------------------------------------------------------------------------------
# the summaries (results.json)


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
        after=after,
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


def fmt(v, digits=1, unit=""):
    """A figure for the markdown: thousands separated, floats to `digits`, "—" for None."""
    if v is None:
        return "—"
    return (f"{v:,.{digits}f}" if isinstance(v, float) else f"{v:,}") + unit


def pp(fig):
    """'p50 / p99 ms' of a step."""
    if not fig:
        return "—"
    errors = fig["answered"] - fig["ok"] + sum(fig["errors"].values())
    note = f" ({errors} errors)" if errors else ""
    short = "" if not fig.get("rate") or fig["ok_rps"] >= 0.95 * fig["rate"] else f" (served {fig['ok_rps']:,.0f}/s)"
    return f"{fmt(fig['p50_ms'], 2)} / {fmt(fig['p99_ms'], 2)}{short}{note}"


def verdict(ok):
    return "—" if ok is None else ("met" if ok else "MISSED")


# ---------------------------------------------------------------------------------------------
# the markdown, one function per section (each a list of lines)

SERVER_NAMES = {"ours": "lstm-tch serve", "peer": "FastAPI + PyTorch"}


def load_columns(load):
    """The table's columns: (language, "ours" | "peer") for every server measured."""
    return [(lang, side) for lang in load for side in ("ours", "peer") if side in load[lang]["servers"]]


def fixed_rate_labels(load, cols):
    """Every fixed-rate step's label ("10 req/s", ...), in the order first measured."""
    return list(dict.fromkeys(label for lang, side in cols for label in load[lang]["servers"][side]["fixed"]))


def over_inproc_cell(lang_load, server, side):
    """The 10 req/s p50 over the in-process forward back to back (ours with its verdict: at most
    +1 ms), and over the same forward one every 100 ms (what the server adds to a model as cold)."""
    fig = server["fixed"].get("10 req/s")
    back, paced = lang_load["inproc_p50_ms"].get(side), lang_load["inproc_paced_p50_ms"].get(side)
    if not fig or fig["p50_ms"] is None or back is None:
        return "—"
    extra = fig["p50_ms"] - back
    cell = f"{extra:+.2f} ms" + (f" ({verdict(extra <= 1.0)}: ≤ +1 ms)" if side == "ours" else "")
    return cell + (f" / {fig['p50_ms'] - paced:+.2f} ms" if paced is not None else "")


def inproc_cell(lang_load, server, side):
    """One text's forward in process, p50 ms: back to back, and one every 100 ms."""
    back, paced = lang_load["inproc_p50_ms"].get(side), lang_load["inproc_paced_p50_ms"].get(side)
    return fmt(back, 3) + (f" / {fmt(paced, 3)}" if paced is not None else "")


def load_rows(run, load, cols):
    """The table's rows: (label, cell(the language's figures, the server's summary, "ours" | "peer"))."""
    limit = run.get("p99_limit_ms", 50)
    rows = [
        (f"capacity: best fixed rate with p99 ≤ {limit:g} ms, no error (req/s)",
         lambda lang_load, server, side: fmt(server["capacity_rps"], 0)
         + (f" (p99 {server['capacity_p99_ms']:.1f} ms)" if server["capacity_p99_ms"] else "")),
        ("most req/s in the concurrency sweep (at concurrency)",
         lambda lang_load, server, side: f"{fmt(server['ceiling_rps'], 0)} (c={server['ceiling_concurrency']})"),
    ]
    rows += [(f"p50 / p99 ms at {label}", lambda lang_load, server, side, label=label: pp(server["fixed"].get(label)))
             for label in fixed_rate_labels(load, cols)]
    rows += [
        ("mean batch size, all steps (at capacity)",
         lambda lang_load, server, side: "1 (no batching)" if side == "peer"
         else f"{fmt(server['mean_batch'], 2)} ({fmt(server['capacity_mean_batch'], 2)})"),
        ("peak RSS (VmHWM), MiB", lambda lang_load, server, side: fmt(server["vmhwm_mib"], 0)),
        ("one text's forward in process, p50 ms: back to back / one every 100 ms", inproc_cell),
        ("10 req/s p50 over the in-process forward: back to back / one every 100 ms", over_inproc_cell),
        ("`predict --file`, 1 thread (texts/s)",
         lambda lang_load, server, side: fmt(lang_load["predict_file_texts_per_s"], 0) if side == "ours" else ""),
        ("capacity / `predict --file`", capacity_ratio_cell),
        ("requests sent, errors (non-200 or no answer)",
         lambda lang_load, server, side: f"{server['requests']:,}, {server['errors']:,}"),
    ]
    return rows


def capacity_ratio_cell(lang_load, server, side):
    """Our capacity over `predict --file`'s texts/s (empty for the peer, or with either missing)."""
    per_s = lang_load["predict_file_texts_per_s"]
    return fmt(server["capacity_rps"] / per_s, 2) if side == "ours" and server["capacity_rps"] and per_s else ""


def load_table(run, load):
    """Both servers side by side per language: capacity, ceiling, fixed rates, batches, memory."""
    cols = load_columns(load)
    lines = ["| | " + " | ".join(f"{lang}: {SERVER_NAMES[side]}" for lang, side in cols) + " |",
             "|" + " --- |" * (len(cols) + 1)]
    for label, cell in load_rows(run, load, cols):
        lines.append(f"| {label} | "
                     + " | ".join(cell(load[lang], load[lang]["servers"][side], side) for lang, side in cols) + " |")
    return lines


def texts_notes(load):
    """One line per language: its bodies, the servers' agreement, its checkpoint's command."""
    lines = []
    for lang in load:
        texts = load[lang]["texts"] or {}
        agree = load[lang]["agreement"] or {}
        train = load[lang]["train"] or {}
        lines.append(f"- {lang}: {texts.get('bodies', '?'):,} distinct texts as bodies (of "
                     f"{texts.get('corpus_texts', '?'):,}; {texts.get('chars_mean', '?')} characters on average, "
                     f"p99 {texts.get('chars_p99', '?')}), drawn at random per request; the same labels from both "
                     f"servers on {agree.get('same_label', '?')}/{agree.get('texts', '?')} texts (largest score "
                     f"difference {fmt(agree.get('max_score_diff'), 4)}); checkpoint: `{train.get('command', '?')}`.")
    return lines


def sweep_table(load):
    """Every concurrency of the closed-loop sweep, per language and server."""
    lines = ["The sweep (closed loop, each connection sending its next request on the answer):", "",
             "| language | server | concurrency | req/s | p50 ms | p99 ms | mean batch |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for lang, side in load_columns(load):
        for step in load[lang]["servers"][side]["steps"]:
            if step["kind"] == "sweep":
                lines.append(f"| {lang} | {SERVER_NAMES[side]} | {step['concurrency']} | {fmt(step['ok_rps'], 0)} | "
                             f"{fmt(step['p50_ms'], 2)} | {fmt(step['p99_ms'], 2)} | {fmt(step.get('mean_batch'), 2)} |")
    return lines


def load_markdown(run, load):
    if not load:
        return []
    return (["Against FastAPI + PyTorch (scripts/serve_peer.py), each alone on the same CPUs; "
             "latencies from each request's intended start at a fixed rate:", ""]
            + load_table(run, load) + [""] + texts_notes(load) + [""] + sweep_table(load) + [""])


def met_within(value, limit):
    """The verdict of value ≤ limit ("—" without a value)."""
    return verdict(None if value is None else value <= limit)


def server_row(what, fig):
    """A table row of the server's own durations of `what` (server_seconds)."""
    if not fig:
        return f"| {what} by the server's own clock | no /metrics snapshots | | |"
    bound = "—" if fig["all_within_s"] is None else f"{fig['all_within_s'] * 1e3:g} ms"
    return (f"| {what} by the server's own clock (headers read → answer; /metrics) | {fig['within_10ms']:,} of "
            f"{fig['answers']:,} within 10 ms, all within {bound} | | |")


def overload_markdown(run, overload):
    if not overload:
        return []
    info = overload["info"]
    growth_pct = None if overload["rss_growth"] is None else 100 * overload["rss_growth"]
    lines = [f"Overload ({info.get('lang')}, lstm-tch serve): {fmt(overload['offered_rps'], 0)} req/s offered "
             f"(2 × capacity {fmt(info.get('capacity'), 0)}) for {info.get('seconds')} s over "
             f"{info.get('connections')} connections; latencies from each request's send to its answer, of the "
             f"requests sent after the first {overload['settle_s']:g} s (oha opening its connections):", "",
             "| | measured | target | |", "| --- | --- | --- | --- |",
             f"| refused (429), whole run | {overload['refused_429_all']:,} of {overload['requests']:,}; other "
             f"statuses {overload['other_statuses'] or 'none'}; no answer {sum(overload['errors'].values())} | | |",
             f"| 429 latency p50 / p99 / max | {fmt(overload['refused_p50_ms'], 2)} / "
             f"{fmt(overload['refused_p99_ms'], 2)} / {fmt(overload['refused_max_ms'], 2)} ms "
             f"({overload['refused_over_10ms']:,} over 10 ms) | every one ≤ 10 ms | "
             f"{met_within(overload['refused_max_ms'], 10)} |",
             f"| … of those over 10 ms, answered within {PAUSE_S * 1e3:g} ms after oha's result buffer doubled "
             f"(its thread paused; doublings from 2^{PAUSE_MIN_K} results: {overload['oha_pauses']}) | "
             f"{overload['refused_over_10ms_in_pauses']:,} of {overload['refused_over_10ms']:,} | | |",
             server_row("429s", overload["server_429"]),
             server_row("200s", overload["server_200"]),
             f"| accepted: req/s, p50 / p99 | {fmt(overload['accepted_rps'], 0)}, "
             f"{fmt(overload['accepted_p50_ms'], 1)} / {fmt(overload['accepted_p99_ms'], 1)} ms | p99 ≤ 100 ms | "
             f"{met_within(overload['accepted_p99_ms'], 100)} |",
             f"| RSS after warm-up (half rate, then 5 s at the overload's rate) → peak during | {fmt(overload['rss_warm_mib'], 0)} → "
             f"{fmt(overload['rss_peak_mib'], 0)} MiB ({fmt(growth_pct, 1)} %) | within 10 % | "
             f"{met_within(overload['rss_growth'], 0.10)} |"]
    after = overload["after"]
    if after:
        lines.append(f"| afterwards, {fmt(info.get('after_rate'), 0)} req/s for {info.get('after_seconds')} s: "
                     f"p50 / p99 | {pp(after)} ms | p99 ≤ {run.get('p99_limit_ms', 50):g} ms, no error | "
                     f"{verdict(after['passes'])} |")
    return lines + [""]


def soak_markdown(soak):
    if not soak:
        return []
    info, fig = soak["info"], soak["load"] or {}
    errors = (fig.get("answered", 0) - fig.get("ok", 0) + sum((fig.get("errors") or {}).values())) if fig else None
    spread_pct = None if soak["rss_spread"] is None else 100 * soak["rss_spread"]
    return [f"Soak ({info.get('lang')}, lstm-tch serve): {fmt(info.get('rate'), 0)} req/s (half capacity) for "
            f"{info.get('seconds')} s, {soak['samples']} samples every {info.get('interval')} s:", "",
            "| | measured | target | |", "| --- | --- | --- | --- |",
            f"| RSS first → min … max | {fmt(soak['rss_first_mib'], 0)} → {fmt(soak['rss_min_mib'], 0)} … "
            f"{fmt(soak['rss_max_mib'], 0)} MiB (spread {fmt(spread_pct, 1)} %) "
            f"| within 10 % | {met_within(soak['rss_spread'], 0.10)} |",
            f"| open file descriptors min … max | {fmt(soak['fds_min'])} … {fmt(soak['fds_max'])} | within 10 % | "
            f"{met_within(soak['fds_spread'], 0.10)} |",
            f"| requests, errors; p50 / p99 | {fmt(fig.get('answered'))}, {fmt(errors)}; {pp(fig) if fig else '—'} ms | "
            f"no error | {verdict(None if errors is None else errors == 0)} |", ""]


def shutdown_markdown(shutdown):
    if not shutdown:
        return []
    first = next(iter(shutdown.values()))["info"]
    lines = [f"Shutdown ({first.get('lang')}, lstm-tch serve): SIGTERM after {first.get('before_seconds')} s of "
             f"{fmt(first.get('rate'), 0)} req/s over {first.get('connections')} connections; with a new "
             f"connection per request every failure names its request (refused before a connection, or lost "
             f"after one); over keep-alive connections a request written as the server closes an idle "
             f"connection fails unread (a client retries it):", "",
             "| connections | answered 200 | clean refusals: connection refused / 503 | other statuses | "
             "failed after connecting | exit status, seconds after SIGTERM | target: none lost, exit 0 |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for mode, counts in shutdown.items():
        info = counts["info"]
        clean = counts["lost"] == 0 and not counts["other_statuses"] and info.get("exit_status") == 0
        lines.append(f"| {mode} | {counts['ok']:,} | {counts['connection_refused']:,} / {counts['refused_503']:,} | "
                     f"{counts['other_statuses'] or 'none'} | {counts['lost']:,} {counts['lost_detail'] or ''} | "
                     f"{info.get('exit_status')}, {fmt(info.get('exit_seconds'), 2)} | {verdict(clean)} |")
    return lines + [""]


def reload_markdown(reload):
    if not reload:
        return []
    info = reload["info"]
    if info.get("skipped"):
        return [f"Reload: skipped ({info['skipped']}).", ""]
    fig = reload["load"] or {}
    ok = reload["reload_statuses"].get("200", 0)
    hups = reload["reload_statuses"].get("SIGHUP", 0)
    posts = sum(reload["reload_statuses"].values()) - hups
    clean = reload["load_errors"] == 0 and ok == posts and posts > 0 and info.get("metrics_ok") == posts + hups
    return [f"Reload ({info.get('lang')}, lstm-tch serve): {posts + hups} reloads ({info.get('how')}) during "
            f"{info.get('seconds')} s of {fmt(info.get('rate'), 0)} req/s:", "",
            "| POSTs answered 200 | SIGHUPs | reloads counted ok in /metrics | requests, errors; p50 / p99 | "
            "target: zero errors, every reload ok | |",
            "| --- | --- | --- | --- | --- | --- |",
            f"| {ok} of {posts} | {hups} | {fmt(info.get('metrics_ok'))} | {fmt(fig.get('answered'))}, "
            f"{fmt(reload['load_errors'])}; {pp(fig) if fig else '—'} ms | | {verdict(clean)} |", ""]


def placement_text(run):
    """Where the servers and oha ran. shared: every process on every CPU, the thread counts pinned
    (serve_bench.sh gives oha one worker thread); split (and runs recorded before `placement`):
    the CPUs each was pinned to with taskset."""
    nice = f"; oha at nice {run['oha_nice']}, the servers started at 0" if run.get("oha_nice") else ""
    if run.get("placement") == "shared":
        return (f"servers and oha share CPU(s) {run['server_cpus']} (no pinning); thread counts pinned: "
                f"libtorch {run['threads']} per server, oha 1 worker thread{nice}")
    return f"servers pinned to CPU(s) {run['server_cpus']} (`taskset`), oha to CPU(s) {run['load_cpus']}{nice}"


def footer_markdown(run):
    v = run["versions"]
    cores = f"{run['cores']} cores" if run.get("cores") else ""
    return [f"Measured {run['date'][:10]} on {run['cpu']} ({cores}, {run['memory_gib']} GiB), "
            f"{run['threads']} thread(s) per server, release build: {placement_text(run)}; oha {v['oha']}, torch "
            f"{v['torch']}, fastapi {v['fastapi']}, uvicorn {v['uvicorn']} (uvloop {v['uvloop']}, httptools "
            f"{v['httptools']}), Python {v['python']}, lstm-tch {v['lstm_tch']} ({v['git']})"
            f"{'; QUICK run (short steps)' if run.get('quick') else ''}: `{run['command']}`."]


def markdown(res):
    run = res["run"]
    lines = [f"### `lstm-tch serve` under load ({run['date'][:10]})", ""]
    lines += load_markdown(run, res.get("load") or {})
    lines += overload_markdown(run, res.get("overload"))
    lines += soak_markdown(res.get("soak"))
    lines += shutdown_markdown(res.get("shutdown"))
    lines += reload_markdown(res.get("reload"))
    lines += footer_markdown(run)
    return "\n".join(lines) + "\n"


def write_report(run_dir):
    """results.json and report.md in RUN_DIR, from its raw files; the markdown returned."""
    run = read_json(run_dir / "run.json")
    res = dict(run=run)
    if (run_dir / "load").exists():
        res["load"] = load_section(run_dir, run)
    # a stress run's section once it has finished (its last file written)
    for name, fn, done in (("overload", overload_section, "overload.json"), ("soak", soak_section, "soak.json"),
                           ("shutdown", shutdown_section, "new-connections.json"),
                           ("reload", reload_section, "reload.json")):
        if (run_dir / name / done).exists():
            res[name] = fn(run_dir / name)
    (run_dir / "results.json").write_text(json.dumps(res, indent=1, ensure_ascii=False, default=str) + "\n")
    text = markdown(res)
    (run_dir / "report.md").write_text(text, encoding="utf-8")
    return text
