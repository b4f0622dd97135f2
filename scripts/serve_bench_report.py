"""scripts/serve_bench.sh's report: a run directory's results (serve_bench_results.py) and their
markdown.

serve_bench.py's `report RUN_DIR` calls write_report: results.json and report.md in the run
directory, the markdown returned: one function per section, then the footer (machine,
placement, versions, command).
"""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from serve_bench_results import PAUSE_MIN_K, PAUSE_S, results  # noqa: E402


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


def wire_200(server, label="10 req/s"):
    """The 200s' latencies on the wire at a fixed rate (scripts/wire_latency.py), or None."""
    wire = (server["fixed"].get(label) or {}).get("wire")
    return wire["by_status"].get("200") if wire else None


def wire_cell(lang_load, server, side):
    """p50 / p99 ms at 10 req/s on the wire."""
    fig = wire_200(server)
    return f"{fmt(fig['p50_ms'], 2)} / {fmt(fig['p99_ms'], 2)}" if fig else "—"


def wire_over_inproc_cell(lang_load, server, side):
    """The 10 req/s p50 on the wire over the in-process forward back to back (ours: its verdict)."""
    fig, back = wire_200(server), lang_load["inproc_p50_ms"].get(side)
    if not fig or back is None:
        return "—"
    extra = fig["p50_ms"] - back
    return f"{extra:+.2f} ms" + (f" ({verdict(extra <= 1.0)}: ≤ +1 ms)" if side == "ours" else "")


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
    ]
    if any(wire_200(load[lang]["servers"][side]) for lang, side in cols):
        rows += [
            ("p50 / p99 ms at 10 req/s on the wire (kernel timestamps: the client's own time left out)", wire_cell),
            ("10 req/s p50 on the wire over the in-process forward back to back", wire_over_inproc_cell),
        ]
    rows += [
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


def wire_rows(wire):
    """The overload's 429s and 200s on the wire (scripts/wire_latency.py): none without a capture."""
    if not wire:
        return []
    lines = []
    for status, target, limit in (("429", "every one ≤ 10 ms", None), ("200", "p99 ≤ 100 ms", 100)):
        fig = wire["by_status"].get(status)
        if not fig:
            continue
        slow = (f"{fig['over_slow_ms']:,} over {wire['slow_ms']:g} ms; requests came at {fmt(fig['arrivals_per_s_before_over'], 0)}/s "
                f"in the {wire['burst_ms']:g} ms before those, {fmt(fig['arrivals_per_s_before_within'], 0)}/s before "
                "the others (medians)") if status == "429" else f"{fig['count']:,} answers"
        ok = fig["max_ms"] <= 10 if limit is None else fig["p99_ms"] <= limit
        lines.append(f"| {status}s on the wire (kernel timestamps, request sent → answer sent), p50 / p99 / max | "
                     f"{fmt(fig['p50_ms'], 2)} / {fmt(fig['p99_ms'], 2)} / {fmt(fig['max_ms'], 2)} ms ({slow}; "
                     f"{wire['packets_dropped']} packets dropped) | {target} | {verdict(ok)} |")
    return lines


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
             *wire_rows(overload.get("wire")),
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


def steal_markdown(steal):
    """What the hypervisor took from this virtual machine's CPUs during each command."""
    if not steal:
        return []
    taken = "; ".join(f"{command} {fmt(pc, 2)} %" for command, pc in steal.items())
    return [f"CPU time the hypervisor gave to other machines (steal, `/proc/stat`), of the CPUs' time: {taken}.",
            ""]


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
    lines += steal_markdown(res.get("steal"))
    lines += footer_markdown(run)
    return "\n".join(lines) + "\n"


def write_report(run_dir):
    """results.json and report.md in RUN_DIR, from its raw files; the markdown returned."""
    res = results(run_dir)
    (run_dir / "results.json").write_text(json.dumps(res, indent=1, ensure_ascii=False, default=str) + "\n")
    text = markdown(res)
    (run_dir / "report.md").write_text(text, encoding="utf-8")
    return text
