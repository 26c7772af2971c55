"""Staff roles as Django groups, so they can be inspected and tuned in the admin itself.

A Membership's role names one group ("kt:finance", ...); `roles_sync` (re)creates the groups with
the permissions below and runs after every `migrate` and from `manage.py sync_roles`.
`membership_sync` puts the member's user in exactly that group and makes it staff. The
organization (and, for budget owners, department) restriction is not a permission: it is applied
to every query by `chargeback.admin_base.OrgScopedAdmin`.
"""

from django.contrib.auth.models import Group, Permission
from django.db import transaction

from chargeback.models import Membership

GROUP_PREFIX = "kt:"
APPS = ("chargeback", "wallets", "gateway", "alert_channels", "budgets", "reports", "sso")

# Models nobody edits through the admin: append-only logs and rows the gateway/services write.
READ_ONLY = {
    "chargeback.auditlog",
    "gateway.usageevent",
    "wallets.ledgerentry",
    "wallets.hold",
    "wallets.costticket",  # decided by admin actions through its service
    "budgets.budgetalert",
    "budgets.walletalert",
    "alert_channels.channeldelivery",
    "sso.ssoidentity",
}

ROLE_GRANTS = {
    # Everything of the organization, including who else is staff.
    Membership.Role.OWNER: {"*": {"view", "add", "change", "delete"}},
    # Everything but memberships, the organization itself and single sign-on (whose mapping
    # decides who becomes staff with which role: an owner's decision, like memberships).
    Membership.Role.ADMIN: {
        "*": {"view", "add", "change", "delete"},
        "chargeback.membership": {"view"},
        "chargeback.organization": {"view"},
        "sso.ssoconnection": {"view"},
    },
    # Reads everything; funds wallets, sets budgets, keeps prices and invoices, runs exports.
    Membership.Role.FINANCE: {
        "*": {"view"},
        "wallets.wallet": {"view", "change"},
        "budgets.budget": {"view", "add", "change"},
        "gateway.price": {"view", "add", "change"},
        "gateway.exchangerate": {"view", "add"},  # never changed: a later rate replaces it
        "reports.providerinvoice": {"view", "add", "change", "delete"},
        "reports.exportjob": {"view", "add"},
        "wallets.costticketpolicy": {"view", "add", "change"},
    },
    # Their departments' spend, wallets and budgets, read-only.
    Membership.Role.BUDGET_OWNER: {
        "chargeback.department": {"view"},
        "chargeback.consumergroup": {"view"},
        "wallets.wallet": {"view"},
        "wallets.ledgerentry": {"view"},
        "wallets.costticket": {"view"},
        "budgets.budget": {"view"},
        "budgets.budgetalert": {"view"},
        "gateway.usageevent": {"view"},
    },
    Membership.Role.VIEWER: {"*": {"view"}},
}


def group_name(role: str) -> str:
    return f"{GROUP_PREFIX}{role}"


def _codenames_for(role: str, permissions) -> list[Permission]:
    grants = ROLE_GRANTS[role]
    chosen = []
    for perm in permissions:
        label = f"{perm.content_type.app_label}.{perm.content_type.model}"
        action = perm.codename.split("_", 1)[0]
        allowed = grants.get(label, grants.get("*", set()))
        if label in READ_ONLY and action != "view":
            continue
        if action in allowed:
            chosen.append(perm)
    return chosen


def roles_sync() -> dict[str, int]:
    """Create or refresh one group per role with exactly its permissions. Idempotent.

    Returns {group name: number of permissions}.
    """
    permissions = list(
        Permission.objects.filter(content_type__app_label__in=APPS).select_related("content_type")
    )
    summary = {}
    with transaction.atomic():
        for role in Membership.Role.values:
            group, _ = Group.objects.get_or_create(name=group_name(role))
            chosen = _codenames_for(role, permissions)
            group.permissions.set(chosen)
            summary[group.name] = len(chosen)
    return summary


def membership_sync(membership: Membership) -> None:
    """Give the member's user the group of its role (and only that role group) and staff access."""
    user = membership.user
    role_groups = Group.objects.filter(name__startswith=GROUP_PREFIX)
    target = Group.objects.filter(name=group_name(membership.role)).first()
    if target is None:  # groups not synced yet (fresh database): create them now
        roles_sync()
        target = Group.objects.get(name=group_name(membership.role))
    user.groups.remove(*role_groups.exclude(pk=target.pk))
    user.groups.add(target)
    if not user.is_staff:
        user.is_staff = True
        user.save(update_fields=["is_staff"])
