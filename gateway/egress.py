"""The connection-time half of the upstream address rules (chargeback/upstream.py): every
connection a provider pool opens resolves the host itself and connects only to an address the
operator's rules allow, so a name that resolved to a public address when a target was saved
and to 127.0.0.1 later (DNS rebinding) is still refused. It runs when a pooled connection is
opened, not per request."""

import httpcore
import httpx

from chargeback.upstream import UpstreamRefused, policy

__all__ = ["GuardedBackend", "UpstreamRefused", "guard", "refusal_of"]


def refusal_of(exc: BaseException) -> UpstreamRefused | None:
    """The UpstreamRefused behind an httpx error (httpx wraps httpcore's exceptions)."""
    while exc is not None:
        if isinstance(exc, UpstreamRefused):
            return exc
        exc = exc.__cause__ or exc.__context__
    return None


class GuardedBackend(httpcore.SyncBackend):
    """httpcore's socket backend, except that it resolves the host itself, keeps the addresses
    the policy allows and connects to one of those: the address checked is the address used.
    TLS still sends SNI for, and verifies the certificate against, the host name (httpcore
    passes the origin's host to start_tls, not the address)."""

    def __init__(self, scheme: str):
        self.scheme = scheme

    def connect_tcp(self, host, port, timeout=None, local_address=None, socket_options=None):
        try:
            addresses = policy().connect_addresses(self.scheme, host, port)
        except OSError as exc:  # the name does not resolve
            raise httpcore.ConnectError(f"{host}: {exc}") from exc
        failure = None
        for address in addresses:
            try:
                return super().connect_tcp(address, port, timeout, local_address, socket_options)
            except httpcore.ConnectError as exc:
                failure = exc
        raise failure


def guard(transport: httpx.HTTPTransport, scheme: str) -> httpx.HTTPTransport:
    """Make every connection `transport` opens go through GuardedBackend. httpx's transport
    takes no network backend, so it is set on its pool before the pool opens a connection."""
    transport._pool._network_backend = GuardedBackend(scheme)
    return transport
