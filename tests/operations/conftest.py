# The gateway's fake provider (a real HTTP server on loopback) and its live-server setup, for
# the operations tests too.
from tests.gateway.conftest import fake_provider, fake_provider_server, gw  # noqa: F401
