#!/usr/bin/env python3
"""How many concurrent long streams one gateway instance holds without errors.

Opens N streaming chat completions at once (plain asyncio, one connection each) against a
gateway whose target is a slow upstream (bench/nginx/slow.conf.template: about 9.5 s per
stream), and checks that every stream ends with a usage chunk and `data: [DONE]` within the
deadline. Steps through the counts given with -n (e.g. `-n 100 250 500 1000`) and prints one
line per step plus a `STREAMSJSON {...}` line with all steps.

A step is "held" when every stream completed without an error (a complete SSE stream with
usage and [DONE]) within `--max-seconds` (default 60 s); the durations say how much longer than
the upstream's 9.5 s the streams took (first byte and thread waits under a burst). `--pid` samples the RSS of the gateway's process group (peak, MB) and its CPU seconds.

  python bench/streams.py URL --auth "Bearer KEY" -n 100 250 500 1000
"""

import argparse
import asyncio
import json
import os
import statistics
import time
from urllib.parse import urlsplit

BODY = {
    "model": "gpt-4o-mini",
    "messages": [{"role": "user", "content": "Tell me a long story."}],
    "max_tokens": 64,
    "stream": True,
    "stream_options": {"include_usage": True},
}


def _group_stats(pgid: int) -> tuple[float, float]:
    """RSS (MB) and CPU seconds of every process in the process group."""
    rss_pages = ticks = 0
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:
            ticks += int(fields[11]) + int(fields[12])
            rss_pages += int(fields[21])
    return rss_pages * os.sysconf("SC_PAGE_SIZE") / 1e6, ticks / os.sysconf("SC_CLK_TCK")


async def one_stream(url, auth, deadline):
    """One streamed request over its own connection (plain asyncio, HTTP/1.1, Connection: close).

    Not httpx: one AsyncClient's pool slows down with hundreds of concurrent streams (and the
    harness README saw it at c=32), which measured the client instead of the gateway."""
    t0 = time.perf_counter()
    ttft = None
    usage = done = False
    parts = urlsplit(url)
    body = json.dumps(BODY).encode()
    head = (
        f"POST {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\nAuthorization: {auth}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n"
    ).encode()
    writer = None
    try:
        async with asyncio.timeout(deadline):
            reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
            writer.write(head + body)
            status = await reader.readline()
            if b" 200 " not in status:
                return {"ok": False, "error": f"HTTP {status.decode(errors='replace').strip()}"}
            while (await reader.readline()) not in (b"\r\n", b""):
                pass  # headers
            # The body is chunked: chunk-size lines interleave with the SSE lines; only the
            # `data:` lines matter here.
            async for line in reader:
                if not line.startswith(b"data:"):
                    continue
                if ttft is None:
                    ttft = time.perf_counter() - t0
                if b'"usage":{' in line.replace(b" ", b""):
                    usage = True
                if line.strip() == b"data: [DONE]":
                    done = True
    except Exception as exc:  # every failure counts, whatever it is
        return {"ok": False, "error": type(exc).__name__}
    finally:
        if writer is not None:
            writer.close()
    total = time.perf_counter() - t0
    if not (usage and done):
        return {"ok": False, "error": "incomplete stream", "total": total}
    return {"ok": True, "ttft": ttft, "total": total}


async def step(url, auth, n, deadline, pgid):
    peak_rss = 0.0
    cpu0 = _group_stats(pgid)[1] if pgid else 0.0
    tasks = [asyncio.create_task(one_stream(url, auth, deadline)) for _ in range(n)]
    while not all(t.done() for t in tasks):
        if pgid:
            peak_rss = max(peak_rss, _group_stats(pgid)[0])
        await asyncio.sleep(0.25)
    results = [t.result() for t in tasks]
    cpu = (_group_stats(pgid)[1] - cpu0) if pgid else None
    ok = [r for r in results if r["ok"]]
    errors: dict[str, int] = {}
    for r in results:
        if not r["ok"]:
            errors[r["error"]] = errors.get(r["error"], 0) + 1

    def pct(values, p):
        if not values:
            return None
        values = sorted(values)
        return round(values[min(len(values) - 1, int(p / 100 * len(values)))], 2)

    totals = [r["total"] for r in ok]
    ttfts = [r["ttft"] for r in ok]
    return {
        "streams": n,
        "ok": len(ok),
        "errors": errors,
        "ttft_p50_s": pct(ttfts, 50),
        "ttft_p99_s": pct(ttfts, 99),
        "total_p50_s": pct(totals, 50),
        "total_p99_s": pct(totals, 99),
        "total_max_s": round(max(totals), 2) if totals else None,
        "total_mean_s": round(statistics.mean(totals), 2) if totals else None,
        "peak_rss_mb": round(peak_rss) if pgid else None,
        "cpu_s": round(cpu, 2) if cpu is not None else None,
    }


async def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("--auth", required=True)
    parser.add_argument("-n", type=int, nargs="+", default=[100, 250, 500])
    parser.add_argument("--max-seconds", type=float, default=60.0)
    parser.add_argument("--deadline", type=float, default=60.0)
    parser.add_argument("--pgid", type=int, default=0)
    parser.add_argument("--pause", type=float, default=3.0)
    args = parser.parse_args()
    steps = []
    for n in args.n:
        result = await step(args.url, args.auth, n, args.deadline, args.pgid)
        result["held"] = (
            result["ok"] == n
            and result["total_max_s"] is not None
            and result["total_max_s"] <= args.max_seconds
        )
        steps.append(result)
        print(
            f"streams={n} ok={result['ok']} held={result['held']} errors={result['errors']} "
            f"ttft p50/p99={result['ttft_p50_s']}/{result['ttft_p99_s']} s "
            f"duration p50/p99/max={result['total_p50_s']}/{result['total_p99_s']}/"
            f"{result['total_max_s']} s rss={result['peak_rss_mb']} MB cpu={result['cpu_s']} s",
            flush=True,
        )
        await asyncio.sleep(args.pause)
    held = [s["streams"] for s in steps if s["held"]]
    print("STREAMSJSON " + json.dumps({"steps": steps, "held": max(held) if held else 0}))


if __name__ == "__main__":
    asyncio.run(main())
