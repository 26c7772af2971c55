"""What a channel receives: the event body (JSON: id, type, time and the facts of the e-mail),
its signature, and the Slack message made of the same facts.

The signature (docs/operations.md "Alert channels"): the header
`X-KT-Signature: t=<unix seconds>,v1=<hex>` where hex is HMAC-SHA256, keyed with the channel's
secret, of the ASCII bytes "<t>." followed by the exact body bytes. A receiver recomputes it over
the raw body, compares in constant time and refuses an old `t` (replays).
"""

import hashlib
import hmac
import json
import secrets
import time

from chargeback import display

SIGNATURE_HEADER = "X-KT-Signature"
SECRET_PREFIX = "whsec_"


def secret_new() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def sign(*, secret: str, timestamp: int, body: bytes) -> str:
    """The X-KT-Signature value for `body` sent at `timestamp`."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={digest.hexdigest()}"


def encode(body: dict) -> bytes:
    """The bytes sent (and signed): compact, keys in a stable order."""
    return json.dumps(body, separators=(",", ":"), sort_keys=True).encode()


def webhook_request(*, body: dict, secret: str, now: float | None = None) -> tuple[bytes, dict]:
    """The bytes and headers of a signed webhook POST."""
    content = encode(body)
    timestamp = int(now if now is not None else time.time())
    headers = {
        "Content-Type": "application/json",
        SIGNATURE_HEADER: sign(secret=secret, timestamp=timestamp, body=content),
        "X-KT-Event-Id": body["id"],
        "X-KT-Event-Type": body["type"],
    }
    return content, headers


def slack_request(*, body: dict) -> tuple[bytes, dict]:
    """A Slack incoming-webhook message: `text` (the e-mail's subject, also the notification
    text) and blocks with the headline and the facts as fields."""
    facts = body.get("data", {})
    subject = facts.get("subject") or body["type"]
    headline = facts.get("headline") or subject
    fields = [
        {"type": "mrkdwn", "text": f"*{label}*\n{value}"}
        for label, value in _slack_fields(facts)
        if value not in (None, "", [])
    ][:10]  # Slack allows at most 10 fields in a section
    blocks = [
        {"type": "header", "text": {"type": "plain_text", "text": subject[:150]}},
        {"type": "section", "text": {"type": "mrkdwn", "text": headline}},
    ]
    if fields:
        blocks.append({"type": "section", "fields": fields})
    if facts.get("url"):
        blocks.append(
            {"type": "context", "elements": [{"type": "mrkdwn", "text": f"<{facts['url']}|Open>"}]}
        )
    message = {"text": subject, "blocks": blocks}
    return json.dumps(message).encode(), {"Content-Type": "application/json"}


def _slack_fields(facts: dict) -> list[tuple[str, object]]:
    currency = facts.get("currency", "")

    def money(key):  # for people, as the e-mails write it (chargeback/display.py)
        return display.money(facts[key], currency) if facts.get(key) is not None else None

    return [
        ("Department", (facts.get("department") or {}).get("name")),
        ("Wallet", (facts.get("wallet") or {}).get("name")),
        ("Period", facts.get("period_label")),
        ("Spend", money("spend")),
        ("Budget", money("budget_amount")),
        ("Used", f"{facts['percent_used']}%" if facts.get("percent_used") else None),
        ("Forecast", money("forecast")),
        ("Available", money("available")),
        ("Rows", display.count(facts["rows"]) if facts.get("rows") is not None else None),
        ("Ticket", facts.get("ticket_id")),
        ("Estimate", money("estimate")),
        ("Model", facts.get("model")),
        ("Decided by", facts.get("decided_by")),
    ]
