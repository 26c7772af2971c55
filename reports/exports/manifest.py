"""The manifest: what a file is, how it was made and how to check it. No timestamps, so that the
same data gives the same manifest (the job row keeps the times)."""

import hashlib

from reports.exports import GENERATOR, GENERATOR_VERSION
from reports.exports.cells import Column, iso_utc
from reports.exports.rows import ExportContext, Totals


def sha256_of(fileobj) -> tuple[str, int]:
    """Hex digest and size of a file, read in 1 MiB chunks from the start."""
    fileobj.seek(0)
    digest = hashlib.sha256()
    size = 0
    while chunk := fileobj.read(1024 * 1024):
        digest.update(chunk)
        size += len(chunk)
    return digest.hexdigest(), size


def manifest_build(
    *,
    job,
    ctx: ExportContext,
    columns: list[Column],
    row_count: int,
    totals: Totals,
    file_name: str,
    sha256: str,
    size: int,
    content_type: str,
) -> dict:
    return {
        "generator": GENERATOR,
        "generator_version": GENERATOR_VERSION,
        "job_id": job.id,
        "organization": ctx.organization.slug,
        "type": job.type,
        "format": job.format,
        "date_from": ctx.date_from.isoformat(),
        "date_to": ctx.date_to.isoformat(),
        "time_zone": ctx.organization.time_zone,
        "period_start": iso_utc(ctx.start),
        "period_end_exclusive": iso_utc(ctx.end),
        "filters": dict(sorted(ctx.filters.items())),
        "columns": [c.name for c in columns],
        "row_count": row_count,
        "totals": totals.as_manifest(),
        "file": {"name": file_name, "bytes": size, "sha256": sha256, "content_type": content_type},
    }
