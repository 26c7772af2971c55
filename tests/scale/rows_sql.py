"""Many gateway requests at once, written with INSERT ... SELECT generate_series: for each call
the rows the gateway writes (wallets/services/holds.py, gateway/recording.py): a hold (captured,
or released for a $0 call; none for a response-cache hit), a capture ledger entry whose
`balance_after` runs on from the wallet's balance, and the usage event, through the events'
triggers (so the rollups and prompt months are kept as in production). Each wallet is funded
by one allocation first, and its balance is its ledger's sum afterwards.

tests/scale/test_rows_sql.py checks that a generated call has the shape of one written by the
services; tests/scale/test_finance_pages_100k.py uses it for its data set.
"""

from datetime import datetime

from django.db import connection

# One row per call: who, when, what and how much. Times are spread evenly over the period (in
# order, as a gateway writes them); departments are Zipf-like (the first is the busiest).
CALLS = """
CREATE TEMP TABLE scale_calls ON COMMIT DROP AS
SELECT g.i,
       'req_' || md5(%(seed)s || g.i::text)::varchar(24) AS request_id,
       %(start)s::timestamptz + (%(end)s::timestamptz - %(start)s::timestamptz) * (g.i::float8 / %(n)s)
           AS created_at,
       t.department_id, t.wallet_id, t.group_id, p.price_id, p.provider, p.model, p.premium,
       p.input_per_mtok, p.output_per_mtok,
       'user' || (g.i * 7 %% %(users)s) || '@example.com' AS "user",
       CASE WHEN g.i %% 25 = 0 THEN 'cache_hit' WHEN g.i %% 33 = 0 THEN 'provider_error'
            ELSE 'ok' END AS status,
       200 + (g.i * 13 %% 3000) AS prompt_tokens,
       CASE WHEN g.i %% 33 = 0 AND g.i %% 25 <> 0 THEN 0 ELSE 50 + (g.i * 17 %% 900) END
           AS completion_tokens,
       -- about a third of the prompts were asked before in the department
       md5((g.i * 2654435761 %% (%(n)s * 2 / 3))::text) AS prompt_fingerprint
FROM generate_series(1, %(n)s) g(i)
JOIN scale_teams t ON t.n = (floor(%(teams)s * power((g.i * 0.6180339887) %% 1, 2)))::int
JOIN scale_prices p ON p.n = g.i %% %(prices)s
"""

HOLDS = """
INSERT INTO wallets_hold (organization_id, wallet_id, department_id, request_id, amount,
    captured_amount, status, expires_at, created_at, resolved_at)
SELECT %(org)s, c.wallet_id, c.department_id, c.request_id, c.cost + 0.01,
       CASE WHEN c.cost > 0 THEN c.cost END,
       CASE WHEN c.cost > 0 THEN 'captured' ELSE 'released' END,
       c.created_at + interval '10 minutes', c.created_at - interval '2 seconds', c.created_at
FROM scale_costs c WHERE c.status <> 'cache_hit'
"""

LEDGER = """
WITH moves AS (
    SELECT t.wallet_id, 'allocation' AS kind, t.funding AS amount, NULL::bigint AS hold_id,
           '' AS reference, %(start)s::timestamptz - interval '1 day' AS created_at
    FROM scale_teams t
    UNION ALL
    SELECT c.wallet_id, 'capture', -c.cost, h.id, c.request_id, c.created_at
    FROM scale_costs c JOIN wallets_hold h ON h.request_id = c.request_id
    WHERE c.cost > 0
)
INSERT INTO wallets_ledgerentry (organization_id, wallet_id, kind, amount, balance_after,
    currency, description, idempotency_key, request_hash, hold_id, reference, transfer_id, actor,
    created_at)
SELECT %(org)s, m.wallet_id, m.kind, m.amount,
       w.balance + sum(m.amount) OVER (PARTITION BY m.wallet_id ORDER BY m.created_at, m.kind
                                       ROWS UNBOUNDED PRECEDING),
       w.currency, CASE WHEN m.kind = 'allocation' THEN 'scale test funding' ELSE '' END, NULL,
       '', m.hold_id, m.reference, '', CASE WHEN m.kind = 'allocation' THEN 'scale' ELSE '' END,
       m.created_at
FROM moves m JOIN wallets_wallet w ON w.id = m.wallet_id
ORDER BY m.created_at, m.kind  -- ids in time order, as entries are appended
"""

EVENTS = """
INSERT INTO gateway_usageevent (organization_id, department_id, consumer_group_id, wallet_id,
    request_id, "user", tags, endpoint, provider, target_id, model_requested, model_served,
    stream, prompt_tokens, completion_tokens, cached_tokens, cache_write_tokens, cost, currency,
    price_id, usage_source, status, http_status, error_code, latency_ms, ttft_ms,
    prompt_fingerprint, attempts, policy, policy_saved, above_hold, saved, created_at)
SELECT %(org)s, c.department_id, c.group_id,
       CASE WHEN c.status = 'cache_hit' THEN NULL ELSE c.wallet_id END, c.request_id, c."user",
       '{}', 'chat.completions', c.provider, c.provider || '-prod', c.model, c.model, false,
       c.prompt_tokens, c.completion_tokens, 0, 0, c.cost, 'USD', c.price_id,
       CASE WHEN c.status = 'ok' THEN 'provider' ELSE 'none' END, c.status,
       CASE WHEN c.status = 'provider_error' THEN 502 ELSE 200 END,
       CASE WHEN c.status = 'provider_error' THEN 'upstream_error' ELSE '' END,
       300 + c.i %% 2000, NULL, c.prompt_fingerprint, '[]', '', 0, false,
       CASE WHEN c.status = 'cache_hit' THEN c.list_cost ELSE 0 END, c.created_at
FROM scale_costs c ORDER BY c.i
"""


def generate(
    *,
    organization,
    teams: list[tuple],
    prices: list,
    count: int,
    start: datetime,
    end: datetime,
    users: int = 400,
    seed: str = "scale",
) -> None:
    """`count` calls of `organization` between `start` and `end`. `teams`: (department,
    wallet, consumer group, funding) per department, busiest first; `prices`: gateway Price rows
    (their per-token prices make each call's cost, as gateway/pricing.py does for plain
    chat usage). Must run inside a transaction (the work tables go at its end)."""
    params = {
        "org": organization.pk,
        "n": count,
        "teams": len(teams),
        "prices": len(prices),
        "users": users,
        "start": start,
        "end": end,
        "seed": seed,
    }
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE TEMP TABLE scale_teams (n int, department_id bigint, wallet_id bigint,"
            " group_id bigint, funding numeric) ON COMMIT DROP"
        )
        cursor.executemany(
            "INSERT INTO scale_teams VALUES (%s, %s, %s, %s, %s)",
            [(n, d.pk, w.pk, g.pk, funding) for n, (d, w, g, funding) in enumerate(teams)],
        )
        cursor.execute(
            "CREATE TEMP TABLE scale_prices (n int, price_id bigint, provider text, model text,"
            " premium bool, input_per_mtok numeric, output_per_mtok numeric) ON COMMIT DROP"
        )
        cursor.executemany(
            "INSERT INTO scale_prices VALUES (%s, %s, %s, %s, %s, %s, %s)",
            [
                (n, p.pk, p.provider, p.model, p.premium, p.input_per_mtok, p.output_per_mtok)
                for n, p in enumerate(prices)
            ],
        )
        cursor.execute(CALLS, params)
        # What the call costs at its price (money.py's rule: 8 places, half up), what a
        # cache hit would have cost (its `saved`; the hit itself costs 0), and 0 for a failure.
        cursor.execute(
            "CREATE TEMP TABLE scale_costs ON COMMIT DROP AS SELECT c.*, l.list_cost,"
            " CASE WHEN c.status = 'ok' THEN l.list_cost ELSE 0 END AS cost FROM scale_calls c,"
            " LATERAL (SELECT round((c.prompt_tokens * c.input_per_mtok"
            " + c.completion_tokens * c.output_per_mtok) / 1000000, 8) AS list_cost) l"
        )
        cursor.execute(HOLDS, params)
        cursor.execute(LEDGER, params)
        cursor.execute(
            "UPDATE wallets_wallet w SET balance = s.total FROM (SELECT wallet_id, sum(amount)"
            " AS total FROM wallets_ledgerentry WHERE organization_id = %s GROUP BY 1) s"
            " WHERE w.id = s.wallet_id",
            [organization.pk],
        )
        cursor.execute(EVENTS, params)
        cursor.execute("DROP TABLE scale_costs, scale_calls, scale_prices, scale_teams")
