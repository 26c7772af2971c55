"""Input and output shapes of the budgets API. Unknown fields are refused, not ignored: a typo
like `threshold` must not silently leave the defaults in place."""

from itertools import pairwise

from rest_framework import serializers

from chargeback.money import to_cents
from wallets.budgets import selectors
from wallets.budgets.services import DEFAULT_THRESHOLDS, MAX_THRESHOLD
from wallets.models import Budget


class StrictSerializer(serializers.Serializer):
    def to_internal_value(self, data):
        if not isinstance(data, dict):
            raise serializers.ValidationError({"non_field_errors": ["expected a JSON object"]})
        unknown = sorted(set(data) - set(self.fields))
        if unknown:
            raise serializers.ValidationError({name: ["unknown field"] for name in unknown})
        return super().to_internal_value(data)


def _validate_thresholds(value: list[int]) -> list[int]:
    if any(a >= b for a, b in pairwise(value)):
        raise serializers.ValidationError("thresholds must be in increasing order without repeats")
    return value


class _Fields:
    @staticmethod
    def amount():
        return serializers.DecimalField(
            max_digits=20, decimal_places=8, min_value=0, coerce_to_string=True
        )

    @staticmethod
    def thresholds(**kwargs):
        return serializers.ListField(
            child=serializers.IntegerField(min_value=1, max_value=MAX_THRESHOLD),
            allow_empty=False,
            max_length=20,
            **kwargs,
        )

    @staticmethod
    def owner_emails():
        return serializers.ListField(child=serializers.EmailField(), max_length=50, required=False)


class BudgetCreateInput(StrictSerializer):
    team_id = serializers.CharField(max_length=100)
    amount = _Fields.amount()
    currency = serializers.CharField(max_length=3, required=False)
    period = serializers.ChoiceField(choices=Budget.Period.choices, default=Budget.Period.MONTH)
    thresholds = _Fields.thresholds(default=DEFAULT_THRESHOLDS)
    owner_emails = _Fields.owner_emails()

    def validate_amount(self, value):
        if value <= 0:
            raise serializers.ValidationError("must be greater than zero")
        return value

    def validate_thresholds(self, value):
        return _validate_thresholds(value)


class BudgetUpdateInput(StrictSerializer):
    amount = _Fields.amount()
    thresholds = _Fields.thresholds()
    owner_emails = _Fields.owner_emails()

    validate_amount = BudgetCreateInput.validate_amount

    def validate_thresholds(self, value):
        return _validate_thresholds(value)

    def to_internal_value(self, data):
        if isinstance(data, dict):
            fixed = sorted({"team_id", "currency", "period"} & set(data))
            if fixed:
                raise serializers.ValidationError(
                    {
                        name: ["cannot be changed; delete the budget and create a new one"]
                        for name in fixed
                    }
                )
        return super().to_internal_value(data)


class BudgetOutput(serializers.Serializer):
    id = serializers.IntegerField()
    team_id = serializers.CharField(source="department.team_id")
    department = serializers.CharField(source="department.name")
    amount = serializers.SerializerMethodField()
    currency = serializers.CharField()
    period = serializers.CharField()
    thresholds = serializers.ListField(child=serializers.IntegerField())
    owner_emails = serializers.ListField(child=serializers.EmailField())
    current_period = serializers.SerializerMethodField()
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()

    def get_amount(self, budget) -> str:
        return str(to_cents(budget.amount))

    def get_current_period(self, budget) -> dict:
        status = selectors.budget_status(budget=budget)
        forecast = status.forecast
        return {
            "start": status.period_start.isoformat(),
            "end": status.period_end.isoformat(),
            "spend": str(to_cents(status.spend)),
            "percent_used": str(status.percent_of(budget.amount)),
            "forecast": str(to_cents(forecast)) if forecast is not None else None,
            "days_left": status.days_left,
            "alerts": [
                {"kind": a.kind, "threshold": a.threshold, "status": a.status}
                for a in budget.alerts.filter(period_start=status.period_start).order_by(
                    "kind", "threshold"
                )
            ],
        }
