#!/usr/bin/env python3
"""Markdown tables of bench/scale's raw results (JSON lines: test, peer, m).

    scale_summary.py RESULTS.jsonl WS_CONNS
"""

import json
import statistics
import sys


def fmt(v, digits=1):
    if v is None:
        return "–"
    if isinstance(v, str):
        return v
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    return f"{v:.{digits}f}"


def ratio(a, b):
    return f"{a / b:.2f}×" if a is not None and b not in (None, 0) else "–"


def main(path, ws_conns):
    rows = [json.loads(line) for line in open(path)]
    by = {}
    for r in rows:
        by.setdefault((r["test"], r["peer"]), []).append(r["m"])
    one = lambda t, p: (by.get((t, p)) or [None])[0]  # noqa: E731

    print(f"\n#### {ws_conns:,} idle WebSockets through one proxy to one container\n")
    print("| measure | Orca | haproxy | nginx | Orca/haproxy | Orca/nginx |")
    print("|---|---|---|---|---|---|")
    ws = {p: one("ws", p) for p in ("orca", "haproxy", "nginx")}
    for label, key, digits in (
        ("memory per idle WebSocket, KiB (RSS delta / connections)", "kib_per_conn", 2),
        ("descriptors per WebSocket", "fds_per_conn", 2),
        ("RSS with all open, MiB", "rss_after_kib", 1),
        ("time to open them all, s (256 handshakes at a time)", "open_s", 2),
        ("alive after being held idle (one echo each)", "alive", 0),
    ):
        vals = {p: (ws[p] or {}).get(key) for p in ws}
        if key == "rss_after_kib":
            vals = {p: v / 1024 if v is not None else None for p, v in vals.items()}
        print(
            f"| {label} | {fmt(vals['orca'], digits)} | {fmt(vals['haproxy'], digits)} | "
            f"{fmt(vals['nginx'], digits)} | {ratio(vals['orca'], vals['haproxy'])} | "
            f"{ratio(vals['orca'], vals['nginx'])} |"
        )

    print("\n#### New users for a cold image (a container each): alone, and all at once\n")
    print("| time to the answer (ms) | Orca | Engine API + TCP poll | Orca/API |")
    print("|---|---|---|---|")
    alone = {
        "orca": [m["p50_ms"] for m in by.get(("alone", "orca"), [])],
        "api": [m["total_ms"] for m in by.get(("alone", "api"), [])],
    }
    med = {p: statistics.median(v) if v else None for p, v in alone.items()}
    print(
        f"| one user alone, median of {len(alone['orca'])} (min–max) | "
        f"{fmt(med['orca'])} ({fmt(min(alone['orca']))}–{fmt(max(alone['orca']))}) | "
        f"{fmt(med['api'])} ({fmt(min(alone['api']))}–{fmt(max(alone['api']))}) | "
        f"{ratio(med['orca'], med['api'])} |"
    )
    for test in ("burst", "many"):
        o, a = one(test, "orca"), one(test, "api")
        if not o:
            continue
        n = o["users"]
        for key in ("p50_ms", "p95_ms", "max_ms"):
            print(
                f"| {n} at once, {key[:-3]} | {fmt(o[key])} | {fmt(a and a[key])} | "
                f"{ratio(o[key], a and a[key])} |"
            )
        print(
            f"| {n} at once, p50 / one alone | {ratio(o['p50_ms'], med['orca'])} | "
            f"{ratio(a and a['p50_ms'], med['api'])} | – |"
        )

    m = one("many-rss", "orca")
    if m:
        print(f"\n#### {m['containers_after']} containers managed at once\n")
        print("| measure | value |")
        print("|---|---|")
        print(
            f"| Orca RSS before / after the {m['containers_after'] - m['containers_before']} "
            f"new containers, MiB | {m['rss_before_kib'] / 1024:.1f} / {m['rss_after_kib'] / 1024:.1f} |"
        )
        print(f"| Orca's memory per managed container (and its user), KiB | {m['kib_per_container']} |")
        check = one("many-check", "orca")
        if check:
            print(f"| containers listed by `/api/v1/containers` | {check['api_containers']} |")
        print("\n| call, with them all running (ms) | p50 | p95 | max |")
        print("|---|---|---|---|")
        for test, peer, label in (
            ("containers-api", "orca", "`GET /api/v1/containers` (curl)"),
            ("sessions-api", "orca", "`GET /api/v1/sessions` (curl)"),
            ("healthz", "orca", "`GET /healthz` (curl, for scale)"),
            ("status", "orca", "`orca status` (the whole command)"),
            ("status", "docker-ps", "`docker ps --filter label=…` (peer)"),
        ):
            t = one(test, peer)
            if t:
                print(f"| {label} | {fmt(t['p50_ms'], 2)} | {fmt(t['p95_ms'], 2)} | {fmt(t['max_ms'], 2)} |")


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
