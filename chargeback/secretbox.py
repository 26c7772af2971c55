"""Provider secrets at rest: Fernet (AES-128-CBC with HMAC-SHA256, from `cryptography`) under
the operator's key(s) in KT_SECRETS_KEY, never stored in the database.

KT_SECRETS_KEY is a comma-separated list of Fernet keys (`manage.py secrets_key generate`): the
first encrypts, every one decrypts (MultiFernet). To rotate: put a new key first, run
`manage.py secrets_key rotate` (re-encrypts every stored secret with it), then drop the old one.

A token carries its organization and name inside the encrypted payload and both are checked on
decryption, so a ciphertext copied onto another organization's row (by anyone who can write
the database but not read the key) does not decrypt there.
"""

import json
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings

from chargeback.errors import NotConfigured

MISSING_KEY = (
    "the server has no KT_SECRETS_KEY, so it cannot store or use provider secrets; "
    "the platform operator must set it (docs/configuration.md)"
)


class SecretUnreadable(Exception):
    """A stored secret that the configured keys cannot decrypt (or that belongs elsewhere)."""


def parse_keys(raw: str) -> list[Fernet]:
    """The Fernet keys of a KT_SECRETS_KEY value; ValueError names a bad one by position."""
    keys = []
    for position, text in enumerate((part.strip() for part in raw.split(",")), start=1):
        if not text:
            continue
        try:
            keys.append(Fernet(text.encode()))
        except ValueError:
            raise ValueError(
                f"KT_SECRETS_KEY: key {position} is not a Fernet key (32 url-safe base64-encoded "
                "bytes; `python manage.py secrets_key generate` prints one)"
            ) from None
    return keys


@lru_cache(maxsize=4)
def _keyring(raw: str) -> MultiFernet | None:
    keys = parse_keys(raw)
    return MultiFernet(keys) if keys else None


def keyring() -> MultiFernet:
    ring = _keyring(settings.KT_SECRETS_KEY or "")
    if ring is None:
        raise NotConfigured(MISSING_KEY)
    return ring


def configured() -> bool:
    return _keyring(settings.KT_SECRETS_KEY or "") is not None


def seal(*, organization_id: int, name: str, value: str) -> str:
    payload = json.dumps({"o": organization_id, "n": name, "v": value}).encode()
    return keyring().encrypt(payload).decode()


def unseal(*, token: str, organization_id: int, name: str) -> str:
    """The secret's value; NotConfigured without a key, SecretUnreadable if no key opens it or
    it was sealed for another organization or name."""
    try:
        data = json.loads(keyring().decrypt(token.encode()))
    except (InvalidToken, ValueError):
        raise SecretUnreadable(f"provider secret {name} cannot be decrypted") from None
    if data.get("o") != organization_id or data.get("n") != name:
        raise SecretUnreadable(f"provider secret {name} was not sealed for this row")
    return data["v"]


@lru_cache(maxsize=1024)
def _unseal_cached(token: str, organization_id: int, name: str, keys: str) -> str:
    return unseal(token=token, organization_id=organization_id, name=name)


def unseal_cached(*, token: str, organization_id: int, name: str) -> str:
    """`unseal`, remembered per process: the gateway decrypts a secret once, not per request.
    A rotated secret is a new token (a new entry); a changed KT_SECRETS_KEY is part of the key."""
    return _unseal_cached(token, organization_id, name, settings.KT_SECRETS_KEY or "")


def reseal(token: str) -> str:
    """The same secret encrypted with the first key (MultiFernet.rotate)."""
    try:
        return keyring().rotate(token.encode()).decode()
    except InvalidToken:
        raise SecretUnreadable("a stored secret cannot be decrypted with KT_SECRETS_KEY") from None


def hint_of(value: str) -> str:
    """What is shown of a secret: its last 4 characters, only when that leaves at least 16
    unknown (provider keys are 40+ characters); else nothing."""
    return value[-4:] if len(value) >= 20 else ""
