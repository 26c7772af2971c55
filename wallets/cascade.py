"""The cascade: which wallets may pay for a request, in the order they are tried.

A request's chain is its end user's wallet, then its department's (team) wallet, then the
organization's: the hold lands on the first that can cover the request's worst case
(wallets/services/holds.py `hold_reserve`). A strict department (`Department.fall_through`
false) stops the chain at its team wallet, a hard cap. Wallets that do not exist are left out.

Every hold locks at most the wallets of one chain, always in this order (user, team,
organization), so concurrent holds on overlapping chains cannot deadlock.
"""

from django.db.models import Exists, Q

from chargeback.models import Department, Organization
from wallets.models import Wallet
from wallets.selectors import wallet_annotate_totals

SCOPE_ORDER = (Wallet.Scope.USER, Wallet.Scope.TEAM, Wallet.Scope.ORGANIZATION)


def _chain_filter(department_id: int | None, user_ref: str, *, strict_stops: bool = True) -> Q:
    organization = Q(scope=Wallet.Scope.ORGANIZATION)
    if department_id is not None and strict_stops:
        strict = Department.objects.filter(pk=department_id, fall_through=False)
        organization &= ~Exists(strict)
    q = organization
    if department_id is not None:
        q |= Q(scope=Wallet.Scope.TEAM, department_id=department_id)
    if user_ref:
        q |= Q(scope=Wallet.Scope.USER, user_ref=user_ref)
    return q


def _ordered(wallets) -> list[Wallet]:
    return sorted(wallets, key=lambda w: SCOPE_ORDER.index(w.scope))


def wallet_chain(
    *, organization: Organization | int, department: Department | int | None, user_ref: str = ""
) -> tuple[Wallet, ...]:
    """The wallets that may pay for a request of this department's (and end user's), in the
    order they are tried; empty when none exists. One query."""
    department_id = department.pk if isinstance(department, Department) else department
    rows = Wallet.objects.filter(_chain_filter(department_id, user_ref), organization=organization)
    return tuple(_ordered(rows))


def cascade_summary(
    *, organization: Organization, department: Department | None, user_ref: str = ""
) -> dict:
    """Every scope of the chain with its balance, held, available and status, and which one is
    effective now (the first with funds available). Scopes the chain skips are listed too, with
    why: `missing` (no such wallet) or `strict` (the department does not fall through)."""
    department_id = department.pk if department is not None else None
    wallets = {
        w.scope: w
        for w in wallet_annotate_totals(
            queryset=Wallet.objects.filter(
                _chain_filter(department_id, user_ref, strict_stops=False),
                organization=organization,
            )
        )
    }
    strict = department is not None and not department.fall_through
    scopes, effective = [], None
    for scope in SCOPE_ORDER:
        if scope == Wallet.Scope.USER and not user_ref:
            continue
        if scope == Wallet.Scope.TEAM and department is None:
            continue
        wallet = wallets.get(scope)
        entry = {"scope": scope, "exists": wallet is not None, "in_chain": wallet is not None}
        if wallet is None:
            entry["skipped"] = "missing"
        else:
            entry.update(
                wallet=wallet,
                name=wallet.name,
                balance=wallet.balance,
                held=wallet.held,
                available=wallet.available_amount,
                status=wallet.status,
            )
            if scope == Wallet.Scope.ORGANIZATION and strict:
                entry["in_chain"], entry["skipped"] = False, "strict"
            elif effective is None and wallet.available_amount > 0:
                effective = scope
        scopes.append(entry)
    for entry in scopes:
        entry["effective"] = entry["scope"] == effective
    return {
        "organization": organization,
        "department": department,
        "user_ref": user_ref,
        "fall_through": not strict,
        "currency": organization.currency,
        "effective_scope": effective,
        "scopes": scopes,
    }
