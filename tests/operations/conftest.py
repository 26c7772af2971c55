# The gateway's fake provider (a real HTTP server on loopback) and its setups, for the
# operations tests too.
from tests.gateway.conftest import fake_provider, fake_provider_server, gw, gw_local  # noqa: F401
