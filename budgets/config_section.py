"""The config file's optional `budgets:` section: one entry per department and period.

    budgets:
      - team_id: team_support
        amount: 12000.00
        period: month            # or quarter; default month
        thresholds: [50, 80, 100]
        owner_emails: [lead@example.com]

Registered from `WalletsConfig.ready()`, so every process that has Django set up (server,
`manage.py`, tests) knows the key before any file is parsed; `chargeback.config` itself stays
free of imports from the apps that extend it.

The listed budgets are created or brought to match the file through the budget services
(validation and audit rows, `via` as the apply's). Budgets not listed are left alone: a budget
is deleted through the API or the admin, never by leaving it out of a file.
"""

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from yaml.nodes import Node, ScalarNode

from budgets import services
from budgets.models import Budget
from chargeback.config import register_section
from chargeback.config.report import ApplyContext
from chargeback.config.schema import (
    Field,
    Located,
    choice,
    fail,
    integer,
    list_of,
    mapping,
    slug,
    string,
)
from chargeback.errors import ApplicationError, ConfigError
from chargeback.models import Department
from chargeback.money import amount_problem
from chargeback.validation import MAX_EMAILS, email_problem

ORDER = 50  # after consumer_groups (20): the departments the groups create exist by then
PERIODS = [value for value, _ in Budget.Period.choices]


def amount(node: Node, path: str) -> Decimal:
    """An amount read from the YAML text itself (`12000.10` stays exact; going through float,
    as `schema.number` does for timeouts, would not), checked by the one amount rule."""
    if not isinstance(node, ScalarNode) or node.tag.rsplit(":", 1)[-1] not in {"int", "float"}:
        fail(node, path, "expected an amount such as 12000.00")
    try:
        value = Decimal(node.value.replace("_", ""))  # YAML 1.1 allows 12_000.00
    except InvalidOperation:
        value = None
    if value is None or not value.is_finite():
        fail(node, path, f"{node.value!r} is not an amount")
    problem = amount_problem(value)
    if problem:
        fail(node, path, problem)
    return value


def thresholds(node: Node, path: str) -> list[int]:
    values = list_of(integer())(node, path)
    found = services.threshold_problem(values)
    if found:
        index, message = found
        if index is None:
            fail(node, path, message)
        fail(node.value[index], f"{path}[{index}]", message)
    return values


def email(node: Node, path: str) -> str:
    value = string(max_length=254)(node, path)
    problem = email_problem(value)
    if problem:
        fail(node, path, problem)
    return value


def owner_emails(node: Node, path: str) -> list[str]:
    values = list_of(email, unique=True)(node, path)
    if len(values) > MAX_EMAILS:
        fail(node, path, f"at most {MAX_EMAILS} addresses")
    return values


budget_reader = mapping(
    {
        "team_id": Field(slug, required=True),
        "amount": Field(amount, required=True),
        "currency": Field(string(max_length=3)),
        "period": Field(choice(*PERIODS), default=Budget.Period.MONTH),
        "thresholds": Field(thresholds),
        "owner_emails": Field(owner_emails),
    }
)


@dataclass
class BudgetSpec:
    team_id: str
    amount: Decimal
    currency: str | None
    period: str
    thresholds: list[int]
    owner_emails: list[str] | None  # None: the department's at creation, left as is after
    where: Located

    @property
    def name(self) -> str:
        return f"{self.team_id}/{self.period}"


def parse_budgets(node: Node, path: str) -> list[BudgetSpec]:
    """Read the section; no database access (unknown teams are found in `apply_budgets`)."""
    specs, seen = [], {}
    for item in list_of(budget_reader)(node, path):
        spec = BudgetSpec(
            team_id=item["team_id"],
            amount=item["amount"],
            currency=item["currency"],
            period=item["period"],
            # Left out means the default, so removing the line from the file resets them.
            thresholds=item["thresholds"] or list(services.DEFAULT_THRESHOLDS),
            owner_emails=item["owner_emails"],
            where=item,
        )
        key_path, line = item.where("team_id")
        if spec.name in seen:
            raise ConfigError(
                f"budget {spec.name} is already defined on line {seen[spec.name]}",
                path=key_path,
                line=line,
            )
        seen[spec.name] = line
        specs.append(spec)
    return specs


def _error(spec: BudgetSpec, key: str, message: str) -> ConfigError:
    path, line = spec.where.where(key)
    return ConfigError(message, path=path, line=line)


def _differences(budget: Budget, spec: BudgetSpec) -> dict:
    """The fields the file changes. Compared here, as numbers and lists, because the service's
    own no-op check compares amount strings ('12000.00' vs the stored '12000.00000000')."""
    changes = {}
    if budget.amount != spec.amount:
        changes["amount"] = spec.amount
    if list(budget.thresholds) != spec.thresholds:
        changes["thresholds"] = spec.thresholds
    if spec.owner_emails is not None and list(budget.owner_emails) != spec.owner_emails:
        changes["owner_emails"] = spec.owner_emails
    return changes


def apply_budgets(ctx: ApplyContext, specs: list[BudgetSpec]) -> None:
    """Create or update each listed budget; budgets not listed are not touched."""
    organization = ctx.organization
    for spec in specs:
        department = Department.objects.filter(
            organization=organization, team_id=spec.team_id
        ).first()
        if department is None:
            raise _error(
                spec,
                "team_id",
                f"no department {spec.team_id} in this organization "
                "(a consumer group's wallet_team_id creates one)",
            )
        currency = spec.currency or organization.currency
        if currency != organization.currency:
            raise _error(spec, "currency", f"must be {organization.currency}")
        budget = (
            Budget.objects.select_for_update()
            .filter(organization=organization, department=department, period=spec.period)
            .first()
        )
        try:
            if budget is None:
                services.budget_create(
                    organization=organization,
                    team_id=spec.team_id,
                    amount=spec.amount,
                    currency=currency,
                    period=spec.period,
                    thresholds=spec.thresholds,
                    owner_emails=spec.owner_emails,
                    actor=ctx.actor,
                    via=ctx.via,
                )
                ctx.report.add("created", "budget", spec.name)
                continue
            if budget.currency != currency:
                raise _error(
                    spec,
                    "currency" if spec.currency else "team_id",
                    f"the budget is in {budget.currency} and its currency cannot change; "
                    "delete it (API or admin) and apply again",
                )
            changes = _differences(budget, spec)
            if not changes:
                ctx.report.same("budget", spec.name)
                continue
            services.budget_update(budget=budget, actor=ctx.actor, via=ctx.via, **changes)
            ctx.report.add("changed", "budget", spec.name, list(changes))
        except ConfigError:
            raise
        except ApplicationError as exc:  # the services' own rules, or a budget created meanwhile
            raise _error(spec, "team_id", exc.message) from None


register_section("budgets", parse=parse_budgets, apply=apply_budgets, order=ORDER)
