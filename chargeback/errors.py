"""Domain errors raised by services. The management API maps them to DRF-style JSON here; the
gateway maps them to OpenAI-shaped errors in `gateway/errors.py`."""

from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import exception_handler


class ApplicationError(Exception):
    status_code = status.HTTP_400_BAD_REQUEST
    code = "invalid_request"

    def __init__(self, message: str, *, extra: dict | None = None):
        super().__init__(message)
        self.message = message
        self.extra = extra or {}


class NotFound(ApplicationError):
    status_code = status.HTTP_404_NOT_FOUND
    code = "not_found"


class InsufficientFunds(ApplicationError):
    status_code = status.HTTP_402_PAYMENT_REQUIRED
    code = "insufficient_quota"

    def __init__(self, message: str, *, available=None, required=None, currency: str = "USD"):
        super().__init__(
            message, extra={"available": available, "required": required, "currency": currency}
        )
        self.available = available
        self.required = required
        self.currency = currency


class IdempotencyConflict(ApplicationError):
    status_code = status.HTTP_409_CONFLICT
    code = "idempotency_conflict"


class Conflict(ApplicationError):
    status_code = status.HTTP_409_CONFLICT
    code = "conflict"


class InvalidField(ApplicationError):
    """Bad input for one argument of a service. `field` is that argument's name, so each
    interface can show the message where the value was typed: the config file's key path and
    line, the API's field, the admin form's field."""

    code = "invalid"

    def __init__(self, field: str, message: str):
        super().__init__(message, extra={"field": field})
        self.field = field


class NotConfigured(ApplicationError):
    """The server lacks a setting the operation needs (the operator's to fix, not the caller's)."""

    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    code = "not_configured"


class ConfigError(ApplicationError):
    """A config file problem; `path` is the key path (`consumer_groups[1].api_key`), `line` 1-based."""

    code = "invalid_config"

    def __init__(self, message: str, *, path: str = "", line: int | None = None):
        where = f"{path}: " if path else ""
        at = f" (line {line})" if line else ""
        super().__init__(f"{where}{message}{at}", extra={"path": path, "line": line})
        self.path = path
        self.line = line


def api_exception_handler(exc, context):
    if isinstance(exc, ApplicationError):
        body = {"detail": exc.message, "code": exc.code}
        body.update({k: _jsonable(v) for k, v in exc.extra.items() if v is not None})
        return Response(body, status=exc.status_code)
    return exception_handler(exc, context)


def _jsonable(value):
    return str(value) if not isinstance(value, str | int | float | bool | list | dict) else value
