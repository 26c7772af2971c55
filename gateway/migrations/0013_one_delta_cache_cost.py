"""One delta table for both rollups, and what cache hits cost as a figure.

Each event-writing statement appended two delta rows (one per rollup, 0011); now it appends one
row per key of both rollups (provider, model, user, consumer group), and the fold splits it into
both daily tables. The insert trigger skips the prompt-fingerprint upsert when the statement has
no successful fingerprinted event (a cache hit, a failure): on a free cache hit, the trigger
cost 0.11 ms and now about half (docs/performance.md).

`cache_cost` (the cost of the cache hits, the organization's own cache price: no provider billed
it) lets reconciliation take what each provider billed from the rollups (cost - cache_cost)
instead of summing a month of events.

The deltas are folded first, then the new figure is filled in from the priced cache hits (one
pass over the events); event writers wait for the migration (about a scan of the events table).
"""

import importlib

import chargeback.money
from decimal import Decimal
from django.db import migrations, models

R11 = importlib.import_module("gateway.migrations.0011_spend_rollup_repeats_triggers")

FIGURES = (*R11.FIGURES, "cache_cost")
DELTA = "gateway_spenddelta"
DELTA_KEYS = 'provider, model, "user", consumer_group_id'
DELTA_EXPRS = 'r.provider, r.model_requested, r."user", r.consumer_group_id'
# daily table -> (its key columns, the events' expressions for them)
DAILY = {
    "gateway_spenddaily": ("provider, model", "r.provider AS provider, r.model_requested AS model"),
    "gateway_spenduserdaily": (
        '"user", consumer_group_id',
        'r."user" AS "user", r.consumer_group_id AS consumer_group_id',
    ),
}
REPEATABLE = R11.REPEATABLE
LOCAL_MONTH = R11.LOCAL_MONTH
LOCK = R11.LOCK


def _figures(sign: str, first: str) -> str:
    """0011's sums of events `r`, and what the cache hits cost."""
    return f"""{R11._figures(sign, first)},
        {sign}coalesce(sum(r.cost) FILTER (WHERE r.status = 'cache_hit'), 0)"""


def _firsts_only() -> str:
    """The sums of first-ness changes `r` (each with its `sign`): only firsts and first_cost."""
    return f"{', '.join('0' for _ in FIGURES[:-3])}, sum(r.sign), sum(r.sign * r.cost), 0"


def _append(rows: str, figures: str) -> str:
    """INSERT the sums of `rows` (a FROM item aliased r) into the delta table."""
    return f"""
        INSERT INTO {DELTA} (organization_id, department_id, day, {DELTA_KEYS}, {", ".join(FIGURES)})
        SELECT r.organization_id, r.department_id, (r.created_at AT TIME ZONE o.time_zone)::date,
               {DELTA_EXPRS}, {figures}
        FROM {rows} JOIN chargeback_organization o ON o.id = r.organization_id
        LEFT JOIN gateway_price p ON p.id = r.price_id
        GROUP BY 1, 2, 3, 4, 5, 6, 7;"""


# Key columns that may be NULL (no department, no consumer group); ids are positive.
_NULLABLE = {"department_id", "consumer_group_id"}


def _same_key(a: str, b: str, keys: str) -> str:
    """Rows `a` and `b` have the same daily key, NULL equal to NULL, as plain equalities: a hash
    join can answer them (IS NOT DISTINCT FROM cannot be hashed: comparing a month of one
    organization's per-user rows that way is a product of two millions-row sets)."""
    columns = ["day", "department_id", *(k.strip() for k in keys.split(","))]
    return " AND ".join(
        f"coalesce({a}.{c}, 0) = coalesce({b}.{c}, 0)" if c in _NULLABLE else f"{a}.{c} = {b}.{c}"
        for c in columns
    )


def _fold_into(daily: str, keys: str) -> str:
    """The deleted deltas (`gone`) summed into a daily table by its keys."""
    return f"""INSERT INTO {daily} (organization_id, department_id, day, {keys}, {", ".join(FIGURES)})
        SELECT organization_id, department_id, day, {keys},
               {", ".join(f"sum({f})" for f in FIGURES)}
        FROM gone GROUP BY 1, 2, 3, 4, 5
        ON CONFLICT (organization_id, day, department_id, {keys}) DO UPDATE SET
            {", ".join(f"{f} = {daily}.{f} + EXCLUDED.{f}" for f in FIGURES)}
        RETURNING 1"""


# 0011's fingerprint upsert, as it was (`plus`: the events now first; `minus`: first no more).
_START = "    WITH f AS ("
_END = "INTO plus, minus FROM up;"
PROMPT_UPSERT = R11.FORWARD[R11.FORWARD.index(_START) : R11.FORWARD.index(_END) + len(_END)]

FORWARD = f"""
-- Inserts (the gateway's path): the fingerprints' first events when the statement has any
-- successful fingerprinted event, then the statement's sums.
CREATE OR REPLACE FUNCTION gateway_spend_insert() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    plus bigint[];
    minus bigint[];
BEGIN
    IF EXISTS (SELECT FROM new_rows r WHERE {REPEATABLE}) THEN
    {PROMPT_UPSERT}
    END IF;
    {_append("new_rows r", _figures("", "r.id = ANY(plus)"))}
    IF minus IS NOT NULL THEN
        -- Events that were first until an earlier one arrived (a new statement: it sees them
        -- even when another transaction committed them after this one started).
        {
    _append(
        "(SELECT -1 AS sign, e.* FROM gateway_usageevent e WHERE e.id = ANY(minus)) r",
        _firsts_only(),
    )
}
    END IF;
    RETURN NULL;
END $$;

-- Updates and deletes: the old rows' sums taken back, the new ones' added, and the fingerprints
-- they touch recomputed from the events.
CREATE OR REPLACE FUNCTION gateway_spend_change() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    was bigint[];
    now_first bigint[];
BEGIN
    {_append("old_rows r", _figures("-", "false"))}
    IF TG_OP = 'UPDATE' THEN
        {_append("new_rows r", _figures("", "false"))}
        WITH g AS ({R11._groups("old_rows")} UNION {R11._groups("new_rows")}), {R11._RECOMPUTE}
    ELSE
        WITH g AS ({R11._groups("old_rows")}), {R11._RECOMPUTE}
    END IF;
    -- The former firsts as they were (the old rows' version when this statement changed them),
    -- the present ones as they are.
    {
    _append(
        "(SELECT -1 AS sign, o.* FROM old_rows o WHERE o.id = ANY(was)"
        " UNION ALL SELECT -1, e.* FROM gateway_usageevent e WHERE e.id = ANY(was)"
        " AND NOT EXISTS (SELECT 1 FROM old_rows o WHERE o.id = e.id)"
        " UNION ALL SELECT 1, e.* FROM gateway_usageevent e WHERE e.id = ANY(now_first)) r",
        _firsts_only(),
    )
}
    RETURN NULL;
END $$;

-- Every delta into both daily tables, in one statement (exactly once). Returns the keys moved.
CREATE OR REPLACE FUNCTION gateway_spend_fold() RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    total bigint;
BEGIN
    {LOCK}
    WITH gone AS (DELETE FROM {DELTA} RETURNING *),
    {
    ", ".join(
        f"d{n} AS ({_fold_into(daily, keys)})" for n, (daily, (keys, _)) in enumerate(DAILY.items())
    )
}
    SELECT (SELECT count(*) FROM d0) + (SELECT count(*) FROM d1) INTO total;
    RETURN total;
END $$;

-- An organization's rollups and fingerprints recomputed from its events, in one statement (one
-- snapshot) while its event writers wait (SHARE lock), so none is counted twice or lost.
CREATE OR REPLACE FUNCTION gateway_spend_rebuild(org bigint) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    {LOCK}
    LOCK TABLE gateway_usageevent IN SHARE MODE;
    WITH ev AS (
        SELECT r.*, {LOCAL_MONTH} AS month, ({REPEATABLE} AND row_number() OVER (
            PARTITION BY r.department_id, {LOCAL_MONTH}, r.prompt_fingerprint, ({REPEATABLE})
            ORDER BY r.created_at, r.id) = 1) AS is_first
        FROM gateway_usageevent r JOIN chargeback_organization o ON o.id = r.organization_id
        WHERE r.organization_id = org
    ), gone AS (DELETE FROM {DELTA} WHERE organization_id = org), {
    ", ".join(
        f'''
    fresh_{n} AS (
        SELECT r.organization_id, r.department_id,
               (r.created_at AT TIME ZONE o.time_zone)::date AS day, {exprs},
               {_figures("", "r.is_first")}
        FROM ev r JOIN chargeback_organization o ON o.id = r.organization_id
        LEFT JOIN gateway_price p ON p.id = r.price_id
        GROUP BY 1, 2, 3, 4, 5
    ), stale_{n} AS (
        DELETE FROM {daily} d WHERE d.organization_id = org AND NOT EXISTS (
            SELECT 1 FROM fresh_{n} f WHERE {_same_key("f", "d", keys)})
    ), put_{n} AS (
        INSERT INTO {daily} (organization_id, department_id, day, {keys}, {", ".join(FIGURES)})
        SELECT * FROM fresh_{n}
        ON CONFLICT (organization_id, day, department_id, {keys}) DO UPDATE SET
            {", ".join(f"{f} = EXCLUDED.{f}" for f in FIGURES)}
    )'''
        for n, (daily, (keys, exprs)) in enumerate(DAILY.items())
    )
},
    prompts AS (
        SELECT r.organization_id, r.department_id, r.month, r.prompt_fingerprint AS fingerprint,
               count(*), sum(r.cost),
               (array_agg(r.created_at ORDER BY r.created_at, r.id))[1],
               (array_agg(r.id ORDER BY r.created_at, r.id))[1],
               (array_agg(r.cost ORDER BY r.created_at, r.id))[1], NULL::bigint
        FROM ev r WHERE {REPEATABLE} GROUP BY 1, 2, 3, 4
    ), prompts_stale AS (
        DELETE FROM gateway_promptmonth pm WHERE pm.organization_id = org AND NOT EXISTS (
            SELECT 1 FROM prompts g WHERE {R11._PM_MATCH})
    )
    INSERT INTO gateway_promptmonth AS pm ({R11.PM_COLUMNS}) SELECT * FROM prompts
    ON CONFLICT {R11.PM_KEY} DO UPDATE SET
        requests = EXCLUDED.requests, cost = EXCLUDED.cost, prev_first_id = NULL,
        first_at = EXCLUDED.first_at, first_id = EXCLUDED.first_id,
        first_cost = EXCLUDED.first_cost;
END $$;
"""
REBUILD = "SELECT gateway_spend_rebuild(id) FROM chargeback_organization;"

# Before the tables change: event writers wait until the migration commits (they would anyway:
# their trigger writes the delta tables altered below), and 0011's fold empties both delta
# tables, so dropping the user deltas loses nothing and the daily rows hold every figure.
FOLD = "LOCK TABLE gateway_usageevent IN SHARE MODE; SELECT gateway_spend_fold();"


def _hit_costs_into(daily: str, keys: str) -> str:
    """The daily rows' cache_cost from the priced cache hits (`hits`; free hits cost 0)."""
    return f"""UPDATE {daily} d SET cache_cost = x.cost
        FROM (SELECT organization_id, department_id, day, {keys}, sum(cost) AS cost
              FROM hits GROUP BY 1, 2, 3, 4, 5) x
        WHERE d.organization_id = x.organization_id AND {_same_key("d", "x", keys)}"""


# The new figure for the rows already there: one pass over the events, not a rebuild (which
# sorts every event and took over 20 minutes at 11 M events on the 2-core bench machine).
_DAILY, _USER_DAILY = ((daily, keys) for daily, (keys, _) in DAILY.items())
FILL = f"""
WITH hits AS (
    SELECT r.organization_id, r.department_id, (r.created_at AT TIME ZONE o.time_zone)::date AS day,
           r.provider AS provider, r.model_requested AS model, r."user" AS "user",
           r.consumer_group_id AS consumer_group_id, sum(r.cost) AS cost
    FROM gateway_usageevent r JOIN chargeback_organization o ON o.id = r.organization_id
    WHERE r.status = 'cache_hit' AND r.cost <> 0
    GROUP BY 1, 2, 3, 4, 5, 6, 7
), daily AS ({_hit_costs_into(*_DAILY)})
{_hit_costs_into(*_USER_DAILY)};
"""

# Back to 0011's functions (the same names, so the triggers keep pointing at them).
_OLD_EVENTS = R11.FORWARD[
    R11.FORWARD.index("-- Inserts (the gateway's path)") : R11.FORWARD.index(
        "CREATE TRIGGER gateway_spend_insert"
    )
].replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION")
_OLD_ROLLUPS = R11.FORWARD[
    R11.FORWARD.index("-- Every delta into its daily rows") : R11.FORWARD.index(
        "-- A price marked premium"
    )
]
BACKWARD = _OLD_EVENTS + _OLD_ROLLUPS


# PostgreSQL only, like 0008 and 0011 (SQLite's readers sum the events).
def _sql(sql: str):
    def run(apps, schema_editor):
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.execute(sql)

    return run


AMOUNT = chargeback.money.AmountField(
    decimal_places=8,
    default=Decimal("0"),
    help_text="cost of the cache hits (what no provider billed)",
    max_digits=20,
)


class Migration(migrations.Migration):
    dependencies = [
        ("gateway", "0012_exchange_rates"),
    ]

    operations = [
        # Backward, last: the rollups recomputed by 0011's functions once its tables are back.
        migrations.RunPython(_sql(FOLD), _sql(REBUILD)),
        migrations.AddField(model_name="spenddaily", name="cache_cost", field=AMOUNT),
        migrations.AddField(model_name="spenddelta", name="cache_cost", field=AMOUNT),
        migrations.AddField(
            model_name="spenddelta",
            name="consumer_group_id",
            field=models.BigIntegerField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="spenddelta",
            name="user",
            field=models.CharField(blank=True, max_length=200),
        ),
        migrations.AddField(model_name="spenduserdaily", name="cache_cost", field=AMOUNT),
        migrations.DeleteModel(name="SpendUserDelta"),
        migrations.RunPython(_sql(FORWARD + FILL), _sql(BACKWARD)),
    ]
