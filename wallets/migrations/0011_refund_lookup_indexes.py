"""Refunds find their capture and the call's earlier refunds by index (issue 18): a hash index
on the captures' reference (the request id) and a small partial B-tree on refunds. Both built
CONCURRENTLY: the ledger may hold millions of captures."""

import importlib

from django.db import migrations, models

FUNDING = importlib.import_module("wallets.migrations.0005_ledger_funding_indexes")

CAPTURE_INDEX = """
CREATE INDEX CONCURRENTLY IF NOT EXISTS ledger_capture_reference ON wallets_ledgerentry
    USING hash (reference) WHERE kind = 'capture'
"""


# A hash index is PostgreSQL's; elsewhere (SQLite: the embedded demo) refunds scan.
def _capture_index(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CAPTURE_INDEX)


def _capture_index_gone(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("DROP INDEX CONCURRENTLY IF EXISTS ledger_capture_reference")


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("chargeback", "0007_organization_allocation_policy"),
        ("wallets", "0010_ledger_hold_id_kept"),
    ]

    operations = [
        FUNDING.AddIndexConcurrentlyOnPostgreSQL(
            model_name="ledgerentry",
            index=models.Index(
                condition=models.Q(("kind", "refund")),
                fields=["wallet", "reference"],
                include=("amount",),
                name="ledger_refund_reference",
            ),
        ),
        migrations.RunPython(_capture_index, _capture_index_gone),
    ]
