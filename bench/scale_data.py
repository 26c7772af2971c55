"""The scale benchmark's data set (bench/scale.py), generated in SQL as the gateway writes it.

Each generated request is what one answered gateway call leaves (gateway/fastpath.py and
wallets/fastpath.py): a hold placed on the department's wallet (the worst case of the call) and
captured at the call's cost, the capture's ledger entry (`balance_after` the wallet's running
balance), and the usage event priced at the model's catalog price (gateway/pricing.py
cost_of: tokens times the rates per million, rounded once to 8 places, half up). The events are
inserted with INSERT ... SELECT, so the rollup triggers (gateway/migrations/0008) append their
deltas as for any other write, and each chunk folds them. Funding goes through the product's
own services (wallets.services: a credit to the organization's wallet, an allocation to each
team at every month's start, at that date), so the ledger stays the sum that is the balance.
tests/scale/test_scale_generator.py compares the generated rows with a real gateway call's.

A chunk is one transaction (holds, ledger, events, wallet balances, the fold), so a run that
stops leaves whole chunks; `bench_scale_progress` records them and a rerun continues.
"""

import itertools
import math
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db import connection, transaction

# Expected tokens of a generated call (see CHUNK_SQL: 60 + 4000 * r1 * r2; 900 * r).
MEAN_PROMPT, MEAN_COMPLETION = 60 + 4000 / 4, 900 / 2
# Each month's allocation tops a wallet up to 1.5 times its expected spend plus $10 (more than
# the largest hold: a small department's month varies more than its mean says).
FUNDING_MARGIN, FUNDING_FLOOR = Decimal("1.5"), Decimal(10)

PROGRESS_TABLES = """
CREATE TABLE IF NOT EXISTS bench_scale_plan (
    organization_id bigint PRIMARY KEY, calls bigint, chunk bigint, start_at timestamptz,
    end_at timestamptz
);
CREATE TABLE IF NOT EXISTS bench_scale_progress (
    organization_id bigint, first_index bigint, last_index bigint, seconds float8,
    PRIMARY KEY (organization_id, first_index)
)"""


@dataclass
class Department:
    department_id: int
    group_id: int
    wallet_id: int
    weight: float


@dataclass
class Model:
    price_id: int
    provider: str
    target_id: str
    model: str
    input_per_mtok: Decimal
    output_per_mtok: Decimal
    max_output_tokens: int
    weight: float


@dataclass
class Scene:
    """What the generator writes for: one organization, its departments (each with its consumer
    group and team wallet) and the models its users call, each with a share of the calls."""

    organization_id: int
    departments: list[Department]
    models: list[Model]
    users: int
    domain: str


def _ranges(items) -> list[tuple[float, float]]:
    """[lo, hi) of each item's share in [0, 1); the last reaches past 1 so every draw lands."""
    total = sum(i.weight for i in items)
    out, lo = [], 0.0
    for n, item in enumerate(items):
        hi = 2.0 if n == len(items) - 1 else lo + item.weight / total
        out.append((lo, hi))
        lo = hi
    return out


def scene_load(cursor, scene: Scene) -> None:
    """The scene as two temporary tables the chunk statement joins."""
    cursor.execute("DROP TABLE IF EXISTS bench_dept, bench_model")
    cursor.execute(
        "CREATE TEMP TABLE bench_dept (department_id bigint, group_id bigint, wallet_id bigint,"
        " lo float8, hi float8)"
    )
    cursor.executemany(
        "INSERT INTO bench_dept VALUES (%s, %s, %s, %s, %s)",
        [
            (d.department_id, d.group_id, d.wallet_id, lo, hi)
            for d, (lo, hi) in zip(scene.departments, _ranges(scene.departments), strict=True)
        ],
    )
    cursor.execute(
        "CREATE TEMP TABLE bench_model (price_id bigint, provider text, target_id text,"
        " model text, input_rate numeric, output_rate numeric, max_output int,"
        " lo float8, hi float8)"
    )
    cursor.executemany(
        "INSERT INTO bench_model VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
        [
            (
                m.price_id,
                m.provider,
                m.target_id,
                m.model,
                m.input_per_mtok,
                m.output_per_mtok,
                m.max_output_tokens,
                lo,
                hi,
            )
            for m, (lo, hi) in zip(scene.models, _ranges(scene.models), strict=True)
        ],
    )


# One chunk's calls, indexes [first, last]: evenly spread over time from `start` by `step`
# seconds (with a random offset inside each step), a department and a model by their shares,
# a user skewed towards the first ones (r * r), tokens, latency. The hold ids are reserved
# before (one block of the sequence), in the order the calls happened.
CHUNK_SQL = """
CREATE TEMP TABLE bench_chunk ON COMMIT DROP AS
WITH src AS (
    SELECT i, %(start)s::timestamptz + (i + random()) * %(step)s * interval '1 s' AS at,
           random() AS ud, random() AS um, random() AS uu,
           60 + floor(4000 * random() * random())::int AS pt,
           floor(900 * random())::int AS ct,
           200 + floor(6000 * random() * random())::int AS latency
    FROM generate_series(%(first)s::bigint, %(last)s::bigint) i
), calls AS (
    SELECT s.*, d.department_id, d.group_id, d.wallet_id,
           m.price_id, m.provider, m.target_id, m.model,
           round((s.pt * m.input_rate + s.ct * m.output_rate) / 1000000, 8) AS cost,
           round(((s.pt + 16) * m.input_rate + m.max_output * m.output_rate) / 1000000, 8)
               AS hold_amount,
           'user' || lpad(floor(%(users)s * s.uu * s.uu)::int::text, 5, '0') || '@'
               || %(domain)s AS usr,
           'req_' || substr(md5(%(salt)s || s.i::text), 1, 24) AS request_id
    FROM src s
    JOIN bench_dept d ON s.ud >= d.lo AND s.ud < d.hi
    JOIN bench_model m ON s.um >= m.lo AND s.um < m.hi
)
SELECT c.*, %(hold_base)s::bigint - 1 + row_number() OVER (ORDER BY c.at, c.i) AS hold_id
FROM calls c
"""

HOLDS_SQL = """
INSERT INTO wallets_hold (id, organization_id, wallet_id, department_id, request_id, amount,
    captured_amount, status, expires_at, created_at, resolved_at)
SELECT hold_id, %(org)s, wallet_id, department_id, request_id, hold_amount, cost, 'captured',
       at - latency * interval '1 ms' + %(ttl)s * interval '1 s',
       at - latency * interval '1 ms', at - interval '2 ms'
FROM bench_chunk ORDER BY hold_id
"""

LEDGER_SQL = """
INSERT INTO wallets_ledgerentry (organization_id, wallet_id, kind, amount, balance_after,
    currency, description, idempotency_key, request_hash, hold_id, reference, transfer_id, actor,
    created_at)
SELECT %(org)s, c.wallet_id, 'capture', -c.cost,
       w.balance - sum(c.cost) OVER (PARTITION BY c.wallet_id ORDER BY c.hold_id
                                     ROWS UNBOUNDED PRECEDING),
       w.currency, '', NULL, '', c.hold_id, c.request_id, '', '', c.at - interval '2 ms'
FROM bench_chunk c JOIN wallets_wallet w ON w.id = c.wallet_id
ORDER BY c.hold_id
"""

EVENTS_SQL = """
INSERT INTO gateway_usageevent (organization_id, department_id, consumer_group_id, wallet_id,
    request_id, "user", tags, endpoint, provider, target_id, model_requested, model_served,
    stream, prompt_tokens, completion_tokens, cached_tokens, cache_write_tokens, cost, currency,
    price_id, usage_source, status, http_status, error_code, latency_ms, ttft_ms,
    prompt_fingerprint, attempts, policy, policy_saved, above_hold, saved, created_at)
SELECT %(org)s, department_id, group_id, wallet_id, request_id, usr,
       CASE WHEN i %% 3 = 0 THEN '{"app": "assistant", "env": "prod"}'::jsonb
            ELSE '{}'::jsonb END,
       'chat.completions', provider, target_id, model, model, false, pt, ct, 0, 0, cost, 'USD',
       price_id, 'provider', 'ok', 200, '', latency, NULL, md5(request_id) || md5(usr || i::text),
       '[]'::jsonb, '', 0, false, 0, at
FROM bench_chunk ORDER BY hold_id
"""

WALLETS_SQL = """
UPDATE wallets_wallet w SET balance = w.balance - s.spent
FROM (SELECT wallet_id, sum(cost) AS spent FROM bench_chunk GROUP BY 1) s
WHERE w.id = s.wallet_id
"""


def chunk_write(
    scene: Scene, first: int, last: int, start: datetime, step: float, *, seed: float = 0.0
) -> None:
    """Calls [first, last] of the scene (call i at start + (i + r) * step seconds), in one
    transaction with the fold of their rollup deltas. `scene_load` must have run on this
    connection."""
    count = last - first + 1
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT setseed(%s)", [seed])
        cursor.execute("SELECT nextval(pg_get_serial_sequence('wallets_hold', 'id'))")
        (base,) = cursor.fetchone()
        cursor.execute(
            "SELECT setval(pg_get_serial_sequence('wallets_hold', 'id'), %s)", [base + count - 1]
        )
        params = {
            "org": scene.organization_id,
            "start": start,
            "step": step,
            "first": first,
            "last": last,
            "users": scene.users,
            "domain": scene.domain,
            "salt": f"{scene.organization_id}-",
            "hold_base": base,
            "ttl": settings.KT_HOLD_TTL_SECONDS,
        }
        cursor.execute(CHUNK_SQL, params)
        for sql in (HOLDS_SQL, LEDGER_SQL, EVENTS_SQL, WALLETS_SQL):
            cursor.execute(sql, params)
        cursor.execute("SELECT gateway_spend_fold()")


def expected_cost(scene: Scene) -> Decimal:
    """The mean cost of one generated call (the models' shares, the tokens' means)."""
    total = sum(m.weight for m in scene.models)
    mean = sum(
        Decimal(m.weight / total)
        * (Decimal(MEAN_PROMPT) * m.input_per_mtok + Decimal(MEAN_COMPLETION) * m.output_per_mtok)
        for m in scene.models
    )
    return mean / Decimal(1_000_000)


def month_fund(scene: Scene, when: datetime, calls: int) -> None:
    """At `when`, as finance would: a credit to the organization's wallet, then an allocation to
    each team topping its wallet up to FUNDING_MARGIN times the month's expected spend."""
    import time_machine

    from chargeback.models import Department as DepartmentModel
    from chargeback.models import Organization
    from wallets.models import Wallet
    from wallets.services import wallet_allocate, wallet_credit

    org = Organization.objects.get(pk=scene.organization_id)
    per_call = expected_cost(scene)
    total_weight = sum(d.weight for d in scene.departments)
    wanted = {}
    for d in scene.departments:
        wallet = Wallet.objects.get(pk=d.wallet_id)
        target = FUNDING_MARGIN * per_call * Decimal(calls * d.weight / total_weight)
        target += FUNDING_FLOOR
        top_up = (target - (wallet.balance - wallet.held)).quantize(Decimal("0.01"))
        if top_up > 0:
            wanted[d.department_id] = top_up
    if not wanted:
        return
    with time_machine.travel(when, tick=False), transaction.atomic():
        wallet_credit(organization=org, amount=sum(wanted.values()), currency="USD", actor="bench")
        for department_id, amount in wanted.items():
            wallet_allocate(
                department=DepartmentModel.objects.get(pk=department_id),
                amount=amount,
                currency="USD",
                actor="bench",
            )


def months(start: datetime, end: datetime) -> list[datetime]:
    """The first instant of each calendar month from `start` (a month's first) to `end`."""
    out, at = [], start
    while at < end:
        out.append(at)
        at = (at + timedelta(days=32)).replace(day=1)
    return out


def generate(
    scene: Scene, calls: int, start: datetime, end: datetime, *, chunk: int, log=print
) -> None:
    """`calls` calls spread evenly over [start, end), month by month (each month funded at its
    start), in chunks of at most `chunk` calls; chunks already recorded in bench_scale_progress
    are skipped. A rerun keeps the first run's period (its `end` was that day's now) and
    refuses other sizes: its chunks would not line up."""
    with connection.cursor() as cursor:
        cursor.execute(PROGRESS_TABLES)
        cursor.execute(
            "INSERT INTO bench_scale_plan VALUES (%s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
            [scene.organization_id, calls, chunk, start, end],
        )
        cursor.execute(
            "SELECT calls, chunk, start_at, end_at FROM bench_scale_plan"
            " WHERE organization_id = %s",
            [scene.organization_id],
        )
        planned, planned_chunk, start, end = cursor.fetchone()
        if (planned, planned_chunk) != (calls, chunk):
            raise SystemExit(
                f"this database was built with {planned:,} calls in chunks of"
                f" {planned_chunk:,}: rerun with those, or drop it"
            )
    step = (end - start).total_seconds() / calls
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT first_index FROM bench_scale_progress WHERE organization_id = %s",
            [scene.organization_id],
        )
        done = {row[0] for row in cursor.fetchall()}
        scene_load(cursor, scene)
    bounds = [*months(start, end), end]
    began, written = time.monotonic(), 0
    for month_start, month_end in itertools.pairwise(bounds):
        first = math.ceil((month_start - start).total_seconds() / step)
        last = min(calls, math.ceil((month_end - start).total_seconds() / step)) - 1
        parts = list(range(first, last + 1, chunk))
        if all(p in done for p in parts):
            continue
        if parts[0] not in done:
            month_fund(scene, month_start, last - first + 1)
        for part in parts:
            if part in done:
                continue
            part_last = min(part + chunk - 1, last)
            t0 = time.monotonic()
            seed = ((scene.organization_id * 7919 + part) % 1_000_000) / 1_000_000
            with transaction.atomic():
                chunk_write(scene, part, part_last, start, step, seed=seed)
                with connection.cursor() as cursor:
                    cursor.execute(
                        "INSERT INTO bench_scale_progress VALUES (%s, %s, %s, %s)",
                        [scene.organization_id, part, part_last, time.monotonic() - t0],
                    )
            written += part_last - part + 1
            rate = written / max(time.monotonic() - began, 1e-9)
            log(
                f"  {month_start:%Y-%m} calls {part:,}-{part_last:,} of {calls:,}: "
                f"{time.monotonic() - t0:.1f} s ({rate:,.0f} calls/s overall)"
            )


def window() -> tuple[datetime, datetime]:
    """13 months: the 12 before this one and this month so far (UTC, the organizations' zone)."""
    now = datetime.now(UTC)
    start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    for _ in range(12):
        start = (start - timedelta(days=1)).replace(day=1)
    return start, now
