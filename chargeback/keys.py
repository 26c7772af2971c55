"""API keys and admin tokens: only a short prefix and a SHA-256 digest are ever stored."""

import hashlib
import secrets

PREFIX_LENGTH = 12


def hash_key(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def key_prefix(raw: str) -> str:
    return raw[:PREFIX_LENGTH]


def generate_key(kind: str) -> str:
    """A new random key such as `kt_cg_3f9a...` (group) or `kt_admin_...` (admin token)."""
    return f"kt_{kind}_{secrets.token_urlsafe(32)}"
