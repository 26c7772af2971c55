"""SpendUserMonth: the per-user rollup summed by the organization's calendar month, kept by
statement triggers on gateway_spenduserdaily (whatever writes the daily rows, the fold or a
rebuild, moves the month rows in the same transaction by the same amounts), filled from the
daily rows. Triggers on the daily table, not on the events: the event triggers and the deltas
stay as they are. PostgreSQL only (SQLite's readers sum the events)."""

import chargeback.money
import django.db.models.deletion
from decimal import Decimal
from django.db import migrations, models


KEY = 'organization_id, day, department_id, "user", consumer_group_id'
FIGURES = [
    "requests",
    "cost",
    "prompt_tokens",
    "completion_tokens",
    "cache_hits",
    "cache_saved",
    "premium_requests",
    "premium_cost",
    "fingerprinted",
    "fingerprinted_cost",
    "firsts",
    "first_cost",
    "cache_cost",
]
MONTH_KEY = (
    "organization_id, date_trunc('month', day)::date, department_id, \"user\", consumer_group_id"
)


def _rows(table: str, sign: str) -> str:
    return f"SELECT {KEY}, {', '.join(f'{sign}{f} AS {f}' for f in FIGURES)} FROM {table}"


def _apply(rows: str) -> str:
    """Move the months of a set of daily rows (signed: what a statement took back is negative)
    by their sums: one upsert per statement, each month key once."""
    sums = ", ".join(f"sum({f})" for f in FIGURES)
    updates = ", ".join(f"{f} = m.{f} + excluded.{f}" for f in FIGURES)
    return f"""
        INSERT INTO gateway_spendusermonth AS m ({KEY}, {", ".join(FIGURES)})
        SELECT {MONTH_KEY}, {sums} FROM ({rows}) AS r
        GROUP BY 1, 2, 3, 4, 5
        ON CONFLICT ON CONSTRAINT spend_user_month_key DO UPDATE SET {updates};"""


FORWARD = f"""
CREATE FUNCTION gateway_spend_user_month() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN {_apply(_rows("new_rows", ""))}
    ELSIF TG_OP = 'DELETE' THEN {_apply(_rows("old_rows", "-"))}
    ELSE {_apply(_rows("new_rows", "") + " UNION ALL " + _rows("old_rows", "-"))}
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER spend_user_month_insert AFTER INSERT ON gateway_spenduserdaily
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION gateway_spend_user_month();
CREATE TRIGGER spend_user_month_update AFTER UPDATE ON gateway_spenduserdaily
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION gateway_spend_user_month();
CREATE TRIGGER spend_user_month_delete AFTER DELETE ON gateway_spenduserdaily
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION gateway_spend_user_month();
-- An organization's months again from its daily rows (after gateway_spend_rebuild, which
-- rewrites the daily rows: the triggers move the months by the difference, this resets them).
CREATE FUNCTION gateway_spend_user_month_rebuild(org bigint) RETURNS void LANGUAGE sql AS $$
    DELETE FROM gateway_spendusermonth WHERE organization_id = org;
    INSERT INTO gateway_spendusermonth ({KEY}, {", ".join(FIGURES)})
    SELECT {MONTH_KEY}, {", ".join(f"sum({f})" for f in FIGURES)}
    FROM gateway_spenduserdaily WHERE organization_id = org GROUP BY 1, 2, 3, 4, 5;
$$;
-- No daily row may change between the fill and the triggers (the fold waits for the commit).
LOCK TABLE gateway_spenduserdaily IN SHARE ROW EXCLUSIVE MODE;
INSERT INTO gateway_spendusermonth ({KEY}, {", ".join(FIGURES)})
SELECT {MONTH_KEY}, {", ".join(f"sum({f})" for f in FIGURES)}
FROM gateway_spenduserdaily GROUP BY 1, 2, 3, 4, 5 ORDER BY 1, 2;
ANALYZE gateway_spendusermonth;
"""
BACKWARD = """
DROP TRIGGER spend_user_month_insert ON gateway_spenduserdaily;
DROP TRIGGER spend_user_month_update ON gateway_spenduserdaily;
DROP TRIGGER spend_user_month_delete ON gateway_spenduserdaily;
DROP FUNCTION gateway_spend_user_month();
DROP FUNCTION gateway_spend_user_month_rebuild(bigint);
DELETE FROM gateway_spendusermonth;
"""


def _forward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(FORWARD)


def _backward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(BACKWARD)


class Migration(migrations.Migration):
    dependencies = [
        ("chargeback", "0007_organization_allocation_policy"),
        ("gateway", "0014_usage_event_partitions"),
    ]

    operations = [
        migrations.CreateModel(
            name="SpendUserMonth",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                (
                    "day",
                    models.DateField(help_text="the organization's calendar day (its time zone)"),
                ),
                ("requests", models.BigIntegerField(default=0)),
                (
                    "cost",
                    chargeback.money.AmountField(
                        decimal_places=8, default=Decimal("0"), max_digits=20
                    ),
                ),
                ("prompt_tokens", models.BigIntegerField(default=0)),
                ("completion_tokens", models.BigIntegerField(default=0)),
                ("cache_hits", models.BigIntegerField(default=0)),
                (
                    "cache_saved",
                    chargeback.money.AmountField(
                        decimal_places=8,
                        default=Decimal("0"),
                        help_text="saved - cost of the cache hits",
                        max_digits=20,
                    ),
                ),
                ("premium_requests", models.BigIntegerField(default=0)),
                (
                    "premium_cost",
                    chargeback.money.AmountField(
                        decimal_places=8,
                        default=Decimal("0"),
                        help_text="cost priced by a premium price row",
                        max_digits=20,
                    ),
                ),
                (
                    "fingerprinted",
                    models.BigIntegerField(
                        default=0, help_text="successful requests with a prompt fingerprint"
                    ),
                ),
                (
                    "fingerprinted_cost",
                    chargeback.money.AmountField(
                        decimal_places=8, default=Decimal("0"), max_digits=20
                    ),
                ),
                (
                    "firsts",
                    models.BigIntegerField(
                        default=0,
                        help_text="those that were the first of their fingerprint in the month",
                    ),
                ),
                (
                    "first_cost",
                    chargeback.money.AmountField(
                        decimal_places=8, default=Decimal("0"), max_digits=20
                    ),
                ),
                (
                    "cache_cost",
                    chargeback.money.AmountField(
                        decimal_places=8,
                        default=Decimal("0"),
                        help_text="cost of the cache hits (what no provider billed)",
                        max_digits=20,
                    ),
                ),
                ("user", models.CharField(blank=True, max_length=200)),
                ("consumer_group_id", models.BigIntegerField(blank=True, null=True)),
                (
                    "department",
                    models.ForeignKey(
                        blank=True,
                        db_constraint=False,
                        db_index=False,
                        null=True,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="+",
                        to="chargeback.department",
                    ),
                ),
                (
                    "organization",
                    models.ForeignKey(
                        db_constraint=False,
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="+",
                        to="chargeback.organization",
                    ),
                ),
            ],
            options={
                "constraints": [
                    models.UniqueConstraint(
                        fields=("organization", "day", "department", "user", "consumer_group_id"),
                        name="spend_user_month_key",
                        nulls_distinct=False,
                    )
                ],
            },
        ),
        migrations.RunPython(_forward, _backward),
    ]
