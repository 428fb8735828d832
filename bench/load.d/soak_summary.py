#!/usr/bin/env python3
"""Markdown tables of a bench/soak run: memory and descriptors over time, and the clients' counts.

    soak_summary.py WORK_DIR WARMUP_MINUTES

Reads WORK_DIR/samples.jsonl (one line every 10 s), client-orca.jsonl, client-haproxy.jsonl
and ssh.jsonl. The slope is a least-squares line through the samples after the warm-up.
"""

import json
import os
import sys


def slope_per_hour(points):
    n = len(points)
    if n < 2:
        return None
    mx = sum(t for t, _ in points) / n
    my = sum(v for _, v in points) / n
    var = sum((t - mx) ** 2 for t, _ in points)
    if var == 0:
        return None
    return sum((t - mx) * (v - my) for t, v in points) / var * 3600


def last_line(path):
    if not os.path.exists(path):
        return None
    lines = [line for line in open(path) if line.strip()]
    return json.loads(lines[-1]) if lines else None


def main(work, warmup_min):
    samples = [json.loads(line) for line in open(os.path.join(work, "samples.jsonl"))]
    warm = [s for s in samples if s["t"] >= warmup_min * 60]
    minutes = samples[-1]["t"] / 60
    print(f"\n#### {minutes:.0f} minutes of steady load: memory and descriptors "
          f"({len(samples)} samples, slope after {warmup_min} min of warm-up)\n")
    print("| measure | first | after warm-up | last | max | slope per hour after warm-up |")
    print("|---|---|---|---|---|---|")
    for peer, label in (("orca", "Orca"), ("haproxy", "haproxy")):
        for key, unit, scale in (("rss_kib", "RSS, MiB", 1024), ("fds", "open descriptors", 1)):
            k = f"{peer}_{key}"
            vals = [s[k] / scale for s in samples]
            s = slope_per_hour([(x["t"], x[k] / scale) for x in warm])
            w = warm[0][k] / scale if warm else None
            f = (lambda v: f"{v:.1f}") if scale != 1 else (lambda v: f"{v:.0f}")
            print(f"| {label} {unit} | {f(vals[0])} | {f(w) if w is not None else '–'} | "
                  f"{f(vals[-1])} | {f(max(vals))} | "
                  f"{'–' if s is None else f'{s:+.2f}'} |")
    containers = sorted({s["containers"] for s in samples})
    loads = sorted(s["load1"] for s in samples)
    print(f"\nOrca's containers during the soak: {', '.join(map(str, containers))}; "
          f"1-minute load average median {loads[len(loads) // 2]}, max {loads[-1]}.")

    print("\n| client counts (whole soak) | Orca | haproxy |")
    print("|---|---|---|")
    c = {p: last_line(os.path.join(work, f"client-{p}.jsonl")) or {} for p in ("orca", "haproxy")}
    for key, label in (
        ("requests", "returning user's requests, answered 200"),
        ("request_errors", "… failed"),
        ("new_users", "new users, answered 200"),
        ("new_user_errors", "… failed"),
        ("echoes", "WebSocket echoes"),
        ("ws_opened", "WebSockets opened"),
        ("ws_errors", "WebSocket failures"),
    ):
        print(f"| {label} | {c['orca'].get(key, '–')} | {c['haproxy'].get(key, '–')} |")
    ssh = last_line(os.path.join(work, "ssh.jsonl"))
    if ssh:
        print(f"| SSH commands (`echo` through `docker exec`), ok / failed | "
              f"{ssh['ssh_ok']} / {ssh['ssh_failed']} | – |")


if __name__ == "__main__":
    main(sys.argv[1], float(sys.argv[2]))
