"""Settings a server must not start with: refused at start-up, naming the setting and how to
fix it (the settings module calls these)."""

import ipaddress

import environ
from cryptography.fernet import Fernet


def networks_or_fail(networks: list[str], setting: str = "KT_UPSTREAM_ALLOW_NETWORKS") -> None:
    """`setting` (KT_UPSTREAM_ALLOW_NETWORKS): every entry a CIDR network."""
    for network in networks:
        try:
            ipaddress.ip_network(network.strip(), strict=False)
        except ValueError:
            raise environ.ImproperlyConfigured(
                f"{setting}: {network!r} is not a network (e.g. 10.0.5.0/24)"
            ) from None


def fernet_keys_or_fail(keys: str) -> None:
    """KT_SECRETS_KEY: comma-separated Fernet keys (or empty)."""
    for position, key in enumerate(keys.split(","), start=1):
        try:
            if key.strip():
                Fernet(key.strip().encode())
        except ValueError:
            raise environ.ImproperlyConfigured(
                f"KT_SECRETS_KEY: key {position} is not a Fernet key (32 url-safe base64-encoded "
                "bytes; `python manage.py secrets_key generate` prints one)"
            ) from None
