"""The ledger keeps its capture's hold id without a database constraint or an index of its own
(issue 18): resolved holds are deleted after KT_HOLD_RETENTION_DAYS (wallets/retention.py) and
the append-only ledger is never rewritten for it. Only capture entries carry a hold, and
ledger_one_capture_per_hold (unique, kind = 'capture') indexes exactly those; the plain hold_id
index held every entry, NULLs included. Dropping a constraint and an index: no table rewrite.

On PostgreSQL the two are dropped by name, not by Django's AlterField: that one drops every
non-Meta index on the column, and so `ledger_one_capture_per_hold` as well (Django 5.2)."""

import django.db.models.deletion
from django.db import migrations, models

TABLE = "wallets_ledgerentry"


class KeepHoldId(migrations.AlterField):
    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor != "postgresql":
            # SQLite rebuilds the table from the model state, its constraints included.
            return super().database_forwards(app_label, schema_editor, from_state, to_state)
        connection = schema_editor.connection
        with connection.cursor() as cursor:
            constraints = connection.introspection.get_constraints(cursor, TABLE)
        q = schema_editor.quote_name
        for name, info in constraints.items():
            if info["columns"] != ["hold_id"]:
                continue
            if info["foreign_key"]:
                schema_editor.execute(f"ALTER TABLE {q(TABLE)} DROP CONSTRAINT {q(name)}")
            elif info["index"] and not info["unique"]:
                schema_editor.execute(f"DROP INDEX {q(name)}")

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor != "postgresql":
            return super().database_backwards(app_label, schema_editor, from_state, to_state)
        # NOT VALID: holds deleted by the retention leave entries the constraint would refuse.
        schema_editor.execute(f'CREATE INDEX "{TABLE}_hold_id" ON "{TABLE}" (hold_id)')
        schema_editor.execute(
            f'ALTER TABLE "{TABLE}" ADD CONSTRAINT "{TABLE}_hold_id_fk" FOREIGN KEY (hold_id)'
            ' REFERENCES "wallets_hold" (id) DEFERRABLE INITIALLY DEFERRED NOT VALID'
        )


class Migration(migrations.Migration):
    dependencies = [
        ("wallets", "0009_cost_tickets"),
    ]

    operations = [
        KeepHoldId(
            model_name="ledgerentry",
            name="hold",
            field=models.ForeignKey(
                blank=True,
                db_constraint=False,
                db_index=False,
                null=True,
                on_delete=django.db.models.deletion.DO_NOTHING,
                related_name="entries",
                to="wallets.hold",
            ),
        ),
    ]
