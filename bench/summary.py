#!/usr/bin/env python3
"""The summary of a bench/gateway.sh run: the figures docs/performance.md quotes.

  python bench/summary.py OUT_DIR

Reads OUT_DIR/run/results.jsonl (the shared harness), OUT_DIR/streams.txt (bench/streams.py)
and OUT_DIR/accounting.{before,after}.json (bench/setup_bench.py report). Prints markdown.
"""

import json
import sys
from pathlib import Path

GOALS = {"added_p50_ms": 3.0, "litellm_ratio": 4.0, "streams": 500}


def _rows(out: Path) -> list[dict]:
    path = out / "run" / "results.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _get(rows, target, mode, conc, tool="wrk"):
    for r in rows:
        if (r["target"], r["mode"], r["conc"], r["tool"]) == (target, mode, conc, tool):
            return r
    return None


def _fmt(value, digits=2):
    if value is None:
        return "-"
    if isinstance(value, float) and value >= 100:
        return f"{value:,.0f}"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def main(out: Path) -> None:
    rows = _rows(out)
    targets = list(dict.fromkeys(r["target"] for r in rows))
    print(f"# Gateway benchmark {out.name}\n")
    harness = out / "harness.md"
    if harness.exists():
        env = [line for line in harness.read_text().splitlines() if line.startswith("- ")]
        print("\n".join(env[:5]) + "\n")

    ours = "ours" in targets
    if ours:
        print("## Ours (full accounting on PostgreSQL)\n")
        print("| figure | json | stream |\n| --- | --- | --- |")
        base = {m: _get(rows, "direct", m, 1) for m in ("json", "stream")}
        c1 = {m: _get(rows, "ours", m, 1) for m in ("json", "stream")}
        for label, key in (
            ("added p50 at c=1 (ms)", "p50_ms"),
            ("added p99 at c=1 (ms)", "p99_ms"),
        ):
            cells = []
            for m in ("json", "stream"):
                if c1[m] and base[m] and c1[m].get(key) is not None:
                    cells.append(_fmt(c1[m][key] - base[m][key]))
                elif c1[m]:
                    cells.append(_fmt(c1[m].get(key)) + " (no direct run)")
                else:
                    cells.append("-")
            print(f"| {label} | {cells[0]} | {cells[1]} |")
        for conc in (32, 64):
            cells = [_get(rows, "ours", m, conc) for m in ("json", "stream")]
            print(
                f"| RPS at c={conc} | "
                + " | ".join(_fmt(c["rps"]) if c else "-" for c in cells)
                + " |"
            )
        for conc in (1, 32):
            cells = [_get(rows, "ours", m, conc) for m in ("json", "stream")]
            print(
                f"| CPU ms/req at c={conc} | "
                + " | ".join(_fmt(c.get("cpu_ms_per_req")) if c else "-" for c in cells)
                + " |"
            )
        errors = sum(r.get("errors", 0) for r in rows if r["target"] == "ours")
        print(f"| errors over all passes | {errors} | |")
        for conc in (1, 32):
            lp = _get(rows, "ours", "stream", conc, tool="load.py")
            direct = _get(rows, "direct", "stream", conc, tool="load.py")
            if lp:
                extra = f" (direct {_fmt(direct['ttft_p50_ms'])})" if direct else ""
                print(
                    f"| streaming TTFT p50 / p99 at c={conc} (load.py, ms) | | "
                    f"{_fmt(lp['ttft_p50_ms'])} / {_fmt(lp['ttft_p99_ms'])}{extra} |"
                )
        print()

    if rows:
        print("## Peer comparison (wrk: RPS / p50 ms / p99 ms; CPU ms/req at c=1)\n")
        print(
            "| target | mode | c=1 | c=32 | c=64 | CPU ms/req |\n| --- | --- | --- | --- | --- | --- |"
        )
        for target in targets:
            for mode in ("json", "stream"):
                cells = []
                for conc in (1, 32, 64):
                    r = _get(rows, target, mode, conc)
                    cells.append(
                        f"{_fmt(r['rps'])} / {_fmt(r['p50_ms'])} / {_fmt(r['p99_ms'])}"
                        if r and r.get("rps")
                        else "-"
                    )
                r1 = _get(rows, target, mode, 1)
                cpu = _fmt(r1.get("cpu_ms_per_req"), 3) if r1 else "-"
                print(f"| {target} | {mode} | {' | '.join(cells)} | {cpu} |")
        print()
        for peer in ("litellm", "litellm2"):
            if ours and peer in targets:
                ratios = []
                for mode in ("json", "stream"):
                    a, b = _get(rows, "ours", mode, 32), _get(rows, peer, mode, 32)
                    if a and b and b["rps"]:
                        ratios.append(f"{mode} {a['rps'] / b['rps']:.1f}x")
                print(f"- ours / {peer} RPS at c=32: {', '.join(ratios)}")
        print()

    streams = out / "streams.txt"
    if streams.exists():
        text = streams.read_text().splitlines()
        data = next(
            (json.loads(line[12:]) for line in text if line.startswith("STREAMSJSON ")), None
        )
        print("## Long streams (about 9.5 s each, all opened at once)\n")
        print(
            "| streams | completed | errors | TTFT p50 / p99 s | duration p50 / p99 / max s "
            "| peak RSS MB | gateway CPU s |\n| --- | --- | --- | --- | --- | --- | --- |"
        )
        for s in (data or {}).get("steps", []):
            print(
                f"| {s['streams']} | {s['ok']} | {s['errors'] or 0} | {s['ttft_p50_s']} / "
                f"{s['ttft_p99_s']} | {s['total_p50_s']} / {s['total_p99_s']} / {s['total_max_s']} "
                f"| {s['peak_rss_mb']} | {s['cpu_s']} |"
            )
        print(f"\nConcurrent streams held without errors: **{(data or {}).get('held', 0)}**\n")

    before, after = out / "accounting.before.json", out / "accounting.after.json"
    if before.exists() and after.exists():
        b, a = json.loads(before.read_text()), json.loads(after.read_text())
        print("## Accounting after the run\n")
        for slug, now in a.items():
            was = b.get(slug, {"events": 0})
            wallets = now["wallets"]
            consistent = all(
                w["balance_is_ledger_sum"] and w["held_is_open_holds"] for w in wallets
            )
            pending = sum(w["pending_holds"] for w in wallets)
            over = now.get("captures_above_hold", 0) - was.get("captures_above_hold", 0)
            largest = now.get("largest_capture_over_hold")
            print(
                f"- {slug}: {now['events'] - was['events']} new usage events "
                f"({now['events_by_status']}), total event cost {now['events_cost']}, "
                f"{sum(w['captures'] for w in wallets)} captures, {pending} holds still pending, "
                f"balance = ledger sum and held = open holds: {consistent}, "
                f"captures above their hold: {over}"
                + (f" (largest capture/hold {largest})" if over and largest else "")
            )


if __name__ == "__main__":
    main(Path(sys.argv[1]))
