"""Management API of exchange rates: `GET/POST /v1/admin/exchange-rates` (admin token).

GET lists the rates the token's organization converts with (its own and the shared table's,
`scope` says which); POST adds one of the organization's own (gateway/exchange.py). A rate is
never edited: a new rate from a later instant replaces it for later requests."""

from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_field,
)
from rest_framework import serializers, status
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from chargeback.auth import actor_of, via_of
from chargeback.errors import ApplicationError
from chargeback.money import CURRENCIES, parse_amount, rate_problem
from chargeback.pagination import LimitOffsetPage
from chargeback.serializers import CurrencyField, StrictSerializer
from gateway.exchange import exchange_rate_create, exchange_rates_of

CURRENCY_HELP = "ISO 4217: " + ", ".join(sorted(CURRENCIES))


class RateOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    from_currency = serializers.CharField()
    to_currency = serializers.CharField()
    rate = serializers.SerializerMethodField(help_text="units of to_currency per from_currency")
    effective_from = serializers.DateTimeField()
    scope = serializers.SerializerMethodField(help_text="organization (yours) or shared")
    created_at = serializers.DateTimeField()

    def get_rate(self, obj) -> str:
        return f"{obj.rate.normalize():f}"

    def get_scope(self, obj) -> str:
        return "shared" if obj.organization_id is None else "organization"


@extend_schema_field(
    {
        "oneOf": [{"type": "number"}, {"type": "string", "format": "decimal"}],
        "example": "0.9213",
        "description": "greater than zero, at most 10 decimal places",
    }
)
class RateInputField(serializers.Field):
    default_error_messages = {"invalid": 'must be a number, e.g. 0.92 or "0.92"'}

    def to_internal_value(self, data):
        if isinstance(data, list | dict):
            self.fail("invalid")
        try:
            rate = parse_amount(data.strip() if isinstance(data, str) else data)
        except ValueError:
            self.fail("invalid")
        if problem := rate_problem(rate):
            raise serializers.ValidationError(problem)
        return rate

    def to_representation(self, value):
        return str(value)


@extend_schema_field(
    {"type": "string", "pattern": "^[A-Z]{3}$", "example": "EUR", "description": CURRENCY_HELP}
)
class RateCurrencyField(CurrencyField):
    """A currency code; documented as a pattern, not a second enum of the same codes."""


class RateInputSerializer(StrictSerializer):
    from_currency = RateCurrencyField(help_text="the prices' currency")
    to_currency = RateCurrencyField(help_text="the wallet's currency")
    rate = RateInputField(help_text="units of to_currency per from_currency, > 0, 10 places")
    effective_from = serializers.DateTimeField(
        required=False, help_text="when it starts applying (default: now)"
    )

    def validate(self, attrs):
        if attrs["from_currency"] == attrs["to_currency"]:
            raise ValidationError({"to_currency": ["must differ from from_currency"]})
        return attrs


class ExchangeRateListApi(APIView):
    pagination_class = LimitOffsetPage

    @extend_schema(
        operation_id="exchange_rates_list",
        summary="The exchange rates the organization converts with (own and shared)",
        parameters=[
            OpenApiParameter("from_currency", str, description="only this source currency"),
            OpenApiParameter("to_currency", str, description="only this target currency"),
        ],
        responses={200: RateOutputSerializer(many=True)},
    )
    def get(self, request):
        rows = exchange_rates_of(organization=request.organization)
        errors = {}
        for name in ("from_currency", "to_currency"):
            value = request.query_params.get(name)
            if value is None:
                continue
            field = CurrencyField()
            try:
                rows = rows.filter(**{name: field.run_validation(value)})
            except ValidationError as exc:
                errors[name] = exc.detail
        if errors:
            raise ValidationError(errors)
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(rows, request, view=self)
        return paginator.get_paginated_response(RateOutputSerializer(page, many=True).data)

    @extend_schema(
        operation_id="exchange_rates_create",
        summary="Add an exchange rate of the organization, in force from effective_from",
        request=RateInputSerializer,
        responses={
            201: RateOutputSerializer,
            400: OpenApiResponse(description="bad currency, rate or instant: {field: [message]}"),
        },
    )
    def post(self, request):
        data = RateInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            row = exchange_rate_create(
                organization=request.organization,
                actor=actor_of(request),
                via=via_of(request),
                **data.validated_data,
            )
        except ApplicationError as exc:
            raise ValidationError(
                {
                    field or "non_field_errors": messages
                    for field, messages in exc.field_errors().items()
                }
            ) from None
        return Response(RateOutputSerializer(row).data, status=status.HTTP_201_CREATED)
