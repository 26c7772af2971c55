"""File exports for finance: events, chargeback, FOCUS and audit-log rows in csv, jsonl, json or
xlsx, streamed to a temporary file and saved into Django's default storage with a manifest.

Layout: `services.py` (create, run, download), `rows/` (one module per export type: columns and
a row generator), `writers.py` (one writer per format), `cells.py` (how a value becomes a cell),
`manifest.py`, `schedule.py` (the monthly exports) and `selectors.py` (job lookups).
"""

GENERATOR = "ai-chargeback-exports"
GENERATOR_VERSION = "1"
