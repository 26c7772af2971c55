"""Alert channel writes: create, update, delete, rotate the signing secret. Each validates with
the one rule set (`channel_check`), writes and audits in one transaction; the API, the admin and
the config file all come here. A webhook's secret is returned once, by create and rotate, and
stored only encrypted (chargeback/secretbox.py)."""

from django.db import IntegrityError, transaction

from alert_channels.models import EVENT_TYPES, AlertChannel
from alert_channels.payloads import secret_new
from chargeback import secretbox
from chargeback.audit import audit_record, audited_delete
from chargeback.errors import ApplicationError, Conflict, NotFound, collect_errors
from chargeback.models import Department, Organization
from chargeback.upstream import policy
from chargeback.validation import SLUG_RE

EDITABLE = ("url", "department", "budget_period", "events", "is_active")
MAX_NAME = 100


def _secret_name(channel: AlertChannel) -> str:
    # Sealed into the ciphertext: a secret copied onto another channel's row does not open.
    return f"alert-channel:{channel.name}"


def _snapshot(channel: AlertChannel) -> dict:
    return {
        "name": channel.name,
        "kind": channel.kind,
        "url": url_shown(channel),
        "team_id": channel.department.team_id if channel.department_id else None,
        "budget_period": channel.budget_period,
        "events": list(channel.events),
        "is_active": channel.is_active,
    }


def url_shown(channel: AlertChannel) -> str:
    """The URL as shown back (API, audit): a Slack webhook URL is itself the credential, so only
    its scheme and host are shown."""
    if channel.kind != AlertChannel.Kind.SLACK:
        return channel.url
    scheme, _, rest = channel.url.partition("://")
    return f"{scheme}://{rest.split('/', 1)[0]}/…"


def url_problem(url: str) -> str | None:
    """The gateway's rules for provider base URLs (chargeback/upstream.py): https to public
    addresses unless the operator allows a host or network. Checked again on each connection."""
    if not isinstance(url, str) or not url:
        return "give the URL the events are posted to"
    if len(url) > 2000:
        return "at most 2000 characters"
    problem = policy().url_problem(url)
    # Not the URL itself in the message: a Slack URL is a credential.
    return f"the URL {problem}" if problem else None


def channel_check(
    *, organization: Organization, name: str, kind: str, url: str, department, budget_period, events
) -> None:
    """Every rule a channel obeys, whoever writes it: ValidationFailed naming each field."""
    errors = collect_errors()
    if not isinstance(name, str) or not SLUG_RE.match(name) or len(name) > MAX_NAME:
        errors.add("name", "letters, digits, - and _ only (at most 100)")
    if kind not in AlertChannel.Kind.values:
        errors.add("kind", f"must be one of {', '.join(AlertChannel.Kind.values)}")
    problem = url_problem(url)
    if problem:
        errors.add("url", problem)
    if department is not None and department.organization_id != organization.pk:
        errors.add("team_id", "no such department in this organization")
    if budget_period and budget_period not in AlertChannel.Period.values:
        errors.add("budget_period", f"must be one of {', '.join(AlertChannel.Period.values)}")
    elif budget_period and department is None:
        errors.add("budget_period", "a budget's channel needs the budget's department (team_id)")
    if not isinstance(events, list) or any(e not in EVENT_TYPES for e in events):
        errors.add("events", f"event types are {', '.join(EVENT_TYPES)}")
    elif len(set(events)) != len(events):
        errors.add("events", "an event type is listed twice")
    if kind == AlertChannel.Kind.WEBHOOK and not secretbox.configured():
        errors.add("kind", secretbox.MISSING_KEY)
    errors.raise_if_any()


def department_of(*, organization: Organization, team_id: str | None) -> Department | None:
    if not team_id:
        return None
    department = Department.objects.filter(organization=organization, team_id=team_id).first()
    if department is None:
        raise NotFound(f"no department {team_id}", field="team_id")
    return department


def channel_create(
    *,
    organization: Organization,
    name: str,
    kind: str,
    url: str,
    department: Department | None = None,
    budget_period: str = "",
    events: list[str] | None = None,
    is_active: bool = True,
    actor: str = "",
    via: str = "api",
) -> tuple[AlertChannel, str]:
    """A new channel and, for a webhook, its signing secret (returned this once, never again)."""
    events = list(events or [])
    channel_check(
        organization=organization,
        name=name,
        kind=kind,
        url=url,
        department=department,
        budget_period=budget_period or "",
        events=events,
    )
    channel = AlertChannel(
        organization=organization,
        name=name,
        kind=kind,
        url=url,
        department=department,
        budget_period=budget_period or "",
        events=events,
        is_active=is_active,
    )
    secret = ""
    if kind == AlertChannel.Kind.WEBHOOK:
        secret = secret_new()
        channel.secret_ciphertext = secretbox.seal(
            organization_id=organization.pk, name=_secret_name(channel), value=secret
        )
    try:
        with transaction.atomic():
            channel.save()
            audit_record(
                organization=organization,
                actor=actor,
                via=via,
                action="alert_channel.create",
                obj=channel,
                after=_snapshot(channel),
            )
    except IntegrityError as exc:
        raise Conflict(f"a channel named {name} already exists", field="name") from exc
    return channel, secret


def channel_update(
    *, channel: AlertChannel, actor: str = "", via: str = "api", **changes
) -> AlertChannel:
    """Change where a channel posts, its scope, events or whether it is active (name and kind
    are fixed: the name is sealed into the secret)."""
    unknown = set(changes) - set(EDITABLE)
    if unknown:
        raise ApplicationError(f"cannot change {', '.join(sorted(unknown))}")
    with transaction.atomic():
        channel = (
            AlertChannel.objects.select_for_update(of=("self",))
            .select_related("organization", "department")
            .get(pk=channel.pk)
        )
        before = _snapshot(channel)
        before_values = {field: getattr(channel, field) for field in EDITABLE}
        for field, value in changes.items():
            setattr(channel, field, list(value) if field == "events" else value)
        channel.budget_period = channel.budget_period or ""
        channel_check(
            organization=channel.organization,
            name=channel.name,
            kind=channel.kind,
            url=channel.url,
            department=channel.department,
            budget_period=channel.budget_period,
            events=channel.events,
        )
        if {field: getattr(channel, field) for field in EDITABLE} == before_values:
            return channel  # nothing changes: no write, no audit row
        channel.save()
        audit_record(
            organization=channel.organization,
            actor=actor,
            via=via,
            action="alert_channel.update",
            obj=channel,
            before=before,
            after=_snapshot(channel),
        )
    return channel


def channel_delete(*, channel: AlertChannel, actor: str = "", via: str = "api") -> None:
    """Delete a channel and its delivery records."""
    audited_delete(
        channel, actor=actor, via=via, action="alert_channel.delete", before=_snapshot(channel)
    )


def channel_secret_rotate(*, channel: AlertChannel, actor: str = "", via: str = "api") -> str:
    """A new signing secret for a webhook (returned this once); the old one stops at once."""
    if channel.kind != AlertChannel.Kind.WEBHOOK:
        raise ApplicationError("only webhooks are signed; a Slack URL is its own key", field="kind")
    secret = secret_new()
    with transaction.atomic():
        channel.secret_ciphertext = secretbox.seal(
            organization_id=channel.organization_id, name=_secret_name(channel), value=secret
        )
        channel.save(update_fields=["secret_ciphertext", "updated_at"])
        audit_record(
            organization=channel.organization,
            actor=actor,
            via=via,
            action="alert_channel.rotate_secret",
            obj=channel,
        )
    return secret


def channel_secret(channel: AlertChannel) -> str:
    """The webhook's signing secret in clear, for signing (never shown, never logged)."""
    return secretbox.unseal(
        token=channel.secret_ciphertext,
        organization_id=channel.organization_id,
        name=_secret_name(channel),
    )
