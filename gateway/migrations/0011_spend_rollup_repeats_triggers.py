"""The rollups' triggers again, for what 0010 added: premium spend, repeated prompts (counted at
write time through gateway_promptmonth) and a second rollup per user and consumer group.

Repeats: a successful request with a prompt fingerprint is a repeat when its fingerprint was
already seen earlier (by created_at, then id) in the same department and calendar month of the
organization. The insert trigger upserts one gateway_promptmonth row per (department, month,
fingerprint) of the statement, keeping the earliest event as `first`; the rollups count the
events that are a `first` (`firsts`, `first_cost`). Keeping the minimum is order-free, so two
transactions inserting the same prompt in either commit order end with the same first; when a
late event turns out earlier than the stored first, the stored one's `firsts` count is taken
back (prev_first_id tells which). An update or delete (rare: a late capture replacing a $0
placeholder, data removed) recomputes the fingerprints it touches from the events.
"""

import importlib

from django.db import migrations

ROLLUP_0008 = importlib.import_module("gateway.migrations.0008_spend_rollup_triggers")

FIGURES = (
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
)
# delta table -> (daily table, its key columns, the events' expressions for them)
ROLLUPS = {
    "gateway_spenddelta": (
        "gateway_spenddaily",
        "provider, model",
        "r.provider AS provider, r.model_requested AS model",
    ),
    "gateway_spenduserdelta": (
        "gateway_spenduserdaily",
        '"user", consumer_group_id',
        'r."user" AS "user", r.consumer_group_id AS consumer_group_id',
    ),
}
REPEATABLE = "r.status = 'ok' AND r.prompt_fingerprint <> ''"
LOCAL_MONTH = "date_trunc('month', r.created_at AT TIME ZONE o.time_zone)::date"
LOCK = ROLLUP_0008.LOCK


def _figures(sign: str, first: str) -> str:
    """The sums of events `r` (organization `o`, price `p`); `first`: which of them are the first
    of their fingerprint and month (an SQL condition)."""
    return f"""
        {sign}count(*), {sign}coalesce(sum(r.cost), 0),
        {sign}coalesce(sum(r.prompt_tokens), 0), {sign}coalesce(sum(r.completion_tokens), 0),
        {sign}count(*) FILTER (WHERE r.status = 'cache_hit'),
        {sign}coalesce(sum(r.saved - r.cost) FILTER (WHERE r.status = 'cache_hit'), 0),
        {sign}count(*) FILTER (WHERE p.premium),
        {sign}coalesce(sum(r.cost) FILTER (WHERE p.premium), 0),
        {sign}count(*) FILTER (WHERE {REPEATABLE}),
        {sign}coalesce(sum(r.cost) FILTER (WHERE {REPEATABLE}), 0),
        {sign}count(*) FILTER (WHERE {first}),
        {sign}coalesce(sum(r.cost) FILTER (WHERE {first}), 0)
    """


def _firsts_only() -> str:
    """The sums of first-ness changes `r` (each with its `sign`): only firsts and first_cost."""
    zeros = ", ".join("0" for _ in FIGURES[:-2])
    return f"{zeros}, sum(r.sign), sum(r.sign * r.cost)"


def _append(rows: str, figures: str) -> str:
    """INSERT the sums of `rows` (a FROM item aliased r) into both delta tables."""
    statements = []
    for delta, (_, keys, exprs) in ROLLUPS.items():
        statements.append(f"""
        INSERT INTO {delta} (organization_id, department_id, day, {keys}, {", ".join(FIGURES)})
        SELECT r.organization_id, r.department_id, (r.created_at AT TIME ZONE o.time_zone)::date,
               {exprs}, {figures}
        FROM {rows} JOIN chargeback_organization o ON o.id = r.organization_id
        LEFT JOIN gateway_price p ON p.id = r.price_id
        GROUP BY 1, 2, 3, 4, 5;""")
    return "\n".join(statements)


PM_COLUMNS = (
    "organization_id, department_id, month, fingerprint, requests, cost, first_at, first_id,"
    " first_cost, prev_first_id"
)
PM_KEY = "(organization_id, department_id, month, fingerprint)"
# One fingerprint group's events in `g` (organization, department, month, fingerprint, tz).
_GROUP_EVENTS = """
    SELECT count(*) AS requests, coalesce(sum(e.cost), 0) AS cost,
           (array_agg(e.created_at ORDER BY e.created_at, e.id))[1] AS first_at,
           (array_agg(e.id ORDER BY e.created_at, e.id))[1] AS first_id,
           (array_agg(e.cost ORDER BY e.created_at, e.id))[1] AS first_cost
    FROM gateway_usageevent e
    WHERE e.organization_id = g.organization_id
      AND e.department_id IS NOT DISTINCT FROM g.department_id
      AND e.created_at >= (g.month::timestamp AT TIME ZONE g.time_zone)
      AND e.created_at < ((g.month + interval '1 month')::timestamp AT TIME ZONE g.time_zone)
      AND e.status = 'ok' AND e.prompt_fingerprint = g.fingerprint
"""


def _groups(rows: str) -> str:
    return f"""
        SELECT DISTINCT r.organization_id, r.department_id, {LOCAL_MONTH} AS month,
               r.prompt_fingerprint AS fingerprint, o.time_zone
        FROM {rows} r JOIN chargeback_organization o ON o.id = r.organization_id
        WHERE {REPEATABLE}"""


_PM_MATCH = """pm.organization_id = g.organization_id
    AND pm.department_id IS NOT DISTINCT FROM g.department_id AND pm.month = g.month
    AND pm.fingerprint = g.fingerprint"""

# The touched fingerprint groups `g` recomputed from the events; `was` gets their first events
# before, `now_first` after (one statement: `was` reads the rows as they were before it).
_RECOMPUTE = f"""fresh AS (
        SELECT g.organization_id, g.department_id, g.month, g.fingerprint, x.*
        FROM g CROSS JOIN LATERAL ({_GROUP_EVENTS}) x
    ), gone AS (
        DELETE FROM gateway_promptmonth pm USING fresh g WHERE {_PM_MATCH} AND g.requests = 0
    ), kept AS (
        INSERT INTO gateway_promptmonth AS pm ({PM_COLUMNS})
        SELECT fresh.*, NULL FROM fresh WHERE requests > 0 ORDER BY 1, 2, 3, 4
        ON CONFLICT {PM_KEY} DO UPDATE SET
            requests = EXCLUDED.requests, cost = EXCLUDED.cost, prev_first_id = pm.first_id,
            first_at = EXCLUDED.first_at, first_id = EXCLUDED.first_id,
            first_cost = EXCLUDED.first_cost
    )
    SELECT (SELECT array_agg(pm.first_id) FROM g JOIN gateway_promptmonth pm ON {_PM_MATCH}),
           (SELECT array_agg(first_id) FROM fresh WHERE requests > 0)
    INTO was, now_first;"""

FORWARD = f"""
DROP TRIGGER gateway_spend_insert ON gateway_usageevent;
DROP TRIGGER gateway_spend_update ON gateway_usageevent;
DROP TRIGGER gateway_spend_delete ON gateway_usageevent;
DROP FUNCTION gateway_spend_delta();

-- Inserts (the gateway's path): the fingerprints' first events, then the statement's sums.
CREATE FUNCTION gateway_spend_insert() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    plus bigint[];
    minus bigint[];
BEGIN
    WITH f AS (
        SELECT r.organization_id, r.department_id, {LOCAL_MONTH} AS month,
               r.prompt_fingerprint AS fingerprint, count(*) AS requests, sum(r.cost) AS cost,
               (array_agg(r.created_at ORDER BY r.created_at, r.id))[1] AS first_at,
               (array_agg(r.id ORDER BY r.created_at, r.id))[1] AS first_id,
               (array_agg(r.cost ORDER BY r.created_at, r.id))[1] AS first_cost
        FROM new_rows r JOIN chargeback_organization o ON o.id = r.organization_id
        WHERE {REPEATABLE}
        GROUP BY 1, 2, 3, 4
    ), up AS (
        INSERT INTO gateway_promptmonth AS pm ({PM_COLUMNS})
        SELECT f.*, NULL FROM f ORDER BY 1, 2, 3, 4  -- one lock order for every writer
        ON CONFLICT {PM_KEY} DO UPDATE SET
            requests = pm.requests + EXCLUDED.requests,
            cost = pm.cost + EXCLUDED.cost,
            prev_first_id = pm.first_id,
            first_at = CASE WHEN (EXCLUDED.first_at, EXCLUDED.first_id) < (pm.first_at, pm.first_id)
                THEN EXCLUDED.first_at ELSE pm.first_at END,
            first_id = CASE WHEN (EXCLUDED.first_at, EXCLUDED.first_id) < (pm.first_at, pm.first_id)
                THEN EXCLUDED.first_id ELSE pm.first_id END,
            first_cost = CASE WHEN (EXCLUDED.first_at, EXCLUDED.first_id) < (pm.first_at, pm.first_id)
                THEN EXCLUDED.first_cost ELSE pm.first_cost END
        RETURNING pm.first_id, pm.prev_first_id
    )
    SELECT array_agg(first_id) FILTER (WHERE prev_first_id IS DISTINCT FROM first_id),
           array_agg(prev_first_id) FILTER (WHERE prev_first_id <> first_id)
    INTO plus, minus FROM up;
    {_append("new_rows r", _figures("", "r.id = ANY(plus)"))}
    IF minus IS NOT NULL THEN
        -- Events that were first until an earlier one arrived (a new statement: it sees them
        -- even when another transaction committed them after this one started).
        {_append("(SELECT -1 AS sign, e.* FROM gateway_usageevent e WHERE e.id = ANY(minus)) r",
                 _firsts_only())}
    END IF;
    RETURN NULL;
END $$;

-- Updates and deletes: the old rows' sums taken back, the new ones' added, and the fingerprints
-- they touch recomputed from the events.
CREATE FUNCTION gateway_spend_change() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    was bigint[];
    now_first bigint[];
BEGIN
    {_append("old_rows r", _figures("-", "false"))}
    IF TG_OP = 'UPDATE' THEN
        {_append("new_rows r", _figures("", "false"))}
        WITH g AS ({_groups("old_rows")} UNION {_groups("new_rows")}), {_RECOMPUTE}
    ELSE
        WITH g AS ({_groups("old_rows")}), {_RECOMPUTE}
    END IF;
    -- The former firsts as they were (the old rows' version when this statement changed them),
    -- the present ones as they are.
    {_append(
        "(SELECT -1 AS sign, o.* FROM old_rows o WHERE o.id = ANY(was)"
        " UNION ALL SELECT -1, e.* FROM gateway_usageevent e WHERE e.id = ANY(was)"
        " AND NOT EXISTS (SELECT 1 FROM old_rows o WHERE o.id = e.id)"
        " UNION ALL SELECT 1, e.* FROM gateway_usageevent e WHERE e.id = ANY(now_first)) r",
        _firsts_only(),
    )}
    RETURN NULL;
END $$;

CREATE TRIGGER gateway_spend_insert AFTER INSERT ON gateway_usageevent
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION gateway_spend_insert();
CREATE TRIGGER gateway_spend_update AFTER UPDATE ON gateway_usageevent
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION gateway_spend_change();
CREATE TRIGGER gateway_spend_delete AFTER DELETE ON gateway_usageevent
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION gateway_spend_change();

-- Every delta into its daily rows, in one statement per rollup (exactly once).
CREATE OR REPLACE FUNCTION gateway_spend_fold() RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    moved bigint;
    total bigint := 0;
BEGIN
    {LOCK}
    {"".join(f'''
    WITH gone AS (DELETE FROM {delta} RETURNING *)
    INSERT INTO {daily} (organization_id, department_id, day, {keys}, {", ".join(FIGURES)})
    SELECT organization_id, department_id, day, {keys}, {", ".join(f"sum({f})" for f in FIGURES)}
    FROM gone GROUP BY 1, 2, 3, 4, 5
    ON CONFLICT (organization_id, day, department_id, {keys}) DO UPDATE SET
        {", ".join(f"{f} = {daily}.{f} + EXCLUDED.{f}" for f in FIGURES)};
    GET DIAGNOSTICS moved = ROW_COUNT;
    total := total + moved;''' for delta, (daily, keys, _) in ROLLUPS.items())}
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
    ), {", ".join(f'''
    fresh_{n} AS (
        SELECT r.organization_id, r.department_id,
               (r.created_at AT TIME ZONE o.time_zone)::date AS day, {exprs},
               {_figures("", "r.is_first")}
        FROM ev r JOIN chargeback_organization o ON o.id = r.organization_id
        LEFT JOIN gateway_price p ON p.id = r.price_id
        GROUP BY 1, 2, 3, 4, 5
    ), gone_{n} AS (DELETE FROM {delta} WHERE organization_id = org),
    stale_{n} AS (
        DELETE FROM {daily} d WHERE d.organization_id = org AND NOT EXISTS (
            SELECT 1 FROM fresh_{n} f WHERE f.day = d.day
            AND f.department_id IS NOT DISTINCT FROM d.department_id
            AND ({", ".join(f"f.{k.strip()}" for k in keys.split(","))})
                IS NOT DISTINCT FROM ({", ".join(f"d.{k.strip()}" for k in keys.split(","))}))
    ), put_{n} AS (
        INSERT INTO {daily} (organization_id, department_id, day, {keys}, {", ".join(FIGURES)})
        SELECT * FROM fresh_{n}
        ON CONFLICT (organization_id, day, department_id, {keys}) DO UPDATE SET
            {", ".join(f"{f} = EXCLUDED.{f}" for f in FIGURES)}
    )''' for n, (delta, (daily, keys, exprs)) in enumerate(ROLLUPS.items()))},
    prompts AS (
        SELECT r.organization_id, r.department_id, r.month, r.prompt_fingerprint AS fingerprint,
               count(*), sum(r.cost),
               (array_agg(r.created_at ORDER BY r.created_at, r.id))[1],
               (array_agg(r.id ORDER BY r.created_at, r.id))[1],
               (array_agg(r.cost ORDER BY r.created_at, r.id))[1], NULL::bigint
        FROM ev r WHERE {REPEATABLE} GROUP BY 1, 2, 3, 4
    ), prompts_stale AS (
        DELETE FROM gateway_promptmonth pm WHERE pm.organization_id = org AND NOT EXISTS (
            SELECT 1 FROM prompts g WHERE {_PM_MATCH})
    )
    INSERT INTO gateway_promptmonth AS pm ({PM_COLUMNS}) SELECT * FROM prompts
    ON CONFLICT {PM_KEY} DO UPDATE SET
        requests = EXCLUDED.requests, cost = EXCLUDED.cost, prev_first_id = NULL,
        first_at = EXCLUDED.first_at, first_id = EXCLUDED.first_id,
        first_cost = EXCLUDED.first_cost;
END $$;

-- A price marked premium or not any more: its events' organizations recomputed.
CREATE FUNCTION gateway_spend_price_premium() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM gateway_spend_rebuild(org.organization_id) FROM (
        SELECT DISTINCT organization_id FROM gateway_usageevent WHERE price_id = NEW.id
    ) org;
    RETURN NULL;
END $$;
CREATE TRIGGER gateway_spend_price_premium AFTER UPDATE OF premium ON gateway_price
    FOR EACH ROW WHEN (OLD.premium IS DISTINCT FROM NEW.premium)
    EXECUTE FUNCTION gateway_spend_price_premium();

SELECT gateway_spend_rebuild(id) FROM chargeback_organization;
"""

# 0008's functions and triggers again, without its first fill: the daily rows are right as they
# are, and its rebuild would not fill the columns 0010 added (dropped right after this).
_FILL = "SELECT gateway_spend_rebuild(id) FROM chargeback_organization;"
assert _FILL in ROLLUP_0008.FORWARD
BACKWARD = f"""
DROP TRIGGER IF EXISTS gateway_spend_price_premium ON gateway_price;
DROP FUNCTION IF EXISTS gateway_spend_price_premium();
{ROLLUP_0008.BACKWARD}
DROP FUNCTION IF EXISTS gateway_spend_insert();
DROP FUNCTION IF EXISTS gateway_spend_change();
{ROLLUP_0008.FORWARD.replace(_FILL, "")}
"""


# PostgreSQL only, like 0008 (SQLite's readers sum the events).
def _forward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(FORWARD)


def _backward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(BACKWARD)


class Migration(migrations.Migration):
    dependencies = [
        ("gateway", "0010_spend_rollups_repeats_users"),
    ]

    operations = [
        migrations.RunPython(_forward, _backward),
    ]
