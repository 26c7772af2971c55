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
