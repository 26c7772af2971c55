"""Domain errors raised by services. The management API maps them to DRF-style JSON here; the
gateway maps them to OpenAI-shaped errors in `gateway/errors.py`."""

from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import exception_handler


class ApplicationError(Exception):
    """A refusal by a service. `field` names the input it is about (the API answers
    `{"<field>": ["message"]}`, an admin form shows it on that field)."""

    status_code = status.HTTP_400_BAD_REQUEST
    code = "invalid_request"

    def __init__(self, message: str, *, field: str | None = None, extra: dict | None = None):
        super().__init__(message)
        self.message = message
        self.field = field
        self.extra = extra or {}

    def field_errors(self) -> dict[str | None, list[str]]:
        """{field or None: [messages]}: what a form shows where."""
        return {self.field: [self.message]}


class ValidationFailed(ApplicationError):
    """Several inputs refused at once: {field: [messages]} (a service's whole verdict)."""

    def __init__(self, errors: dict[str, list[str]]):
        self.errors = {field: list(messages) for field, messages in errors.items()}
        first = next(iter(self.errors.items()))
        super().__init__(f"{first[0]}: {first[1][0]}", field=first[0])

    def field_errors(self) -> dict[str | None, list[str]]:
        return dict(self.errors)


def collect_errors():
    """`errors = collect_errors()`; `errors.add(field, message)`; `errors.raise_if_any()`."""
    return _Errors()


class _Errors(dict):
    def add(self, field: str, message: str) -> None:
        self.setdefault(field, []).append(message)

    def raise_if_any(self) -> None:
        if self:
            raise ValidationFailed(self)


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
    if isinstance(exc, ValidationFailed):
        return Response(exc.errors, status=exc.status_code)  # DRF's own shape
    if isinstance(exc, ApplicationError):
        body = {"detail": exc.message, "code": exc.code}
        if exc.field:
            body["field"] = exc.field
        body.update({k: _jsonable(v) for k, v in exc.extra.items() if v is not None})
        return Response(body, status=exc.status_code)
    return exception_handler(exc, context)


def _jsonable(value):
    return str(value) if not isinstance(value, str | int | float | bool | list | dict) else value
