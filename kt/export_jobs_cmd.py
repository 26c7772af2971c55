"""`kt export-jobs create|list|get|download`."""

import json
import os
import sys
import time

from kt import tables
from kt.client import CliError, request

DONE = ("completed", "failed")


def register(subparsers) -> None:
    group = subparsers.add_parser("export-jobs", help="file exports for finance (csv, jsonl, xlsx)")
    commands = group.add_subparsers(dest="command", required=True)

    create = commands.add_parser("create", help="queue an export; prints its id (job_...)")
    create.add_argument("--type", required=True, help="events, chargeback, focus or audit-log")
    create.add_argument("--format", default="csv", help="csv (default), jsonl, json or xlsx")
    create.add_argument("--date-from", required=True, help="first day, YYYY-MM-DD (inclusive)")
    create.add_argument("--date-to", required=True, help="last day, YYYY-MM-DD (inclusive)")
    create.add_argument("--team-id", help="only this department")
    create.add_argument("--provider", help="only this provider (events, focus)")
    create.add_argument("--wait", action="store_true", help="show progress, then download the file")
    create.add_argument("--output", help="with --wait: where to save (default: the file's name)")
    create.set_defaults(handler=cmd_create)

    lst = commands.add_parser("list", help="recent export jobs")
    lst.add_argument("--status", default="")
    lst.add_argument("--type", default="")
    lst.add_argument("--limit", type=int, default=20)
    lst.add_argument("--json", action="store_true", help="print the raw JSON")
    lst.set_defaults(handler=cmd_list)

    get = commands.add_parser("get", help="one job's status, progress and manifest")
    get.add_argument("--id", required=True)
    get.add_argument("--json", action="store_true", help="print the job and manifest as JSON")
    get.set_defaults(handler=cmd_get)

    download = commands.add_parser("download", help="save a completed job's file")
    download.add_argument("--id", required=True)
    download.add_argument("--output", help="file to write ('-' for stdout; default: its name)")
    download.set_defaults(handler=cmd_download)


def cmd_create(args) -> int:
    filters = {k: v for k, v in (("team_id", args.team_id), ("provider", args.provider)) if v}
    body = {
        "type": args.type,
        "format": args.format,
        "date_from": args.date_from,
        "date_to": args.date_to,
    }
    if filters:
        body["filters"] = filters
    job = request("POST", "/v1/export-jobs", json=body).json()
    print(job["id"])
    sys.stdout.flush()
    if not args.wait:
        return 0
    job = _wait(job)
    if job["status"] == "failed":
        raise CliError(f"export {job['id']} failed: {job['error']}")
    _download(job["id"], args.output or job["file_name"])
    return 0


def _wait(job: dict, interval: float = 0.5) -> dict:
    """Poll until the job ends, drawing `[#####.....] rows/expected` on stderr."""
    while True:
        _progress(job)
        if job["status"] in DONE:
            sys.stderr.write("\n")
            return job
        time.sleep(interval)
        job = request("GET", f"/v1/export-jobs/{job['id']}").json()


def _progress(job: dict, width: int = 30) -> None:
    written, expected = job.get("rows_written") or 0, job.get("rows_expected")
    if job["status"] == "completed":
        expected = written = job.get("rows_written") or 0
    fraction = min(written / expected, 1.0) if expected else (1.0 if job["status"] in DONE else 0)
    bar = "#" * int(fraction * width)
    total = f"{expected:,}" if expected is not None else "?"
    sys.stderr.write(
        f"\r[{bar:<{width}}] {written:,}/{total} rows {fraction * 100:5.1f}% {job['status']}  "
    )
    sys.stderr.flush()


def _download(job_id: str, output: str | None) -> None:
    if output == "-":
        request(
            "GET",
            f"/v1/export-jobs/{job_id}/download",
            stream_to=sys.stdout.buffer,
        )
        return
    target = output
    if not target:
        job = request("GET", f"/v1/export-jobs/{job_id}").json()
        target = job.get("file_name") or f"{job_id}.{job.get('format', 'csv')}"
    # Write to a sibling temporary file, then rename: never leave half a file under the real name.
    partial = f"{target}.part"
    try:
        with open(partial, "wb") as fh:
            response = request("GET", f"/v1/export-jobs/{job_id}/download", stream_to=fh)
        os.replace(partial, target)
    finally:
        if os.path.exists(partial):
            os.remove(partial)
    sha = response.headers.get("X-Content-SHA256", "")
    print(f"saved {target}" + (f" (sha256 {sha})" if sha else ""), file=sys.stderr)


def cmd_list(args) -> int:
    params = {"limit": args.limit, "status": args.status, "type": args.type}
    data = request("GET", "/v1/export-jobs", params=params).json()
    if args.json:
        print(json.dumps(data, indent=2))
        return 0
    print(f"{'ID':<22} {'TYPE':<11} {'FORMAT':<6} {'FROM':<10} {'TO':<10} {'STATUS':<10} ROWS")
    for job in data["results"]:
        expected = job["rows_expected"]
        rows = f"{tables.count(job['rows_written'])}/" + (
            tables.count(expected) if expected is not None else "?"
        )
        print(
            f"{job['id']:<22} {job['type']:<11} {job['format']:<6} {job['date_from']:<10} "
            f"{job['date_to']:<10} {job['status']:<10} {rows}"
        )
    return 0


def cmd_get(args) -> int:
    job = request("GET", f"/v1/export-jobs/{args.id}").json()
    if job["status"] == "completed":
        job["manifest"] = request("GET", f"/v1/export-jobs/{args.id}/manifest").json()
    if args.json:
        print(json.dumps(job, indent=2))
        return 0
    print(render_job(job))
    return 0


def render_job(job: dict) -> str:
    """The job as people read it: what, its state and file, then the manifest's totals per
    currency (amounts to the cent, counts with separators); `--json` has everything."""
    expected = job.get("rows_expected")
    rows = f"{tables.count(job.get('rows_written') or 0)} of " + (
        tables.count(expected) if expected is not None else "?"
    )
    filters = ", ".join(f"{k}={v}" for k, v in sorted((job.get("filters") or {}).items()))
    lines = [
        ("id", job["id"]),
        ("type", f"{job['type']} ({job['format']})"),
        ("period", f"{job['date_from']} to {job['date_to']}"),
        ("filters", filters or "none"),
        ("status", job["status"]),
        ("rows", rows),
        ("requested by", job.get("requested_by") or ""),
        ("created", _when(job.get("created_at"))),
        ("finished", _when(job.get("finished_at"))),
    ]
    if job.get("error"):
        lines.append(("error", job["error"]))
    if job.get("file_name"):
        lines += [("file", job["file_name"]), ("sha256", job.get("sha256") or "")]
    out = [tables.pairs(lines)]
    manifest = job.get("manifest") or {}
    for currency, totals in sorted((manifest.get("totals") or {}).items()):
        cells = [
            (name, tables.amount(value) if isinstance(value, str) else tables.count(value))
            for name, value in totals.items()
            if not name.endswith("_exact")
        ]
        out += ["", f"Totals ({currency})", tables.table(("total", "value"), cells, right=(1,))]
    return "\n".join(out)


def _when(value) -> str:
    return value[:19].replace("T", " ") + " UTC" if value else ""


def cmd_download(args) -> int:
    _download(args.id, args.output)
    return 0
