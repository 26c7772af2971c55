"""`GET /v1/wallets/{team_id}/transactions`: a team wallet's transactions (wallets/
transactions.py), filterable by kind and date, in limit/offset pages like the other lists."""

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.views import APIView

from chargeback.periods import day_range
from chargeback.serializers import MoneyField
from wallets import selectors
from wallets.apis import BAD_REQUEST, ERRORS, WalletPagination
from wallets.transactions import COLUMNS, KINDS, wallet_transactions


class TransactionSerializer(serializers.Serializer):
    id = serializers.CharField(help_text="`le_<entry id>`, or `hold_<id>_reserve|release`")
    kind = serializers.ChoiceField(choices=KINDS)
    amount = MoneyField(help_text="signed: what the wallet's available funds did")
    balance_after = MoneyField(
        allow_null=True, help_text="the balance after a ledger entry; null for a hold"
    )
    currency = serializers.CharField()
    description = serializers.CharField()
    reference = serializers.CharField(
        help_text="the request id (reserve, settle, release, refund), a transfer's other wallet"
    )
    transfer_id = serializers.CharField(help_text="shared by an allocation's or reclaim's sides")
    created_at = serializers.DateTimeField()

    def to_representation(self, row):
        values = dict(zip(COLUMNS, row, strict=True))
        data = {name.removeprefix("tx_"): value for name, value in values.items()}
        data["created_at"] = data.pop("time")
        return super().to_representation(data)


class TransactionPageSerializer(serializers.Serializer):
    count = serializers.IntegerField()
    next = serializers.URLField(allow_null=True)
    previous = serializers.URLField(allow_null=True)
    results = TransactionSerializer(many=True)


class WalletTransactionsApi(APIView):
    class FilterSerializer(serializers.Serializer):
        kind = serializers.MultipleChoiceField(
            choices=KINDS, required=False, help_text="repeat for several: ?kind=settle&kind=refund"
        )
        date_from = serializers.DateField(
            required=False, help_text="first day, inclusive, in the organization's time zone"
        )
        date_to = serializers.DateField(required=False, help_text="last day, inclusive")
        limit = serializers.IntegerField(
            min_value=1, required=False, help_text="page size, default 50, at most 500"
        )
        offset = serializers.IntegerField(min_value=0, required=False)

        def validate(self, attrs):
            start, end = attrs.get("date_from"), attrs.get("date_to")
            if start and end and start > end:
                raise serializers.ValidationError({"date_to": ["must not be before date_from"]})
            return attrs

    @extend_schema(
        operation_id="wallets_transactions",
        summary="A team wallet's transactions (reserve, settle, release, refund, allocate, "
        "reclaim, credit, adjust), newest first",
        parameters=[FilterSerializer],
        responses={
            200: TransactionPageSerializer,
            400: BAD_REQUEST,
            **ERRORS,
            404: OpenApiResponse(description="not this organization's team, or no wallet"),
        },
    )
    def get(self, request, team_id):
        organization = request.organization
        wallet = selectors.wallet_detail(organization=organization, team_id=team_id)
        query = request.query_params
        filters = self.FilterSerializer(
            data={**query.dict(), **({"kind": query.getlist("kind")} if "kind" in query else {})}
        )
        filters.is_valid(raise_exception=True)
        data = filters.validated_data
        since = until = None
        if data.get("date_from"):
            since = day_range(organization, data["date_from"], data["date_from"])[0]
        if data.get("date_to"):
            until = day_range(organization, data["date_to"], data["date_to"])[1]
        rows = wallet_transactions(
            wallet=wallet, kinds=sorted(data.get("kind") or []), since=since, until=until
        )
        paginator = WalletPagination()
        page = paginator.paginate_queryset(rows, request, view=self)
        return paginator.get_paginated_response(TransactionSerializer(page, many=True).data)
