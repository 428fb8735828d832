#!/usr/bin/env python3
"""Turns bench/https's JSON lines into the Markdown tables of BENCHMARKS.md.

Each load figure is the median over the rounds (every peer ran once per round, interleaved);
ratios are Orca's median over the peer's median. Cold starts show the median and the worst of
the users.
"""

import json
import statistics
import sys

PROXIES = ["orca", "haproxy", "nginx"]


def load(path):
    rows = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line:
                rows.append(json.loads(line))
    return rows


def med(rows, test, peer, key):
    vals = [r["m"][key] for r in rows if r["test"] == test and r["peer"] == peer and key in r["m"]]
    return statistics.median(vals) if vals else None


def errors(rows):
    bad = [
        r
        for r in rows
        if r["test"] in ("small", "latency", "large")
        and (r["m"]["errors"] or r["m"]["non2xx"])
        or r["test"] == "h2"
        and r["m"]["failed"]
    ]
    return bad


def fmt(v, unit=""):
    if v is None:
        return "–"
    if abs(v) >= 100:
        return f"{v:,.0f}{unit}"
    return f"{v:,.2f}{unit}"


def ratio(a, b):
    return "–" if not a or not b else f"{a / b:.2f}×"


def main(path):
    rows = load(path)
    rounds = len({r["round"] for r in rows if r["test"] == "small"})
    loads = [r["load1"] for r in rows if r["test"] in ("small", "latency", "large", "h2")]
    print(
        f"\n{rounds} rounds; 1-minute load average during the load tests: "
        f"{min(loads):.2f} to {max(loads):.2f} (median {statistics.median(loads):.2f})\n"
    )

    print("| measure | direct (plain HTTP) | Orca | haproxy | nginx | Orca/haproxy | Orca/nginx |")
    print("|---|---|---|---|---|---|---|")

    def line(label, test, key, scale=1.0, unit="", direct=True, lower_is_better=False):
        vals = {p: med(rows, test, p, key) for p in ["direct"] + PROXIES}
        vals = {p: (v * scale if v is not None else None) for p, v in vals.items()}
        d = fmt(vals["direct"], unit) if direct else "–"
        print(
            f"| {label} | {d} | {fmt(vals['orca'], unit)} | {fmt(vals['haproxy'], unit)} | "
            f"{fmt(vals['nginx'], unit)} | {ratio(vals['orca'], vals['haproxy'])} | "
            f"{ratio(vals['orca'], vals['nginx'])} |"
        )
        return vals

    small = line("small answers, HTTP/1.1, requests/s (wrk, 64 connections)", "small", "rps")
    line("… p50 latency under that load (ms)", "small", "p50_us", 1e-3)
    line("… p99 latency under that load (ms)", "small", "p99_us", 1e-3)
    line("… CPU per request, user (µs)", "small", "cpu_user_us", direct=False)
    line("… CPU per request, system (µs)", "small", "cpu_sys_us", direct=False)
    line("small answers, HTTP/2, requests/s (h2load, 16 connections × 8 streams)", "h2", "rps", direct=False)
    line("… CPU per request, user (µs)", "h2", "cpu_user_us", direct=False)
    line("… CPU per request, system (µs)", "h2", "cpu_sys_us", direct=False)
    lat50 = line("one connection, one request at a time: p50 latency (ms)", "latency", "p50_us", 1e-3)
    lat99 = line("… p99 latency (ms)", "latency", "p99_us", 1e-3)
    line("… requests/s", "latency", "rps")
    line("1 MiB answers, MiB/s (wrk, 8 connections)", "large", "bytes_per_s", 1 / 2**20)

    added = {}
    for p in PROXIES:
        a50 = lat50[p] - lat50["direct"] if lat50[p] is not None else None
        a99 = lat99[p] - lat99["direct"] if lat99[p] is not None else None
        added[p] = (a50, a99)
    print(
        f"| added latency over direct, p50 / p99 (ms, one connection) | – | "
        + " | ".join(f"{fmt(added[p][0])} / {fmt(added[p][1])}" for p in PROXIES)
        + f" | {ratio(added['orca'][0], added['haproxy'][0])} / {ratio(added['orca'][1], added['haproxy'][1])}"
        + f" | {ratio(added['orca'][0], added['nginx'][0])} / {ratio(added['orca'][1], added['nginx'][1])} |"
    )
    idle = {p: med(rows, "idle", p, "kib_per_connection") for p in PROXIES}
    conns = med(rows, "idle", "orca", "connections")
    print(
        f"| memory per idle TLS keep-alive connection, KiB (RSS delta / {conns:.0f}) | – | "
        + " | ".join(fmt(idle[p]) for p in PROXIES)
        + f" | {ratio(idle['orca'], idle['haproxy'])} | {ratio(idle['orca'], idle['nginx'])} |"
    )
    _ = small

    if any(r["peer"] == "floor" for r in rows):
        floor_table(rows)

    cold = [r["m"] for r in rows if r["test"] == "cold" and r["peer"] == "orca"]
    api = [r["m"] for r in rows if r["test"] == "cold" and r["peer"] == "direct-api"]
    cli = [r["m"] for r in rows if r["test"] == "cold" and r["peer"] == "docker-run"]
    if cold:
        print(f"\nCold start, {len(cold)} new users (a new container each), milliseconds: median (worst)\n")
        print("| phase | Orca | Engine API + TCP poll | `docker run -d` + TCP poll |")
        print("|---|---|---|---|")

        def mw(rs, k):
            vals = [r[k] for r in rs if r.get(k) is not None]
            if not vals:
                return "–"
            return f"{statistics.median(vals):,.1f} ({max(vals):,.1f})"

        print(f"| TCP connect to the gateway | {mw(cold, 'tcp_ms')} | – | – |")
        print(f"| TLS handshake | {mw(cold, 'tls_ms')} | – | – |")
        print(f"| queue (launch slot) | {mw(cold, 'queue_ms')} | – | – |")
        print(f"| create | {mw(cold, 'create_ms')} | {mw(api, 'create_ms')} | {mw(cli, 'run_ms')} (run: create + start) |")
        print(f"| start | {mw(cold, 'start_ms')} | {mw(api, 'start_ms')} | |")
        print(f"| inspect + ready (TCP accept) | {mw(cold, 'ready_ms')} | {mw(api, 'inspect_ms')} + {mw(api, 'ready_ms')} | {mw(cli, 'inspect_ms')} + {mw(cli, 'ready_ms')} |")
        print(f"| launch total (Orca's log) | {mw(cold, 'launch_ms')} | – | – |")
        print(f"| **time to first byte** | **{mw(cold, 'ttfb_ms')}** | **{mw(api, 'total_ms')}** | **{mw(cli, 'total_ms')}** |")
        for r in cold:
            r["rest_ms"] = r["ttfb_ms"] - r["tls_ms"] - r["tcp_ms"] - (r.get("launch_ms") or 0)
        print(f"| Orca outside the launch (identity, placement, proxy, first byte) | {mw(cold, 'rest_ms')} | – | – |")
        om = statistics.median(r["ttfb_ms"] for r in cold)
        am = statistics.median(r["total_ms"] for r in api)
        cm = statistics.median(r["total_ms"] for r in cli)
        print(f"\nOrca adds {om - am:,.1f} ms at the median over the Engine API baseline "
              f"({om / am:.2f}×) and {om - cm:,.1f} ms over `docker run -d` ({om / cm:.2f}×).")

    bad = errors(rows)
    if bad:
        print(f"\n**{len(bad)} runs had errors or non-2xx answers:**")
        for r in bad:
            print(f"- {r['test']} {r['peer']} round {r['round']}: {json.dumps(r['m'])}")
    else:
        print("\nNo run had socket errors or non-2xx answers.")


def floor_table(rows):
    """Orca and haproxy beside the floor proxy (the same crates as Orca, none of its work)."""
    print("\nThe floor: `bench/https.d/floor`, Orca's crates as a bare proxy, one runtime per core\n")
    print("| measure | Orca | floor | haproxy | floor/haproxy | Orca/floor |")
    print("|---|---|---|---|---|---|")
    for label, test, key in [
        ("HTTP/1.1 requests/s", "small", "rps"),
        ("… CPU per request, user (µs)", "small", "cpu_user_us"),
        ("… CPU per request, system (µs)", "small", "cpu_sys_us"),
        ("HTTP/2 requests/s", "h2", "rps"),
        ("… CPU per request, user (µs)", "h2", "cpu_user_us"),
        ("… CPU per request, system (µs)", "h2", "cpu_sys_us"),
    ]:
        o, f, h = (med(rows, test, p, key) for p in ("orca", "floor", "haproxy"))
        print(f"| {label} | {fmt(o)} | {fmt(f)} | {fmt(h)} | {ratio(f, h)} | {ratio(o, f)} |")


if __name__ == "__main__":
    main(sys.argv[1])
