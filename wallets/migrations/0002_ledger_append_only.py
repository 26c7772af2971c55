"""On PostgreSQL the database itself refuses UPDATE and DELETE on ledger entries."""

from django.db import migrations

FORWARD = """
CREATE OR REPLACE FUNCTION wallets_ledger_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'wallets_ledgerentry is append-only';
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER wallets_ledger_append_only
    BEFORE UPDATE OR DELETE ON wallets_ledgerentry
    FOR EACH ROW EXECUTE FUNCTION wallets_ledger_append_only();
"""
BACKWARD = """
DROP TRIGGER IF EXISTS wallets_ledger_append_only ON wallets_ledgerentry;
DROP FUNCTION IF EXISTS wallets_ledger_append_only();
"""


def forward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(FORWARD)


def backward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(BACKWARD)


class Migration(migrations.Migration):
    dependencies = [("wallets", "0001_initial")]
    operations = [migrations.RunPython(forward, backward)]
