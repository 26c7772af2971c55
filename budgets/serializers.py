"""Input and output shapes of the budgets API. Unknown fields are refused, not ignored: a typo
like `threshold` must not silently leave the defaults in place."""

from rest_framework import serializers

from budgets import selectors
from budgets.models import Budget
from budgets.services import DEFAULT_THRESHOLDS
from chargeback.money import to_cents
from chargeback.serializers import AmountInputField, StrictSerializer

# Shapes only: the rules (amount, thresholds, currency, emails) are the service's
# (budgets/services.py budget_check), so the API, the admin and the config file refuse
# the same things with the same words.


def _thresholds(**kwargs):
    return serializers.ListField(child=serializers.IntegerField(), **kwargs)


def _owner_emails():
    return serializers.ListField(child=serializers.CharField(max_length=254), required=False)


class BudgetCreateInput(StrictSerializer):
    team_id = serializers.CharField(max_length=100)
    amount = AmountInputField()
    currency = serializers.CharField(max_length=3, required=False)
    period = serializers.ChoiceField(choices=Budget.Period.choices, default=Budget.Period.MONTH)
    thresholds = _thresholds(default=DEFAULT_THRESHOLDS)
    owner_emails = _owner_emails()


class BudgetUpdateInput(StrictSerializer):
    amount = AmountInputField()
    thresholds = _thresholds()
    owner_emails = _owner_emails()

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
        # A list passes its page's statuses (selectors.budget_statuses: the same figures).
        status = self.context.get("statuses", {}).get(budget.pk) or selectors.budget_status(
            budget=budget
        )
        forecast = status.forecast
        return {
            "start": status.period_start.isoformat(),
            "end": status.period_end.isoformat(),
            "spend": str(to_cents(status.spend)),
            "percent_used": str(status.percent_of(budget.amount)),
            "forecast": str(to_cents(forecast)) if forecast is not None else None,
            "days_left": status.days_left,
            "alerts": [  # all() reads a list's prefetched alerts
                {"kind": a.kind, "threshold": a.threshold, "status": a.status}
                for a in sorted(budget.alerts.all(), key=lambda a: (a.kind, a.threshold))
                if a.period_start == status.period_start
            ],
        }
