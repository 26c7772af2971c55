"""Events a routing policy changed, by department and time: the department page's policy table
without reading the department's month of events. Partial (few events carry a policy).

Built without blocking the gateway's writes: CONCURRENTLY on a plain table; on the table
partitioned by month (gateway 0014) an index of the parent alone (ON ONLY, invalid until every
partition has its own), then each partition's CONCURRENTLY, attached to it. Partitions created
later get it from the parent. SQLite: a plain index."""

from django.db import migrations, models

T = "gateway_usageevent"
NAME = "event_policy_time"
SHAPE = "(organization_id, department_id, created_at) WHERE NOT (policy = '')"
INDEX = models.Index(
    condition=models.Q(("policy", ""), _negated=True),
    fields=["organization", "department", "created_at"],
    name=NAME,
)


def _forward(apps, schema_editor):
    connection = schema_editor.connection
    if connection.vendor != "postgresql":
        schema_editor.add_index(apps.get_model("gateway", "UsageEvent"), INDEX)
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT relkind FROM pg_class WHERE relname = %s", [T])
        if cursor.fetchone()[0] != "p":
            cursor.execute(f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {NAME} ON {T} {SHAPE}")
            return
        cursor.execute(f"CREATE INDEX IF NOT EXISTS {NAME} ON ONLY {T} {SHAPE}")
        cursor.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
            " WHERE i.inhparent = %s::regclass ORDER BY 1",
            [T],
        )
        for (partition,) in cursor.fetchall():
            own = f"{partition[:50]}_policy"
            cursor.execute(f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {own} ON {partition} {SHAPE}")
            cursor.execute(
                "SELECT 1 FROM pg_inherits WHERE inhrelid = %s::regclass"
                " AND inhparent = %s::regclass",
                [own, NAME],
            )
            if cursor.fetchone() is None:
                cursor.execute(f"ALTER INDEX {NAME} ATTACH PARTITION {own}")


def _backward(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        schema_editor.remove_index(apps.get_model("gateway", "UsageEvent"), INDEX)
        return
    schema_editor.execute(f"DROP INDEX IF EXISTS {NAME}")  # a parent's drops its partitions'


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("gateway", "0015_spend_user_month"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[migrations.AddIndex(model_name="usageevent", index=INDEX)],
            database_operations=[migrations.RunPython(_forward, _backward)],
        ),
    ]
