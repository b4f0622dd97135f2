#!/usr/bin/env python3
"""Request latencies on the wire: an HTTP/1.1 server's answer times from a packet capture.

Usage: scripts/wire_latency.py CAPTURE.pcap PORT [--slow-ms MS] [--burst-ms MS] [--dropped N]

A load generator on the machine it loads shares the CPUs with the server: when it does not run,
it sends late and timestamps answers late, and its latencies are its own scheduling as much as
the server's. The kernel's timestamps are not: a capture on the loopback interface (tcpdump -i lo
--time-stamp-precision=nano, data segments only; scripts/serve_bench.sh takes one) dates each
request when the client's write put it on the wire and each answer when the server's write did,
whoever ran next. A request starts at its first data segment from the client; it ends at the
server's first segment of an answer (`HTTP/1.x NNN`). Clients that do not pipeline (oha, curl,
browsers) send a connection's next request only after its answer, so each answer closes the
request open on its connection (the client's port).

Prints JSON: per status, the count and latency quantiles in ms and how many took over --slow-ms;
requests still unanswered when the capture ended; and, for the answers over --slow-ms, the rate
at which requests arrived in the --burst-ms before each (a burst from the client, or not)
against the same for the others; and --dropped, the packets tcpdump said the kernel dropped (a
capture that lost some may pair a request with a later answer).
"""
import argparse
import bisect
import json
import mmap
import struct
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from serve_bench import pct  # noqa: E402  (nearest rank, as the report takes oha's figures)

# Bytes before the IP header, by pcap link type: Ethernet (loopback on Linux), Linux cooked v1
# and v2, BSD loopback, raw IP (101 and 12).
LINK_HEADER = {1: 14, 113: 16, 276: 20, 0: 4, 101: 0, 12: 0}
PCAP_MICRO, PCAP_NANO = 0xA1B2C3D4, 0xA1B23C4D


def segments(path):
    """Yields (time in ns, source port, destination port, first 12 bytes of payload) for each
    IPv4 TCP segment of a little-endian pcap file."""
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as buf:
        if len(buf) < 24:
            raise SystemExit(f"{path}: not a pcap file (shorter than its header)")
        magic, = struct.unpack_from("<I", buf, 0)
        if magic not in (PCAP_MICRO, PCAP_NANO):
            raise SystemExit(f"{path}: not a little-endian pcap file (magic {magic:#x})")
        scale = 1000 if magic == PCAP_MICRO else 1
        linktype, = struct.unpack_from("<I", buf, 20)
        link = LINK_HEADER.get(linktype & 0xFFFF)
        if link is None:
            raise SystemExit(f"{path}: link type {linktype} is not handled")
        at, end = 24, len(buf)
        while at + 16 <= end:
            sec, frac, captured, _ = struct.unpack_from("<IIII", buf, at)
            ip, at = at + 16 + link, at + 16 + captured
            if at > end or ip + 20 > at or buf[ip] >> 4 != 4 or buf[ip + 9] != 6:
                continue  # cut short, or not IPv4 TCP
            tcp = ip + (buf[ip] & 0x0F) * 4
            if tcp + 20 > at:
                continue
            source, destination = struct.unpack_from(">HH", buf, tcp)
            payload = tcp + (buf[tcp + 12] >> 4) * 4
            yield sec * 1_000_000_000 + frac * scale, source, destination, bytes(buf[payload:min(payload + 12, at)])


def requests(path, port):
    """(request start ns, latency ms, status) of every answered request to `port`, in the order
    answered; and the start (ns) of each request still unanswered at the end of the capture."""
    open_requests, answered = {}, []
    for ns, source, destination, head in segments(path):
        if destination == port and head:
            open_requests.setdefault(source, ns)
        elif source == port and head.startswith(b"HTTP/1.") and destination in open_requests:
            started = open_requests.pop(destination)
            answered.append((started, (ns - started) / 1e6, head[9:12].decode("ascii", "replace")))
    return answered, list(open_requests.values())


def summary(path, port, slow_ms=10.0, burst_ms=50.0, dropped=0):
    """The JSON object the module describes."""
    answered, unanswered = requests(path, port)
    starts = sorted([started for started, _, _ in answered] + unanswered)
    window = burst_ms * 1e6

    def arrivals_per_second(started):
        n = bisect.bisect_right(starts, started) - bisect.bisect_left(starts, started - window)
        return n / (burst_ms / 1e3)

    # per status: the latencies; the arrival rate before each answer over slow_ms, and before
    # every 50th of the others
    by_status, rates, seen = {}, {}, {}
    for started, ms, status in answered:
        by_status.setdefault(status, []).append(ms)
        slow = ms > slow_ms
        seen[status, slow] = seen.get((status, slow), 0) + 1
        if slow or seen[status, slow] % 50 == 1:
            rates.setdefault((status, slow), []).append(arrivals_per_second(started))
    out = {"slow_ms": slow_ms, "burst_ms": burst_ms, "packets_dropped": dropped,
           "unanswered_at_end": len(unanswered), "by_status": {}}
    for status, values in sorted(by_status.items()):
        values.sort()
        out["by_status"][status] = {
            "count": len(values),
            "p50_ms": pct(values, 0.50),
            "p99_ms": pct(values, 0.99),
            "max_ms": values[-1],
            "over_slow_ms": len(values) - bisect.bisect_right(values, slow_ms),
            "arrivals_per_s_before_over": pct(rates.get((status, True), []), 0.5),
            "arrivals_per_s_before_within": pct(rates.get((status, False), []), 0.5),
        }
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("capture")
    parser.add_argument("port", type=int)
    parser.add_argument("--slow-ms", type=float, default=10.0)
    parser.add_argument("--burst-ms", type=float, default=50.0)
    parser.add_argument("--dropped", type=int, default=0, help="packets the kernel dropped (tcpdump's count)")
    args = parser.parse_args()
    json.dump(summary(args.capture, args.port, args.slow_ms, args.burst_ms, args.dropped), sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()
