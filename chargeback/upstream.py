"""Where the gateway may connect: the operator's rules for provider base URLs.

Checked twice: when a target is saved (`url_problem`, so the config file, the API and the admin
refuse a bad `base_url` with a clear message) and for every new upstream connection
(gateway/egress.py `GuardedBackend`, with `Policy.connect_addresses`), on the address actually
connected to. So a name that resolved to a public
address when the file was applied and to 127.0.0.1 later (DNS rebinding) is still refused. The
connection check runs when a pooled connection is opened, not per request.

The rules (settings, docs/configuration.md "Upstream addresses"):
- https only, unless KT_UPSTREAM_ALLOW_HTTP is true or the host is allow-listed;
- globally routable unicast addresses only: loopback, private, link-local (where cloud metadata
  lives: 169.254.169.254, fd00:ec2::254), shared (100.64.0.0/10), multicast, reserved and
  unspecified addresses are refused, also when embedded in IPv6 (::ffff:127.0.0.1, 6to4,
  NAT64), unless the address is in KT_UPSTREAM_ALLOW_NETWORKS;
- a host in KT_UPSTREAM_ALLOW_HOSTS (`host` or `host:port`) is the operator's: any scheme, any
  address. The fake provider the operator runs (KT_FAKE_PROVIDER_URL) is allowed the same way.
"""

import ipaddress
import socket
from dataclasses import dataclass
from functools import lru_cache

import httpcore
import httpx
from django.conf import settings

DEFAULT_PORTS = {"http": 80, "https": 443}
HOW_TO_ALLOW = (
    "the gateway connects only to public addresses over https; the platform operator can allow "
    "a host (KT_UPSTREAM_ALLOW_HOSTS), a network (KT_UPSTREAM_ALLOW_NETWORKS) or plain http "
    "(KT_UPSTREAM_ALLOW_HTTP)"
)
NAT64 = ipaddress.ip_network("64:ff9b::/96")

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class UpstreamRefused(httpcore.ConnectError):
    """A connection the operator's rules do not allow. `reason` may be shown to the tenant (no
    resolved address in it); the exception's text, for the log, has the addresses."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason} ({detail})" if detail else reason)
        self.reason = reason


def resolve(host: str, port: int) -> list[str]:
    """The addresses `host` resolves to now (the one resolver every check uses)."""
    found = []
    for *_, sockaddr in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM):
        if sockaddr[0] not in found:
            found.append(sockaddr[0])
    return found


def _ip(text: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(text.strip("[]"))
    except ValueError:
        return None


def _embedded_v4(ip: IPAddress) -> ipaddress.IPv4Address | None:
    if ip.version != 6:
        return None
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    if ip in NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def address_class(ip: IPAddress) -> str | None:
    """What is wrong with connecting to `ip` ('a loopback address', ...), None if it is public."""
    inner = _embedded_v4(ip)
    if inner is not None:
        problem = address_class(inner)
        if problem:
            return problem
    for test, label in (
        ("is_loopback", "a loopback address"),
        ("is_link_local", "a link-local address (where cloud metadata services live)"),
        ("is_multicast", "a multicast address"),
        ("is_unspecified", "an unspecified address"),
        ("is_private", "a private address"),
        ("is_reserved", "a reserved address"),
    ):
        if getattr(ip, test):
            return label
    if not ip.is_global:
        return "an address that is not publicly routable"
    return None


def _host_port(url: httpx.URL) -> tuple[str, int]:
    return url.host.lower(), url.port or DEFAULT_PORTS.get(url.scheme, 0)


@dataclass(frozen=True)
class Policy:
    hosts: frozenset  # host names (any port)
    host_ports: frozenset  # (host, port)
    networks: tuple
    allow_http: bool

    def host_allowed(self, host: str, port: int) -> bool:
        host = host.lower().strip("[]")
        return host in self.hosts or (host, port) in self.host_ports

    def address_problem(self, address: str) -> str | None:
        ip = _ip(address.split("%", 1)[0])
        if ip is None:
            return "not an IP address"
        if any(ip.version == net.version and ip in net for net in self.networks):
            return None
        return address_class(ip)

    def url_problem(self, url: str) -> str | None:
        """Why the gateway may not call `url` (checked when a target is saved), or None. A host
        name that does not resolve now is accepted: it is checked again on connection."""
        try:
            parsed = httpx.URL(url)
        except httpx.InvalidURL:
            return "is not a valid URL"
        if parsed.scheme not in DEFAULT_PORTS or not parsed.host:
            return "is not an http(s) URL with a host"
        if parsed.userinfo:
            return "must not contain a user name or password (give the key with secret_key_ref)"
        host, port = _host_port(parsed)
        if self.host_allowed(host, port):
            return None
        if parsed.scheme == "http" and not self.allow_http:
            return f"uses plain http; {HOW_TO_ALLOW}"
        literal = _ip(host)
        if literal is not None:
            problem = self.address_problem(str(literal))
            return f"{host} is {problem}; {HOW_TO_ALLOW}" if problem else None
        try:
            addresses = resolve(host, port)
        except OSError:
            return None
        for address in addresses:
            problem = self.address_problem(address)
            if problem:
                return f"{host} resolves to {problem}; {HOW_TO_ALLOW}"
        return None

    def connect_addresses(self, scheme: str, host: str, port: int) -> list[str]:
        """The addresses a new connection to host:port may use, in resolver order; raises
        UpstreamRefused when there is none."""
        if self.host_allowed(host, port):
            return resolve(host, port)
        if scheme != "https" and not self.allow_http:
            raise UpstreamRefused(f"{host} is reached over plain http; {HOW_TO_ALLOW}")
        addresses = resolve(host, port)
        allowed = [a for a in addresses if not self.address_problem(a)]
        if not allowed:
            problem = self.address_problem(addresses[0]) if addresses else "nothing"
            raise UpstreamRefused(
                f"{host} resolves to {problem}; {HOW_TO_ALLOW}", f"resolved to {addresses}"
            )
        return allowed


@lru_cache(maxsize=8)
def _policy(hosts: tuple, networks: tuple, allow_http: bool, fake_url: str) -> Policy:
    names, pairs = set(), set()
    for entry in hosts:
        entry = entry.strip().lower()
        if not entry:
            continue
        parsed = httpx.URL(f"//{entry}")
        if parsed.port:
            pairs.add((parsed.host, parsed.port))
        else:
            names.add(parsed.host)
    if fake_url:
        pairs.add(_host_port(httpx.URL(fake_url)))
    return Policy(
        hosts=frozenset(names),
        host_ports=frozenset(pairs),
        networks=tuple(ipaddress.ip_network(n.strip(), strict=False) for n in networks if n),
        allow_http=allow_http,
    )


def policy() -> Policy:
    """The rules from the settings now (rebuilt when a setting changes; cheap otherwise)."""
    return _policy(
        tuple(settings.KT_UPSTREAM_ALLOW_HOSTS),
        tuple(settings.KT_UPSTREAM_ALLOW_NETWORKS),
        bool(settings.KT_UPSTREAM_ALLOW_HTTP),
        settings.KT_FAKE_PROVIDER_URL or "",
    )
