"""`GET /v1/spend?by=team|model|provider|user|group&month=YYYY-MM`: one month's spend grouped one way,
for `kt spend`. Admin token; the token's organization only."""

from decimal import Decimal

from django.utils import timezone
from drf_spectacular.utils import extend_schema, extend_schema_serializer
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from chargeback.errors import ApplicationError
from chargeback.money import ZERO, to_cents
from chargeback.periods import local_today, month_end
from chargeback.replica import replica_lag_notice, replica_reads
from gateway.rollups import rollups_memo
from gateway.selectors import GROUP_NAME, cache_saved_total, spend_by, spend_total
from reports.dashboards.selectors import Repeats, month_parse, repeats_by, share

GROUPS = {
    "team": "department__team_id",
    "model": "model_requested",
    "provider": "provider",
    "user": "user",
    "group": GROUP_NAME,
}


class SpendApi(APIView):
    class InputSerializer(serializers.Serializer):
        by = serializers.ChoiceField(choices=sorted(GROUPS), default="team")
        month = serializers.CharField(required=False)

        def validate_month(self, value):
            try:
                return month_parse(value)
            except ApplicationError as exc:
                raise serializers.ValidationError(exc.message) from None

    @extend_schema_serializer(component_name="Spend")
    class OutputSerializer(serializers.Serializer):
        class SpendRowSerializer(serializers.Serializer):
            key = serializers.CharField()
            cost = serializers.CharField()
            share_percent = serializers.CharField()
            requests = serializers.IntegerField()
            prompt_tokens = serializers.IntegerField()
            completion_tokens = serializers.IntegerField()
            cache_hits = serializers.IntegerField(help_text="requests the response cache answered")
            cache_saved = serializers.CharField(
                help_text="what those hits would have cost, less the cache price: realised"
            )
            cache_would_save = serializers.CharField(
                help_text="repeated prompts the provider answered again: what caching would save"
            )

        by = serializers.CharField()
        month = serializers.CharField()
        currency = serializers.CharField()
        total = serializers.CharField()
        requests = serializers.IntegerField()
        cache_saved = serializers.CharField()
        cache_would_save = serializers.CharField()
        rows = SpendRowSerializer(many=True)

    @extend_schema(parameters=[InputSerializer], responses=OutputSerializer)
    def get(self, request):
        with replica_reads(), rollups_memo():
            response = self._spend(request)
            lag = replica_lag_notice()
        if lag is not None:
            response["X-Replica-Lag-Seconds"] = str(lag)
        return response

    def _spend(self, request):
        params = self.InputSerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        organization = request.organization
        month = params.validated_data.get("month") or local_today(
            organization, timezone.now()
        ).replace(day=1)
        by = params.validated_data["by"]
        scope = {"organization": organization, "date_from": month, "date_to": month_end(month)}
        total = spend_total(**scope)
        rows = spend_by(field=GROUPS[by], **scope)
        would = repeats_by(field=GROUPS[by], **scope)
        # Already the OutputSerializer's representation (strings and integers; it documents the
        # schema): serializing 2,000 user rows through it again took longer than reading them.
        return Response(
            {
                "by": by,
                "month": month.strftime("%Y-%m"),
                "currency": organization.currency,
                "total": str(to_cents(total)),
                "requests": sum(r["requests"] for r in rows),
                "cache_saved": str(to_cents(cache_saved_total(**scope))),
                "cache_would_save": str(
                    to_cents(sum((r.repeated_cost for r in would.values()), ZERO))
                ),
                "rows": [
                    {
                        "key": str(r["key"] or ""),
                        "cost": str(to_cents(r["cost"])),
                        "share_percent": str(
                            (share(r["cost"], total) * 100).quantize(Decimal("0.1"))
                        ),
                        "requests": r["requests"],
                        "prompt_tokens": r["prompt_tokens"] or 0,
                        "completion_tokens": r["completion_tokens"] or 0,
                        "cache_hits": r["cache_hits"],
                        "cache_saved": str(to_cents(r["cache_saved"])),
                        "cache_would_save": str(would.get(r["key"], Repeats()).savings),
                    }
                    for r in rows
                ],
            }
        )
