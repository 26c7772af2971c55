# The gateway's fake provider (a real HTTP server on loopback) for the operations tests too.
from tests.gateway.conftest import fake_provider, fake_provider_server  # noqa: F401
