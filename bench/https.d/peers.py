#!/usr/bin/env python3
"""Measurements of bench/https that no load tool makes: idle keep-alive memory and cold starts.

    peers.py idle HOST PORT SNI HOSTHDR COOKIE N PID...
        Opens N TLS connections to HOST:PORT, sends one GET / on each (keep-alive), reads the
        answer, holds them idle, and prints one JSON line with the summed RSS of PID... before
        and after and the difference per connection.

    peers.py direct-cold IMAGE NAME_PREFIX LABEL N
        N times: creates and starts a container of IMAGE through the Docker Engine API (as Orca
        does), waits for a TCP connect to its port 80 (polling every millisecond), sends GET /
        and times the first byte of the answer. Prints one JSON line per container with the
        split (create, start, inspect, ready, first byte). Each container is removed after its
        measurement (not timed).

    peers.py cli-cold IMAGE NAME_PREFIX LABEL N
        The same with the docker command line (`docker run -d`, `docker inspect`) instead of
        the API, as an operator would script it.

Standard library only. Sends traffic to loopback and to the bridge addresses of containers
this run started, nothing else; every loop is bounded in count and time.
"""

import asyncio
import http.client
import json
import socket
import ssl
import subprocess
import sys
import time

DOCKER_SOCK = "/var/run/docker.sock"
READY_TIMEOUT = 30.0  # seconds a container may take to accept; then the run fails


def rss_kib(pids):
    total = 0
    for pid in pids:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
    return total


async def idle(host, port, sni, hosthdr, cookie, n, pids):
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    # HTTP/1.1 only: the question is the cost of one idle keep-alive connection.
    ctx.set_alpn_protocols(["http/1.1"])
    request = (
        f"GET / HTTP/1.1\r\nHost: {hosthdr}\r\nCookie: {cookie}\r\nUser-Agent: orca-bench-idle\r\n\r\n"
    ).encode()
    sem = asyncio.Semaphore(50)  # handshakes in flight at once, so none times out

    async def one():
        async with sem:
            reader, writer = await asyncio.open_connection(
                host, port, ssl=ctx, server_hostname=sni
            )
            writer.write(request)
            await writer.drain()
            head = await reader.readuntil(b"\r\n\r\n")
            if not head.startswith(b"HTTP/1.1 200"):
                raise RuntimeError(f"unexpected answer: {head[:80]!r}")
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            await reader.readexactly(length)
            return writer

    before = rss_kib(pids)
    writers = await asyncio.wait_for(asyncio.gather(*(one() for _ in range(n))), 120)
    # Let the servers settle (buffers released after the answer, timers armed).
    await asyncio.sleep(2)
    after = rss_kib(pids)
    for w in writers:
        w.close()
    print(
        json.dumps(
            {
                "connections": n,
                "rss_before_kib": before,
                "rss_after_kib": after,
                "kib_per_connection": round((after - before) / n, 2),
            }
        )
    )


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path):
        super().__init__("localhost", timeout=60)
        self.unix_path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(self.unix_path)


def engine(method, path, body=None):
    conn = UnixHTTPConnection(DOCKER_SOCK)
    headers = {"Content-Type": "application/json"} if body is not None else {}
    conn.request(method, path, body=json.dumps(body) if body is not None else None, headers=headers)
    resp = conn.getresponse()
    data = resp.read()
    conn.close()
    if resp.status >= 300:
        raise RuntimeError(f"{method} {path}: {resp.status} {data[:200]!r}")
    return json.loads(data) if data else None


def first_byte(ip, deadline):
    """Polls a TCP connect to ip:80 every millisecond, then times GET / to its first byte."""
    while True:
        s = socket.socket()
        s.settimeout(2)
        try:
            s.connect((ip, 80))
            break
        except OSError:
            s.close()
            if time.monotonic() > deadline:
                raise RuntimeError(f"{ip}:80 did not accept in time")
            time.sleep(0.001)
    t_ready = time.monotonic()
    s.sendall(b"GET / HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
    if not s.recv(1):
        raise RuntimeError(f"{ip}:80 closed without answering")
    t_byte = time.monotonic()
    s.close()
    return t_ready, t_byte


def direct_cold(image, prefix, label, n):
    for i in range(n):
        name = f"{prefix}-{i}-{int(time.time() * 1000)}"
        t0 = time.monotonic()
        created = engine(
            "POST",
            f"/containers/create?name={name}",
            {"Image": image, "Labels": {label: "1"}, "HostConfig": {"NetworkMode": "bridge"}},
        )
        cid = created["Id"]
        t_create = time.monotonic()
        try:
            engine("POST", f"/containers/{cid}/start")
            t_start = time.monotonic()
            info = engine("GET", f"/containers/{cid}/json")
            ip = info["NetworkSettings"]["Networks"]["bridge"]["IPAddress"]
            t_inspect = time.monotonic()
            t_ready, t_byte = first_byte(ip, t0 + READY_TIMEOUT)
        finally:
            engine("DELETE", f"/containers/{cid}?force=true")
        ms = lambda a, b: round((b - a) * 1000, 2)  # noqa: E731
        print(
            json.dumps(
                {
                    "create_ms": ms(t0, t_create),
                    "start_ms": ms(t_create, t_start),
                    "inspect_ms": ms(t_start, t_inspect),
                    "ready_ms": ms(t_inspect, t_ready),
                    "first_byte_ms": ms(t_ready, t_byte),
                    "total_ms": ms(t0, t_byte),
                }
            ),
            flush=True,
        )


def cli_cold(image, prefix, label, n):
    for i in range(n):
        name = f"{prefix}-cli-{i}-{int(time.time() * 1000)}"
        t0 = time.monotonic()
        cid = subprocess.run(
            ["docker", "run", "-d", "--name", name, "--label", f"{label}=1", image],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
        try:
            t_run = time.monotonic()
            ip = subprocess.run(
                ["docker", "inspect", "-f", "{{.NetworkSettings.IPAddress}}", cid],
                check=True,
                capture_output=True,
                text=True,
            ).stdout.strip()
            t_inspect = time.monotonic()
            t_ready, t_byte = first_byte(ip, t0 + READY_TIMEOUT)
        finally:
            subprocess.run(["docker", "rm", "-f", cid], check=False, capture_output=True)
        ms = lambda a, b: round((b - a) * 1000, 2)  # noqa: E731
        print(
            json.dumps(
                {
                    "run_ms": ms(t0, t_run),
                    "inspect_ms": ms(t_run, t_inspect),
                    "ready_ms": ms(t_inspect, t_ready),
                    "first_byte_ms": ms(t_ready, t_byte),
                    "total_ms": ms(t0, t_byte),
                }
            ),
            flush=True,
        )


def main(argv):
    cmd = argv[1]
    if cmd == "idle":
        host, port, sni, hosthdr, cookie, n = argv[2:8]
        pids = [int(p) for p in argv[8:]]
        asyncio.run(idle(host, int(port), sni, hosthdr, cookie, int(n), pids))
    elif cmd == "direct-cold":
        image, prefix, label, n = argv[2:6]
        direct_cold(image, prefix, label, int(n))
    elif cmd == "cli-cold":
        image, prefix, label, n = argv[2:6]
        cli_cold(image, prefix, label, int(n))
    else:
        sys.exit(f"unknown command {cmd!r}; see the docstring")


if __name__ == "__main__":
    main(sys.argv)
