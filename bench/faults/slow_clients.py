#!/usr/bin/env python3
"""How long a valid gateway request takes while N clients hold connections with half a request.

Starts the gateway as it is deployed without a proxy (gunicorn with portal/gunicorn_conf.py,
2 workers x 512 threads unless WEB_WORKERS / WEB_THREADS say otherwise) on the database of
DATABASE_URL (created and migrated if missing; bench tenants from bench/setup_bench.py), with
the built-in fake provider as the target. Then:

1. `--requests` chat completions, one at a time, each on a new connection: the baseline;
2. `--slow` connections that each send the first line of a request head and one header, and
   then nothing (slowloris);
3. the same requests again while those connections stay open (a request that gets no answer
   within `--timeout` seconds counts as timed out);
4. after `--closed-after` seconds, how many of the slow connections the server has closed.

  DATABASE_URL=postgres://postgres@127.0.0.1:5432/cb_slow_bench REDIS_URL=redis://127.0.0.1:6379/9 \\
      .venv/bin/python bench/faults/slow_clients.py [--slow 1100] [--requests 50] [--repo DIR]

`--repo` serves another checkout (e.g. an export of main) with this checkout's interpreter.
Prints one line per phase and a `SLOWJSON {...}` line with everything.
"""

import argparse
import http.client
import json
import os
import resource
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parents[2]
KEY = "kt_cg_bench_fast_0123456789"  # bench/setup_bench.py
BODY = json.dumps(
    {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hello"}], "max_tokens": 16}
)
PARTIAL_HEAD = b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_port(port: int, proc: subprocess.Popen, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"process exited: {proc.args}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    sys.exit(f"nothing listens on {port}")


def ensure_database(url: str) -> None:
    import psycopg

    name = url.rsplit("/", 1)[1].split("?")[0]
    with psycopg.connect(url.rsplit("/", 1)[0] + "/postgres", autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')


def one_request(port: int, timeout: float) -> tuple[float, str]:
    """(seconds, outcome) of one chat completion on a new connection."""
    started = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(
            "POST",
            "/v1/chat/completions",
            body=BODY,
            headers={"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"},
        )
        response = conn.getresponse()
        response.read()
        outcome = str(response.status)
    except TimeoutError:
        outcome = "timeout"
    except OSError as exc:
        outcome = type(exc).__name__
    finally:
        conn.close()
    return time.perf_counter() - started, outcome


def phase(port: int, count: int, timeout: float) -> dict:
    results = [one_request(port, timeout) for _ in range(count)]
    answered = sorted(s for s, outcome in results if outcome == "200")
    outcomes: dict[str, int] = {}
    for _, outcome in results:
        outcomes[outcome] = outcomes.get(outcome, 0) + 1

    def ms(q: float) -> float | None:
        if not answered:
            return None
        return round(answered[min(len(answered) - 1, int(q * len(answered)))] * 1000, 1)

    return {
        "requests": count,
        "ok": len(answered),
        "outcomes": outcomes,
        "p50_ms": round(statistics.median(answered) * 1000, 1) if answered else None,
        "p99_ms": ms(0.99),
        "max_ms": round(answered[-1] * 1000, 1) if answered else None,
    }


def open_slow(port: int, count: int) -> list[socket.socket]:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < count + 256:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, count + 256), hard))
    socks = []
    for _ in range(count):
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        sock.sendall(PARTIAL_HEAD)
        socks.append(sock)
    return socks


def closed_by_server(socks: list[socket.socket]) -> int:
    closed = 0
    for sock in socks:
        sock.setblocking(False)
        try:
            if sock.recv(4096) == b"":
                closed += 1
            else:  # an answer (an error page, say) before closing counts as closed too
                closed += 1
        except BlockingIOError:
            pass
        except OSError:  # reset
            closed += 1
    return closed


def line(name: str, result: dict) -> str:
    return (
        f"{name:<26} requests {result['requests']:>4}  ok {result['ok']:>4}  "
        f"p50 {result['p50_ms']} ms  p99 {result['p99_ms']} ms  max {result['max_ms']} ms  "
        f"outcomes {result['outcomes']}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--slow", type=int, default=1100)
    parser.add_argument("--requests", type=int, default=50)
    parser.add_argument("--timeout", type=float, default=15.0)
    parser.add_argument("--closed-after", type=float, default=15.0)
    parser.add_argument("--repo", type=Path, default=HERE)
    args = parser.parse_args()
    repo = args.repo.resolve()
    database_url = os.environ.get("DATABASE_URL", "")
    if not database_url.startswith("postgres"):
        sys.exit("set DATABASE_URL to a PostgreSQL database for the bench")
    ensure_database(database_url)
    py = sys.executable
    env = {**os.environ, "PYTHONPATH": str(repo), "DEBUG": "false"}
    subprocess.run([py, "manage.py", "migrate", "-v0"], cwd=repo, env=env, check=True)

    procs: list[subprocess.Popen] = []
    try:
        fake_port = free_port()
        fake = subprocess.Popen(
            [py, "manage.py", "run_fake_provider", "--port", str(fake_port)],
            cwd=repo,
            env=env,
            stdout=subprocess.DEVNULL,
            start_new_session=True,
        )
        procs.append(fake)
        wait_port(fake_port, fake)
        fake_url = f"http://127.0.0.1:{fake_port}/v1"
        subprocess.run(
            [
                py,
                str(repo / "bench/setup_bench.py"),
                "setup",
                "--fast-url",
                fake_url,
                "--slow-url",
                fake_url,
            ],
            cwd=repo,
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,
        )
        port = free_port()
        gunicorn = subprocess.Popen(
            [py, "-m", "gunicorn", "-c", "portal/gunicorn_conf.py", "portal.wsgi"],
            cwd=repo,
            env={
                **env,
                "KT_HOST": "127.0.0.1",
                "PORT": str(port),
                "BENCH_UPSTREAM_KEY": "sk",
                "KT_UPSTREAM_ALLOW_HOSTS": "127.0.0.1",  # the fake provider (main after trust-secrets)
            },
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        procs.append(gunicorn)
        wait_port(port, gunicorn)
        phase(port, 20, args.timeout)  # warm-up: threads, pools, caches

        results = {"repo": str(repo), "slow": args.slow}
        results["baseline"] = phase(port, args.requests, args.timeout)
        print(line("no slow clients", results["baseline"]), flush=True)
        socks = open_slow(port, args.slow)
        time.sleep(1)  # let the workers accept them
        started = time.monotonic()
        results["with_slow"] = phase(port, args.requests, args.timeout)
        print(line(f"{args.slow} slow clients", results["with_slow"]), flush=True)
        time.sleep(max(0.0, args.closed_after - (time.monotonic() - started)))
        results["closed_after_s"] = round(time.monotonic() - started + 1, 1)
        results["closed"] = closed_by_server(socks)
        print(
            f"slow connections closed by the server {results['closed_after_s']} s after they "
            f"opened: {results['closed']} of {args.slow}"
        )
        for sock in socks:
            sock.close()
        print("SLOWJSON " + json.dumps(results))
    finally:
        for proc in procs:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                continue
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)


if __name__ == "__main__":
    main()
