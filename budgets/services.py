"""Budget writes: create, update, delete. Each is one transaction that also writes the audit row;
the re-evaluation that may follow (a budget lowered below current spend) runs after commit."""

from decimal import Decimal

from django.db import IntegrityError, transaction

from budgets import selectors
from budgets.models import Budget
from chargeback.audit import audit_record, audited_delete
from chargeback.errors import ApplicationError, Conflict, collect_errors
from chargeback.models import Organization
from chargeback.money import amount_problem, quantize
from chargeback.validation import email_list_problems

DEFAULT_THRESHOLDS = [50, 80, 100]
MAX_THRESHOLD = 1000
MAX_THRESHOLDS = 20
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


def threshold_problem(thresholds) -> tuple[int | None, str] | None:
    """The first thing wrong with a list of alert thresholds, as (index or None, message);
    None when it is fine. The one statement of the rule (services, API, admin, config file)."""
    if not isinstance(thresholds, list) or not thresholds:
        return None, "give at least one threshold"
    if len(thresholds) > MAX_THRESHOLDS:
        return None, f"at most {MAX_THRESHOLDS} thresholds"
    for index, value in enumerate(thresholds):
        if isinstance(value, bool) or not isinstance(value, int):
            return index, "thresholds are whole percentages"
        if not 1 <= value <= MAX_THRESHOLD:
            return index, f"thresholds must be percentages between 1 and {MAX_THRESHOLD}"
        if index and thresholds[index - 1] >= value:
            return index, "thresholds must be in increasing order without repeats"
    return None


def budget_check(
    *, organization: Organization, amount, currency: str, thresholds, owner_emails
) -> None:
    """Every rule a budget obeys, whoever writes it: ValidationFailed naming each field."""
    errors = collect_errors()
    problem = amount_problem(amount) if isinstance(amount, Decimal) else "must be a number"
    if problem:
        errors.add("amount", problem)
    if currency != organization.currency:
        errors.add("currency", f"must be {organization.currency}, the organization's currency")
    found = threshold_problem(thresholds)
    if found:
        errors.add("thresholds", found[1])
    for problem in email_list_problems(owner_emails):
        errors.add("owner_emails", problem)
    errors.raise_if_any()


def _evaluate_after_commit(budget_id: int) -> None:
    # A budget created or lowered below current spend alerts now, not at the next hourly run.
    from budgets.evaluation import budget_evaluate

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
    if owner_emails is None:
        owner_emails = list(department.owner_emails)
    budget_check(
        organization=organization,
        amount=amount,
        currency=currency,
        thresholds=thresholds,
        owner_emails=owner_emails,
    )
    try:
        with transaction.atomic():
            budget = Budget.objects.create(
                organization=organization,
                department=department,
                amount=quantize(amount),
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
        budget_check(
            organization=budget.organization,
            amount=budget.amount,
            currency=budget.currency,
            thresholds=budget.thresholds,
            owner_emails=budget.owner_emails,
        )
        budget.amount = quantize(budget.amount)
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
    audited_delete(budget, actor=actor, via=via, action="budget.delete", before=_snapshot(budget))
