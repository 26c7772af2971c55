"""The gateway tests' fixtures (the fake provider on loopback, the live server's setup), for the
scale generator's comparison with what the gateway writes."""

from tests.gateway.conftest import fake_provider, fake_provider_server, gw  # noqa: F401
