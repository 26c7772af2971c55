"""The rollups' triggers and functions, and their first fill from the events: a migration of
its own, after the tables and their unique key exist (Django creates a model's constraints at
the end of the migration that creates it, and the fill's ON CONFLICT needs the key)."""

from django.db import migrations


# The figures of a set of events `r` (joined to their organization `o`), per rollup key. The day
# is the organization's calendar day: events_in_range counts [local midnight, next midnight).
def _figures(sign: str) -> str:
    return f"""
        r.organization_id, r.department_id, (r.created_at AT TIME ZONE o.time_zone)::date AS day,
        r.provider, r.model_requested AS model,
        {sign}count(*) AS requests, {sign}sum(r.cost) AS cost,
        {sign}sum(r.prompt_tokens) AS prompt_tokens,
        {sign}sum(r.completion_tokens) AS completion_tokens,
        {sign}count(*) FILTER (WHERE r.status = 'cache_hit') AS cache_hits,
        {sign}coalesce(sum(r.saved - r.cost) FILTER (WHERE r.status = 'cache_hit'), 0)
            AS cache_saved
    """


COLUMNS = (
    "organization_id, department_id, day, provider, model, requests, cost, prompt_tokens,"
    " completion_tokens, cache_hits, cache_saved"
)
KEY = "(organization_id, day, department_id, provider, model)"
FIGURES = ("requests", "cost", "prompt_tokens", "completion_tokens", "cache_hits", "cache_saved")
# One lock serialises the fold and the rebuilds (never the event writers).
LOCK = "PERFORM pg_advisory_xact_lock(hashtext('gateway_spend_rollups'));"

FORWARD = f"""
-- Each statement that writes events appends its sums (the old rows' taken back) to the deltas.
CREATE FUNCTION gateway_spend_delta() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP <> 'INSERT' THEN
        INSERT INTO gateway_spenddelta ({COLUMNS})
        SELECT {_figures("-")}
        FROM old_rows r JOIN chargeback_organization o ON o.id = r.organization_id
        GROUP BY 1, 2, 3, 4, 5;
    END IF;
    IF TG_OP <> 'DELETE' THEN
        INSERT INTO gateway_spenddelta ({COLUMNS})
        SELECT {_figures("")}
        FROM new_rows r JOIN chargeback_organization o ON o.id = r.organization_id
        GROUP BY 1, 2, 3, 4, 5;
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER gateway_spend_insert AFTER INSERT ON gateway_usageevent
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION gateway_spend_delta();
CREATE TRIGGER gateway_spend_update AFTER UPDATE ON gateway_usageevent
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION gateway_spend_delta();
CREATE TRIGGER gateway_spend_delete AFTER DELETE ON gateway_usageevent
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION gateway_spend_delta();

-- Move every delta into the daily rows, in one statement (exactly once). Returns the keys moved.
CREATE FUNCTION gateway_spend_fold() RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE moved bigint;
BEGIN
    {LOCK}
    WITH gone AS (DELETE FROM gateway_spenddelta RETURNING *)
    INSERT INTO gateway_spenddaily ({COLUMNS})
    SELECT organization_id, department_id, day, provider, model,
           {", ".join(f"sum({f})" for f in FIGURES)}
    FROM gone GROUP BY 1, 2, 3, 4, 5
    ON CONFLICT {KEY} DO UPDATE SET
        {", ".join(f"{f} = gateway_spenddaily.{f} + EXCLUDED.{f}" for f in FIGURES)};
    GET DIAGNOSTICS moved = ROW_COUNT;
    RETURN moved;
END $$;

-- An organization's rollups recomputed from its events. One statement, so one snapshot: an
-- event it does not see keeps its delta row, an event it sees loses it.
CREATE FUNCTION gateway_spend_rebuild(org bigint) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    {LOCK}
    WITH fresh AS (
        SELECT {_figures("")}
        FROM gateway_usageevent r JOIN chargeback_organization o ON o.id = r.organization_id
        WHERE r.organization_id = org
        GROUP BY 1, 2, 3, 4, 5
    ), gone AS (
        DELETE FROM gateway_spenddelta WHERE organization_id = org
    ), stale AS (
        DELETE FROM gateway_spenddaily d WHERE d.organization_id = org AND NOT EXISTS (
            SELECT 1 FROM fresh f WHERE f.day = d.day AND f.provider = d.provider
            AND f.model = d.model AND f.department_id IS NOT DISTINCT FROM d.department_id
        )
    )
    INSERT INTO gateway_spenddaily ({COLUMNS}) SELECT * FROM fresh
    ON CONFLICT {KEY} DO UPDATE SET {", ".join(f"{f} = EXCLUDED.{f}" for f in FIGURES)};
END $$;

-- Another time zone moves events to other days: recompute the organization's rollups.
CREATE FUNCTION gateway_spend_time_zone() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM gateway_spend_rebuild(NEW.id);
    RETURN NULL;
END $$;
CREATE TRIGGER gateway_spend_time_zone AFTER UPDATE OF time_zone ON chargeback_organization
    FOR EACH ROW WHEN (OLD.time_zone IS DISTINCT FROM NEW.time_zone)
    EXECUTE FUNCTION gateway_spend_time_zone();

-- The events already there.
SELECT gateway_spend_rebuild(id) FROM chargeback_organization;
"""

BACKWARD = """
DROP TRIGGER IF EXISTS gateway_spend_time_zone ON chargeback_organization;
DROP TRIGGER IF EXISTS gateway_spend_insert ON gateway_usageevent;
DROP TRIGGER IF EXISTS gateway_spend_update ON gateway_usageevent;
DROP TRIGGER IF EXISTS gateway_spend_delete ON gateway_usageevent;
DROP FUNCTION IF EXISTS gateway_spend_time_zone();
DROP FUNCTION IF EXISTS gateway_spend_rebuild(bigint);
DROP FUNCTION IF EXISTS gateway_spend_fold();
DROP FUNCTION IF EXISTS gateway_spend_delta();
"""


# The triggers and functions are PostgreSQL's; elsewhere (SQLite: the embedded demo) the
# readers sum the events instead (gateway/rollups.py rollups_in_use).
def _forward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(FORWARD)


def _backward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(BACKWARD)


class Migration(migrations.Migration):
    dependencies = [
        ("gateway", "0007_spend_rollups"),
    ]

    operations = [
        migrations.RunPython(_forward, _backward),
    ]
