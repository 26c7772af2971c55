"""`audit-log`: the organization's audit rows in the range, oldest first."""

from collections.abc import Iterator

from chargeback.models import AuditLog
from reports.exports.cells import DATETIME, INT, JSON, TEXT, Column, iso_utc
from reports.exports.rows import CHUNK_SIZE, ExportContext, Totals

COLUMNS = [
    Column("created_at", DATETIME, "ISO 8601 UTC"),
    Column("id", INT),
    Column("actor", TEXT, "token:<prefix>, user:<name> or system"),
    Column("via", TEXT, "admin, api, cli, config or system"),
    Column("action", TEXT),
    Column("object_type", TEXT),
    Column("object_id", TEXT),
    Column("before", JSON),
    Column("after", JSON),
]


def _queryset(ctx: ExportContext):
    return AuditLog.objects.filter(
        organization=ctx.organization, created_at__gte=ctx.start, created_at__lt=ctx.end
    )


def columns(ctx: ExportContext) -> list[Column]:
    return COLUMNS


def count(ctx: ExportContext) -> int:
    return _queryset(ctx).count()


def rows(ctx: ExportContext, totals: Totals) -> Iterator[tuple]:
    values = (
        _queryset(ctx)
        .order_by("created_at", "id")
        .values_list(
            "created_at",
            "id",
            "actor",
            "via",
            "action",
            "object_type",
            "object_id",
            "before",
            "after",
        )
        .iterator(chunk_size=CHUNK_SIZE)
    )
    for created_at, *rest in values:
        yield (iso_utc(created_at), *rest)
