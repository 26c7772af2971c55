"""What the OpenAPI schema (drf-spectacular, `/api/schema/`) says about errors.

Every management operation (`/v1/...`, the gateway is not in the schema) documents, besides its
success, the errors it can answer, with one shared body:

- 401 always (no admin token, or an unknown or revoked one);
- 400 when it takes input (a body or query parameters): DRF's `{field: [messages]}` or a
  service's `{detail, code}`;
- 404 when its path names an object (another organization's object is a 404 too);
- 409, 402 where the view declares them (`conflict(...)`).

`Error` is the body of `chargeback.errors.api_exception_handler` for a service's refusal, which
is also DRF's own shape for authentication, not-found and parse errors (`detail` only).
"""

import uritemplate
from drf_spectacular.extensions import OpenApiSerializerExtension
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import OpenApiResponse, PolymorphicProxySerializer
from rest_framework import serializers

MANAGEMENT_PREFIX = "/v1/"


class ErrorSerializer(serializers.Serializer):
    """An error answered as `{detail, code, ...}`."""

    detail = serializers.CharField(help_text="What went wrong, for a person.")
    code = serializers.CharField(
        required=False,
        help_text="For a program: `invalid_request`, `not_found`, `conflict`, "
        "`idempotency_conflict`, `insufficient_quota`, `invalid_config`. Absent on DRF's own "
        "errors (authentication, malformed JSON).",
    )
    field = serializers.CharField(required=False, help_text="The input the refusal is about.")
    path = serializers.CharField(required=False, help_text="`invalid_config`: the key path.")
    line = serializers.IntegerField(required=False, help_text="`invalid_config`: the line (1-).")
    available = serializers.CharField(required=False, help_text="402: what the wallet has.")
    required = serializers.CharField(required=False, help_text="402: what was asked for.")
    currency = serializers.CharField(required=False, help_text="402: the wallet's currency.")


class FieldErrorsSerializer(serializers.Serializer):
    """DRF's validation errors: `{field: [messages]}` (nested for nested input). A marker: its
    schema comes from FieldErrorsExtension."""


class FieldErrorsExtension(OpenApiSerializerExtension):
    target_class = FieldErrorsSerializer

    def map_serializer(self, auto_schema, direction):
        return {
            "type": "object",
            "description": "Each refused input and why; nothing was changed.",
            "additionalProperties": {
                "oneOf": [{"type": "array", "items": {"type": "string"}}, {"type": "object"}]
            },
            "example": {"amount": ["A valid number is required."]},
        }


BAD_REQUEST = OpenApiResponse(
    PolymorphicProxySerializer(
        component_name="BadRequest",
        serializers=[FieldErrorsSerializer, ErrorSerializer],
        resource_type_field_name=None,
    ),
    description="Invalid input; nothing was changed. `{field: [messages]}` (validation, "
    "including an unreadable `limit` or `offset`) or `{detail, code}` (malformed JSON, a rule of "
    "the operation).",
)
UNAUTHORIZED = OpenApiResponse(
    ErrorSerializer,
    description="No admin token (`Authorization: Bearer <token>`), or an unknown or revoked one.",
)
NOT_FOUND = OpenApiResponse(
    ErrorSerializer,
    description="No such object in the token's organization (another organization's is a 404 "
    "too: nothing says whether it exists).",
)


def conflict(description: str) -> OpenApiResponse:
    """A 409 (`code`: `conflict` or `idempotency_conflict`) for a view's `responses`."""
    return OpenApiResponse(ErrorSerializer, description=description)


def error(description: str) -> OpenApiResponse:
    """Any other error status a view declares (402, ...), with the shared body."""
    return OpenApiResponse(ErrorSerializer, description=description)


class ManagementAutoSchema(AutoSchema):
    """Adds the errors above to every management operation, and gives the shared body to error
    statuses a view declared with a description only."""

    def _get_response_bodies(self, direction="response"):
        responses = super()._get_response_bodies(direction)
        if not self.path.startswith(MANAGEMENT_PREFIX):
            return responses
        for code, default in self._default_errors().items():
            if code not in responses:
                responses[code] = self._get_response_for_code(default, code, direction=direction)
        for code, response in list(responses.items()):
            if code >= "400" and "content" not in response:
                shared = BAD_REQUEST if code == "400" else error("")
                described = OpenApiResponse(
                    shared.response, description=response.get("description") or shared.description
                )
                responses[code] = self._get_response_for_code(described, code, direction=direction)
        return dict(sorted(responses.items()))

    def _default_errors(self) -> dict[str, OpenApiResponse]:
        errors = {}
        if self.view.get_authenticators():
            errors["401"] = UNAUTHORIZED
        has_query = any(p.get("in") == "query" for p in self._get_parameters())
        if self.method in ("POST", "PUT", "PATCH") or has_query:
            errors["400"] = BAD_REQUEST
        if uritemplate.variables(self.path):
            errors["404"] = NOT_FOUND
        return errors
