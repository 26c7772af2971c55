"""Gateway errors, rendered in the shape the caller's SDK expects.

OpenAI endpoints answer `{"error": {"message", "type", "code", "param"}}`; `/v1/messages`
answers Anthropic's `{"type": "error", "error": {"type", "message"}}`.
"""

import json

from django.http import HttpResponse

# Anthropic's error types for each status the gateway itself produces.
ANTHROPIC_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    502: "api_error",
    503: "overloaded_error",
    504: "timeout_error",
}


class GatewayError(Exception):
    """Ends a gateway request with `status` and an SDK-shaped JSON error body."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
        headers: dict | None = None,
        extra: dict | None = None,
    ):
        super().__init__(message)
        self.extra = extra or {}  # more fields of the error object (a cost ticket's `ticket_id`)
        self.status = status
        self.message = message
        self.type = type
        self.code = code
        self.param = param
        self.headers = headers or {}


def bad_request(message: str, *, code: str = "invalid_request", param: str | None = None):
    return GatewayError(400, message, code=code, param=param)


def error_body(error: GatewayError, *, anthropic: bool) -> dict:
    if anthropic:
        kind = ANTHROPIC_TYPES.get(error.status, "api_error")
        return {"type": "error", "error": {"type": kind, "message": error.message}}
    return {
        "error": {
            "message": error.message,
            "type": error.type,
            "code": error.code,
            "param": error.param,
            **error.extra,
        }
    }


def error_response(error: GatewayError, *, anthropic: bool = False) -> HttpResponse:
    response = HttpResponse(
        json.dumps(error_body(error, anthropic=anthropic)),
        status=error.status,
        content_type="application/json",
    )
    for key, value in error.headers.items():
        response[key] = value
    return response


def retry_later(message: str, *, code: str, retry_after: int) -> GatewayError:
    """A 503 the client may retry after `retry_after` seconds (the SDKs honour the header)."""
    return GatewayError(
        503,
        message,
        type="server_error",
        code=code,
        headers={"retry-after": str(retry_after)},
    )


# Seconds a client is told to wait when the database is away before its call reached the
# provider. The SDKs retry a 503 by themselves and honour `retry-after`: 2 s twice (their
# default of two retries) spans a PostgreSQL restart, which takes about 1-3 s.
DATABASE_RETRY_AFTER = 2


def database_unavailable() -> GatewayError:
    """The 503 for a request that needed the database before the provider call (key lookup,
    routing, the hold) while it was unreachable: nothing was sent upstream, nothing charged."""
    return retry_later(
        "The gateway cannot reach its database right now; nothing was sent to the provider "
        f"and nothing was charged. Retry in {DATABASE_RETRY_AFTER} seconds.",
        code="database_unavailable",
        retry_after=DATABASE_RETRY_AFTER,
    )
