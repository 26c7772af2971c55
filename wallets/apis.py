"""Wallet management API: one small view per operation, thin, calling services and selectors.

Auth is the project default (admin bearer token -> `request.organization`). Money formats are
described in chargeback/serializers.py; errors in docs/api.md.
"""

from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_serializer,
)
from rest_framework import serializers, status
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from chargeback.auth import actor_of, via_of
from chargeback.models import Department
from chargeback.openapi import ErrorSerializer, conflict, error
from chargeback.pagination import LimitOffsetPage
from chargeback.serializers import (
    AmountInputField,
    CurrencyField,
    DecimalJSONParser,
    MoneyField,
    StrictSerializer,
)
from wallets import selectors, services
from wallets.models import LedgerEntry, Wallet

IDEMPOTENCY_HEADER = OpenApiParameter(
    "Idempotency-Key",
    str,
    OpenApiParameter.HEADER,
    description="Same key and body: the first result again (header `Idempotent-Replayed: true`). "
    "Same key, different body: 409.",
)
REPLAYED_HEADER = "Idempotent-Replayed"


class WalletPagination(LimitOffsetPage):
    default_limit = 50


def _idempotency_key(request) -> str | None:
    key = request.headers.get("Idempotency-Key", "").strip()
    if not key:
        return None
    if len(key) > 200 or not key.isprintable():
        raise ValidationError({"Idempotency-Key": ["at most 200 printable characters"]})
    return key


def _department(organization, team_id: str) -> Department:
    """This organization's department, or a validation error that does not say whether another
    organization has a team of that name."""
    department = Department.objects.filter(organization=organization, team_id=team_id).first()
    if department is None:
        raise serializers.ValidationError(f"unknown team {team_id!r}")
    return department


class TeamIdField(serializers.CharField):
    def __init__(self, **kwargs):
        kwargs.setdefault("max_length", 100)
        super().__init__(**kwargs)


BAD_REQUEST = OpenApiResponse(
    description="Validation error, `{field: [messages]}` (unknown field, bad amount, unknown "
    "currency or team, malformed JSON) or `{detail, code}`; nothing was changed."
)
ERRORS = {
    401: OpenApiResponse(ErrorSerializer, description="missing or invalid admin token"),
    404: OpenApiResponse(ErrorSerializer, description="not this organization's, or no wallet"),
}
FUNDING_ERRORS = {
    400: BAD_REQUEST,
    401: ERRORS[401],
    409: conflict("Idempotency-Key reused with another body"),
}


# --- output ------------------------------------------------------------------------------------


class EntryOutputSerializer(serializers.Serializer):
    """A ledger entry as the funding endpoints return it, with the wallet after it."""

    id = serializers.IntegerField()
    kind = serializers.CharField()
    scope = serializers.CharField(source="wallet.scope")
    team_id = serializers.CharField(source="wallet.department.team_id", allow_null=True)
    user_id = serializers.CharField(source="wallet.user_ref")
    amount = MoneyField()
    currency = serializers.CharField()
    description = serializers.CharField()
    reference = serializers.CharField(
        help_text="the refunded call's request id, a reclaim's source"
    )
    balance = MoneyField(source="balance_after", help_text="the wallet's balance after this entry")
    available = MoneyField(
        source="wallet.available", help_text="the wallet's available funds now (balance - held)"
    )
    created_at = serializers.DateTimeField()


class WalletOutputSerializer(serializers.Serializer):
    scope = serializers.CharField()
    name = serializers.CharField()
    team_id = serializers.CharField(source="department.team_id", allow_null=True, default=None)
    user_id = serializers.CharField(source="user_ref")
    currency = serializers.CharField()
    balance = MoneyField(help_text="sum of the ledger entries")
    held = MoneyField(help_text="sum of pending holds")
    reserved = MoneyField(source="held", help_text="same as held (the console's name)")
    available = MoneyField(help_text="balance - held: what new requests may reserve")
    total_allocated = MoneyField(help_text="sum of allocation and credit entries")
    total_spent = MoneyField(help_text="captures minus refunds")
    status = serializers.ChoiceField(choices=["healthy", "low", "depleted"])
    low_threshold_percent = serializers.IntegerField()
    created_at = serializers.DateTimeField()


class WalletPageSerializer(serializers.Serializer):
    count = serializers.IntegerField()
    next = serializers.URLField(allow_null=True)
    previous = serializers.URLField(allow_null=True)
    results = WalletOutputSerializer(many=True)


class LedgerEntryOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    kind = serializers.ChoiceField(choices=LedgerEntry.Kind.choices)
    amount = MoneyField(help_text="signed: positive adds funds, negative spends them")
    balance_after = MoneyField()
    currency = serializers.CharField()
    description = serializers.CharField()
    reference = serializers.CharField(help_text="request id of a capture, source of a reclaim")
    actor = serializers.CharField()
    created_at = serializers.DateTimeField()


class LedgerPageSerializer(serializers.Serializer):
    count = serializers.IntegerField()
    next = serializers.URLField(allow_null=True)
    previous = serializers.URLField(allow_null=True)
    results = LedgerEntryOutputSerializer(many=True)


def _entry_response(entry: LedgerEntry, created: bool) -> Response:
    """201 for a new entry and for its replay (same status as the first answer)."""
    entry = LedgerEntry.objects.select_related("wallet__department").get(pk=entry.pk)
    headers = {} if created else {REPLAYED_HEADER: "true"}
    return Response(
        EntryOutputSerializer(entry).data, status=status.HTTP_201_CREATED, headers=headers
    )


# --- funding -----------------------------------------------------------------------------------


class WalletAllocateApi(APIView):
    parser_classes = [DecimalJSONParser]

    @extend_schema_serializer(component_name="WalletAllocateInput")
    class InputSerializer(StrictSerializer):
        team_id = TeamIdField()
        amount = AmountInputField()
        currency = CurrencyField(required=False)
        description = serializers.CharField(max_length=500, required=False, allow_blank=True)
        user_id = serializers.CharField(
            max_length=200, required=False, help_text="fund this end user's wallet instead"
        )

        def validate_team_id(self, value):
            return _department(self.context["organization"], value)

    @extend_schema(
        operation_id="wallets_allocate",
        summary="Allocate funds to a team's (or an end user's) wallet",
        request=InputSerializer,
        responses={201: EntryOutputSerializer, **FUNDING_ERRORS},
        parameters=[IDEMPOTENCY_HEADER],
    )
    def post(self, request):
        organization = request.organization
        key = _idempotency_key(request)
        serializer = self.InputSerializer(data=request.data, context={"organization": organization})
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        entry, created = services.wallet_allocate(
            department=data["team_id"],
            amount=data["amount"],
            currency=data.get("currency", organization.currency),
            description=data.get("description", ""),
            user_ref=data.get("user_id", ""),
            idempotency_key=key,
            actor=actor_of(request),
            via=via_of(request),
        )
        return _entry_response(entry, created)


class WalletCreditApi(APIView):
    parser_classes = [DecimalJSONParser]

    @extend_schema_serializer(component_name="WalletCreditInput")
    class InputSerializer(StrictSerializer):
        amount = AmountInputField()
        currency = CurrencyField(required=False)
        description = serializers.CharField(max_length=500, required=False, allow_blank=True)

    @extend_schema(
        operation_id="wallets_credit",
        summary="Add funds to the organization's wallet",
        request=InputSerializer,
        responses={201: EntryOutputSerializer, **FUNDING_ERRORS},
        parameters=[IDEMPOTENCY_HEADER],
    )
    def post(self, request):
        organization = request.organization
        key = _idempotency_key(request)
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        entry, created = services.wallet_credit(
            organization=organization,
            amount=data["amount"],
            currency=data.get("currency", organization.currency),
            description=data.get("description", ""),
            idempotency_key=key,
            actor=actor_of(request),
            via=via_of(request),
        )
        return _entry_response(entry, created)


class WalletReclaimApi(APIView):
    parser_classes = [DecimalJSONParser]

    @extend_schema_serializer(component_name="WalletReclaimInput")
    class InputSerializer(StrictSerializer):
        team_id = TeamIdField()
        amount = AmountInputField(required=False, help_text="default: everything available")
        currency = CurrencyField(required=False)
        description = serializers.CharField(max_length=500, required=False, allow_blank=True)

        def validate_team_id(self, value):
            return _department(self.context["organization"], value)

    @extend_schema(
        operation_id="wallets_reclaim",
        summary="Move unspent funds from a team's wallet back to the organization's",
        request=InputSerializer,
        responses={
            201: EntryOutputSerializer,
            **FUNDING_ERRORS,
            402: error("more than is available"),
            404: error("the team has no wallet"),
        },
        parameters=[IDEMPOTENCY_HEADER],
    )
    def post(self, request):
        key = _idempotency_key(request)
        serializer = self.InputSerializer(
            data=request.data, context={"organization": request.organization}
        )
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        entry, created = services.wallet_reclaim(
            department=data["team_id"],
            amount=data.get("amount"),
            currency=data.get("currency"),
            description=data.get("description", ""),
            idempotency_key=key,
            actor=actor_of(request),
            via=via_of(request),
        )
        return _entry_response(entry, created)


class WalletRefundApi(APIView):
    parser_classes = [DecimalJSONParser]

    @extend_schema_serializer(component_name="WalletRefundInput")
    class InputSerializer(StrictSerializer):
        request_id = serializers.CharField(
            max_length=200, help_text="the charged call (x-kt-request-id of its response)"
        )
        amount = AmountInputField(
            required=False, help_text="default: all that is left to refund of that call"
        )
        currency = CurrencyField(required=False)
        team_id = TeamIdField(required=False, help_text="when given, must be the charged team")
        reason = serializers.CharField(max_length=500)

    @extend_schema(
        operation_id="wallets_refund",
        summary="Give back (part of) what one call was charged, to the wallet it was taken from",
        request=InputSerializer,
        responses={
            201: EntryOutputSerializer,
            **FUNDING_ERRORS,
            404: OpenApiResponse(ErrorSerializer, description="no charged call with that id"),
            409: OpenApiResponse(
                ErrorSerializer,
                description="more than is left to refund of the call, or Idempotency-Key reused "
                "with another body",
            ),
        },
        parameters=[IDEMPOTENCY_HEADER],
    )
    def post(self, request):
        key = _idempotency_key(request)
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        entry, created = services.wallet_refund(
            organization=request.organization,
            request_id=data["request_id"],
            amount=data.get("amount"),
            currency=data.get("currency"),
            team_id=data.get("team_id", ""),
            reason=data["reason"],
            idempotency_key=key,
            actor=actor_of(request),
            via=via_of(request),
        )
        return _entry_response(entry, created)


# --- reads -------------------------------------------------------------------------------------


class WalletListApi(APIView):
    class FilterSerializer(serializers.Serializer):
        scope = serializers.ChoiceField(choices=Wallet.Scope.choices, required=False)
        team_id = TeamIdField(required=False)
        limit = serializers.IntegerField(
            min_value=1, required=False, help_text="page size, default 50, at most 500"
        )
        offset = serializers.IntegerField(min_value=0, required=False)

    @extend_schema(
        operation_id="wallets_list",
        summary="The organization's wallets with totals and status",
        parameters=[FilterSerializer],
        responses={200: WalletPageSerializer, 400: BAD_REQUEST, 401: ERRORS[401]},
    )
    def get(self, request):
        filters = self.FilterSerializer(data=request.query_params.dict())
        filters.is_valid(raise_exception=True)
        qs = selectors.wallets_for_org(
            organization=request.organization,
            scope=filters.validated_data.get("scope"),
            team_id=filters.validated_data.get("team_id"),
        )
        paginator = WalletPagination()
        page = paginator.paginate_queryset(qs, request, view=self)
        return paginator.get_paginated_response(WalletOutputSerializer(page, many=True).data)


class WalletDetailApi(APIView):
    @extend_schema(
        operation_id="wallets_retrieve",
        summary="A team's wallet: balance, held, available, totals, status",
        responses={200: WalletOutputSerializer, **ERRORS},
    )
    def get(self, request, team_id):
        wallet = selectors.wallet_detail(organization=request.organization, team_id=team_id)
        return Response(WalletOutputSerializer(wallet).data)


class WalletLedgerApi(APIView):
    @extend_schema(
        operation_id="wallets_ledger",
        summary="A team wallet's ledger, newest first (limit/offset pages)",
        parameters=[
            OpenApiParameter("limit", int, description="page size, default 50, at most 500"),
            OpenApiParameter("offset", int),
        ],
        responses={200: LedgerPageSerializer, **ERRORS},
    )
    def get(self, request, team_id):
        wallet = selectors.wallet_detail(organization=request.organization, team_id=team_id)
        paginator = WalletPagination()
        page = paginator.paginate_queryset(
            selectors.wallet_ledger(wallet=wallet), request, view=self
        )
        return paginator.get_paginated_response(LedgerEntryOutputSerializer(page, many=True).data)
