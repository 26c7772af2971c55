"""Provider adapters: where a request goes, with which credentials, in which wire format.

One small interface (`Adapter`): the URL for an endpoint, the upstream headers, and the wire
format of the reply (`gateway/wire.py` normalises usage per format). Adapters:
- `openai`: any OpenAI-compatible server at `base_url` (default https://api.openai.com/v1);
  target options `headers` (extra headers), `auth_header` (e.g. `api-key` for Azure) and
  `query` (e.g. `{"api-version": "..."}`) cover Azure OpenAI, vLLM, Ollama and OpenRouter;
- `anthropic`: the Messages API natively, chat completions through Anthropic's
  OpenAI-compatible endpoint;
- `fake`: the built-in fake provider (`gateway/fake_provider.py`), which speaks both.

Upstream HTTP goes through one pooled `httpx.HTTPTransport` per process per upstream origin;
timeouts are given per request: the target's `timeouts` from the config file (`{connect,
read}`), else the settings KT_UPSTREAM_CONNECT_TIMEOUT and KT_UPSTREAM_READ_TIMEOUT.
Every connection a pool opens is checked against the operator's address rules
(gateway/egress.py). A target's key is its organization's stored secret or an environment
variable the operator allows that organization; never any other variable of the server.
"""

import logging
import os
import threading
import time
from dataclasses import dataclass, field
from functools import lru_cache
from urllib.parse import urlencode

import httpx
from django.conf import settings

from chargeback import secretbox
from chargeback.errors import NotConfigured
from gateway import egress
from gateway.errors import GatewayError
from gateway.hooks import upstream_answered
from gateway.routing import Target

log = logging.getLogger(__name__)

PATHS = {"chat": "chat/completions", "embeddings": "embeddings", "messages": "messages"}
FORMATS = {"chat": "openai", "embeddings": "openai", "messages": "anthropic"}
ANTHROPIC_VERSION = "2023-06-01"


class Adapter:
    kind = ""
    default_base_url = ""

    def url(self, base_url: str, endpoint: str, options: dict) -> str:
        raise NotImplementedError

    def headers(self, secret: str, request, options: dict) -> dict:
        raise NotImplementedError

    def wire_format(self, endpoint: str) -> str:
        return FORMATS[endpoint]

    def translates(self, endpoint: str) -> bool:
        """True when this upstream cannot speak `endpoint` natively and the gateway translates
        (Anthropic Messages to an OpenAI-compatible server, gateway/translate.py)."""
        return False


def _with_query(url: str, options: dict) -> str:
    query = options.get("query")
    return f"{url}?{urlencode(query)}" if isinstance(query, dict) and query else url


def _extra_headers(options: dict) -> dict:
    extra = options.get("headers")
    return {str(k): str(v) for k, v in extra.items()} if isinstance(extra, dict) else {}


class OpenAIAdapter(Adapter):
    kind = "openai"
    default_base_url = "https://api.openai.com/v1"

    def url(self, base_url, endpoint, options):
        return _with_query(f"{base_url.rstrip('/')}/{PATHS[endpoint]}", options)

    def translates(self, endpoint):
        return endpoint == "messages"

    def headers(self, secret, request, options):
        headers = {"Content-Type": "application/json", **_extra_headers(options)}
        if secret:
            auth = options.get("auth_header")
            if auth:
                headers[str(auth)] = secret
            else:
                headers["Authorization"] = f"Bearer {secret}"
        return headers


class AnthropicAdapter(Adapter):
    kind = "anthropic"
    default_base_url = "https://api.anthropic.com"

    def url(self, base_url, endpoint, options):
        base = base_url.rstrip("/").removesuffix("/v1")
        return _with_query(f"{base}/v1/{PATHS[endpoint]}", options)

    def headers(self, secret, request, options):
        headers = {
            "Content-Type": "application/json",
            "anthropic-version": request.META.get("HTTP_ANTHROPIC_VERSION") or ANTHROPIC_VERSION,
            **_extra_headers(options),
        }
        beta = request.META.get("HTTP_ANTHROPIC_BETA")
        if beta:
            headers["anthropic-beta"] = beta
        if secret:
            headers["x-api-key"] = secret
            headers["Authorization"] = f"Bearer {secret}"  # the OpenAI-compatible endpoint
        return headers


class FakeAdapter(AnthropicAdapter):
    """The built-in fake: Anthropic-style paths for everything, `x-fake-*` options passed on."""

    kind = "fake"
    default_base_url = ""

    def headers(self, secret, request, options):
        headers = super().headers(secret, request, options)
        for key, value in request.headers.items():
            if key.lower().startswith("x-fake-"):
                headers[key] = value
        return headers


ADAPTERS = {a.kind: a for a in (OpenAIAdapter(), AnthropicAdapter(), FakeAdapter())}


@dataclass(frozen=True)
class Upstream:
    adapter: Adapter
    base_url: str
    secret: str = field(repr=False)
    offline: bool = False  # sent to the fake provider because the secret is missing


_offline_logged: set = set()


def upstream_for(target: Target) -> Upstream:
    """Resolve a target to an adapter, a base URL and its secret (from the environment)."""
    fake_url = settings.KT_FAKE_PROVIDER_URL
    if target.provider == "fake":
        base = target.base_url or fake_url
        if not base:
            raise GatewayError(
                503,
                f"Target {target.target_id} uses the fake provider but has no base_url and "
                "KT_FAKE_PROVIDER_URL is not set.",
                type="server_error",
                code="provider_not_configured",
            )
        return Upstream(ADAPTERS["fake"], base, "")
    adapter = ADAPTERS[target.provider]
    if target.secret_name:
        return Upstream(adapter, target.base_url or adapter.default_base_url, _stored(target))
    secret = ""
    if target.secret_env:
        if not target.secret_env_allowed:
            # Checked before the variable is read: a refused name reveals nothing about it.
            raise GatewayError(
                503,
                f"Target {target.target_id} reads its key from the environment variable "
                f"{target.secret_env}, which the platform operator does not allow for this "
                "organization; store the key as a provider secret and reference it with "
                "secret_key_ref: {secret: NAME}.",
                type="server_error",
                code="provider_not_configured",
            )
        secret = os.environ.get(target.secret_env, "")
    if target.secret_env and not secret:
        if fake_url:
            if target.pk not in _offline_logged:
                _offline_logged.add(target.pk)
                log.warning(
                    "target %s: %s is not set; demo offline mode sends its calls to the fake "
                    "provider at %s",
                    target.target_id,
                    target.secret_env,
                    fake_url,
                )
            return Upstream(ADAPTERS["fake"], fake_url, "", offline=True)
        raise GatewayError(
            503,
            f"Target {target.target_id} needs its API key in the environment variable "
            f"{target.secret_env}, which is not set on the gateway.",
            type="server_error",
            code="provider_not_configured",
        )
    return Upstream(adapter, target.base_url or adapter.default_base_url, secret)


def _stored(target: Target) -> str:
    """The target's stored secret, decrypted (once per process and secret version)."""
    try:
        return secretbox.unseal_cached(
            token=target.secret_token,
            organization_id=target.organization_id,
            name=target.secret_name,
        )
    except NotConfigured:
        problem = "the gateway has no KT_SECRETS_KEY to decrypt it"
    except secretbox.SecretUnreadable:
        problem = "it cannot be decrypted with the gateway's KT_SECRETS_KEY"
    log.error("target %s: stored secret %s: %s", target.target_id, target.secret_name, problem)
    raise GatewayError(
        503,
        f"Target {target.target_id} uses the stored secret {target.secret_name}, but {problem}.",
        type="server_error",
        code="provider_not_configured",
    )


# One transport (connection pool) per upstream origin, so that a slow origin cannot take the
# connections of another. The gateway calls the transport itself rather than an httpx.Client:
# a client's URL merging, cookie jar, auth and redirect handling cost about 40 % of the upstream
# call's CPU here (docs/performance.md) and do nothing for a proxy, and a shared cookie jar would
# even carry one tenant's provider cookies into another tenant's requests.
_transports: dict[str, httpx.HTTPTransport] = {}
_transports_lock = threading.Lock()
USER_AGENT = "kt-gateway"


def transport_for(url: httpx.URL) -> httpx.HTTPTransport:
    """The process's pooled transport for the origin of `url` (created once, thread-safe)."""
    origin = f"{url.scheme}://{url.netloc.decode()}"
    transport = _transports.get(origin)
    if transport is None:
        with _transports_lock:
            transport = _transports.get(origin)
            if transport is None:
                transport = httpx.HTTPTransport(
                    limits=httpx.Limits(
                        max_connections=settings.KT_UPSTREAM_MAX_CONNECTIONS,
                        max_keepalive_connections=settings.KT_UPSTREAM_MAX_KEEPALIVE,
                        keepalive_expiry=30,
                    )
                )
                # Each connection it opens is checked (gateway/egress.py), not each request.
                egress.guard(transport, url.scheme)
                _transports[origin] = transport
    return transport


@lru_cache(maxsize=1024)
def parsed_url(url: str) -> httpx.URL:
    return httpx.URL(url)


def upstream_send(
    url: str, headers: dict, payload: bytes, timeouts: dict | None = None
) -> httpx.Response:
    """POST `payload` upstream; the response with its body not yet read (the caller reads or
    streams it, then closes it). `timeouts` is the target's `{connect, read}` (seconds; each
    missing one from settings). Raises httpx.HTTPError (TimeoutException on a timeout), or
    httpx.InvalidURL for a base URL httpx cannot parse (a gateway error, not the provider's)."""
    target = parsed_url(url)
    connect = read = None
    if isinstance(timeouts, dict):
        connect, read = timeouts.get("connect"), timeouts.get("read")
    request = httpx.Request(
        "POST",
        target,
        headers={"User-Agent": USER_AGENT, **headers},
        content=payload,
        extensions={"timeout": timeout(connect=connect, read=read)},
    )
    started = time.perf_counter()
    response = transport_for(target).handle_request(request)
    upstream_answered(time.perf_counter() - started)  # the provider latency metric
    return response


def timeout(*, connect: float | None = None, read: float | None = None) -> dict:
    """httpx's per-request timeout extension: `connect` to open the connection, `read` for every
    wait on the provider (each read of the reply, a stream's next event, writing the request
    body and waiting for a pooled connection). Unset values come from KT_UPSTREAM_CONNECT_TIMEOUT
    and KT_UPSTREAM_READ_TIMEOUT, read per request so a settings change applies at once."""
    return _timeout(
        _seconds(connect, settings.KT_UPSTREAM_CONNECT_TIMEOUT),
        _seconds(read, settings.KT_UPSTREAM_READ_TIMEOUT),
    )


def _seconds(value, default: float) -> float:
    """A positive number of seconds; anything else (unset, or not a number, e.g. an options
    field edited by hand) falls back to the setting."""
    if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
        return float(value)
    return float(default)


@lru_cache(maxsize=256)
def _timeout(connect: float, read: float) -> dict:
    # Shared and never mutated: the transport only reads it.
    return {"connect": connect, "read": read, "write": read, "pool": read}
