"""Where an export's rows are read, and how its progress reaches `kt export-jobs create --wait`."""

from contextlib import nullcontext

from django.db import DEFAULT_DB_ALIAS, connection, connections, transaction

from chargeback.replica import read_alias
from reports.models import ExportJob


class Progress:
    """Where the rows are read and how progress is reported.

    On PostgreSQL the rows are read inside one transaction: outside one, Django's server-side
    cursor is WITH HOLD and PostgreSQL materialises the whole result before the first row (21 s
    for a million events here). The transaction's own writes would stay invisible until it ends,
    so progress goes through a second connection. Elsewhere (SQLite in the demo, where a second
    writer would wait for the first) both happen on the default connection.
    """

    def __init__(self, job_id: str):
        self.job_id = job_id
        self.side = None
        if connection.vendor == "postgresql":
            self.side = connections.create_connection(DEFAULT_DB_ALIAS)

    def reading(self):
        # On the database the rows are read from: the replica, when the run reads there.
        return transaction.atomic(using=read_alias()) if self.side is not None else nullcontext()

    def report(self, written: int) -> None:
        if self.side is None:
            ExportJob.objects.filter(pk=self.job_id).update(rows_written=written)
            return
        with self.side.cursor() as cursor:
            cursor.execute(
                f"UPDATE {ExportJob._meta.db_table} SET rows_written = %s WHERE id = %s",  # noqa: S608 - table name from the model
                [written, self.job_id],
            )

    def close(self) -> None:
        if self.side is not None:
            self.side.close()
