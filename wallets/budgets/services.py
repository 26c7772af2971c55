"""Budget writes: create, update, delete. Each is one transaction that also writes the audit row;
the re-evaluation that may follow (a budget lowered below current spend) runs after commit."""

from decimal import Decimal
from itertools import pairwise

from django.db import IntegrityError, transaction

from chargeback.audit import audit_record
from chargeback.errors import ApplicationError, Conflict
from chargeback.models import Organization
from chargeback.money import CURRENCIES, ZERO, quantize
from wallets.budgets import selectors
from wallets.models import Budget

DEFAULT_THRESHOLDS = [50, 80, 100]
MAX_THRESHOLD = 1000
EDITABLE = ("amount", "thresholds", "owner_emails")


def _snapshot(budget: Budget) -> dict:
    return {
        "team_id": budget.department.team_id,
        "amount": str(budget.amount),
        "currency": budget.currency,
        "period": budget.period,
        "thresholds": list(budget.thresholds),
        "owner_emails": list(budget.owner_emails),
    }


def _check(*, amount: Decimal, thresholds: list[int], currency: str, organization) -> None:
    """The rules the API serializer also states, repeated here for every other caller."""
    if amount <= ZERO or quantize(amount) != amount:
        raise ApplicationError("amount must be greater than zero with at most 8 decimal places")
    if not thresholds or any(not 1 <= t <= MAX_THRESHOLD for t in thresholds):
        raise ApplicationError(f"thresholds must be percentages between 1 and {MAX_THRESHOLD}")
    if any(a >= b for a, b in pairwise(thresholds)):
        raise ApplicationError("thresholds must be in increasing order without repeats")
    if currency not in CURRENCIES or currency != organization.currency:
        raise ApplicationError(f"currency must be {organization.currency}")


def _evaluate_after_commit(budget_id: int) -> None:
    # A budget created or lowered below current spend alerts now, not at the next hourly run.
    from wallets.budgets.evaluation import budget_evaluate

    def run():
        budget = Budget.objects.select_related("organization", "department").filter(pk=budget_id)
        if budget := budget.first():
            budget_evaluate(budget=budget)

    transaction.on_commit(run, robust=True)


def budget_create(
    *,
    organization: Organization,
    team_id: str,
    amount: Decimal,
    currency: str | None = None,
    period: str = Budget.Period.MONTH,
    thresholds: list[int] | None = None,
    owner_emails: list[str] | None = None,
    actor: str = "",
    via: str = "api",
) -> Budget:
    """One budget per department and period (409 Conflict for a second one). Owner emails
    default to the department's; thresholds to 50/80/100 %."""
    department = selectors.department_get(organization=organization, team_id=team_id)
    currency = currency or organization.currency
    thresholds = list(DEFAULT_THRESHOLDS if thresholds is None else thresholds)
    _check(amount=amount, thresholds=thresholds, currency=currency, organization=organization)
    if owner_emails is None:
        owner_emails = list(department.owner_emails)
    try:
        with transaction.atomic():
            budget = Budget.objects.create(
                organization=organization,
                department=department,
                amount=amount,
                currency=currency,
                period=period,
                thresholds=thresholds,
                owner_emails=owner_emails,
            )
            audit_record(
                organization=organization,
                actor=actor,
                via=via,
                action="budget.create",
                obj=budget,
                after=_snapshot(budget),
            )
            _evaluate_after_commit(budget.pk)
    except IntegrityError as exc:
        raise Conflict(f"{team_id} already has a {period} budget") from exc
    return budget


def budget_update(*, budget: Budget, actor: str = "", via: str = "api", **changes) -> Budget:
    """Change amount, thresholds or owner emails. Lowering the amount (or thresholds) below the
    current spend alerts once, in one email, for every threshold now exceeded."""
    unknown = set(changes) - set(EDITABLE)
    if unknown:
        raise ApplicationError(f"cannot change {', '.join(sorted(unknown))}")
    with transaction.atomic():
        budget = (
            Budget.objects.select_for_update(of=("self",))
            .select_related("organization", "department")
            .get(pk=budget.pk)
        )
        before = _snapshot(budget)
        if all(getattr(budget, field) == value for field, value in changes.items()):
            return budget  # nothing changes (20 == 20.00000000): no write, no audit row
        for field, value in changes.items():
            setattr(budget, field, list(value) if field != "amount" else value)
        _check(
            amount=budget.amount,
            thresholds=budget.thresholds,
            currency=budget.currency,
            organization=budget.organization,
        )
        budget.save()
        audit_record(
            organization=budget.organization,
            actor=actor,
            via=via,
            action="budget.update",
            obj=budget,
            before=before,
            after=_snapshot(budget),
        )
        _evaluate_after_commit(budget.pk)
    return budget


def budget_delete(*, budget: Budget, actor: str = "", via: str = "api") -> None:
    """Delete a budget and its alert history."""
    with transaction.atomic():
        audit_record(
            organization=budget.organization,
            actor=actor,
            via=via,
            action="budget.delete",
            obj=budget,
            before=_snapshot(budget),
        )
        budget.delete()
