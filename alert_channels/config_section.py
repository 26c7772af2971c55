"""The config file's optional `alert_channels:` section: Slack and webhook channels by name.

    alert_channels:
      - name: finance-slack
        kind: slack                      # or webhook (signed; the default)
        url: https://hooks.slack.com/services/T000/B000/XXXX
        team_id: team_support            # optional: only this department's events
        budget_period: month             # optional, with team_id: only that budget's events
        events: [budget.threshold_crossed, wallet.depleted]   # optional: all when left out
        active: true                     # optional, default true

Listed channels are created or brought to match the file through the channel services (rules,
audit rows, `via` as the apply's); channels not listed are left alone (deleted through the API
or the admin). A webhook created here gets a signing secret that is not printed: take one with
`POST /v1/webhooks/{id}/rotate-secret` (shown once). The kind of a channel cannot change.
"""

from dataclasses import dataclass

from yaml.nodes import Node

from alert_channels.models import EVENT_TYPES, AlertChannel
from alert_channels.services import channels as services
from chargeback.config import register_section
from chargeback.config.report import ApplyContext
from chargeback.config.schema import (
    Field,
    Located,
    boolean,
    choice,
    fail,
    list_of,
    mapping,
    slug,
    string,
)
from chargeback.errors import ApplicationError, ConfigError
from chargeback.models import Department

ORDER = 45  # after consumer_groups (20), which create departments; before budgets (50)
KINDS = AlertChannel.Kind.values


def channel_url(node: Node, path: str) -> str:
    """An http(s) URL, not echoed in the error (a Slack URL is a credential)."""
    value = string(max_length=2000)(node, path)
    if not value.startswith(("https://", "http://")):
        fail(node, path, "expected an http(s) URL")
    return value


channel_reader = mapping(
    {
        "name": Field(slug, required=True),
        "kind": Field(choice(*KINDS), default=AlertChannel.Kind.WEBHOOK),
        "url": Field(channel_url, required=True),
        "team_id": Field(slug),
        "budget_period": Field(choice(*AlertChannel.Period.values)),
        "events": Field(list_of(choice(*EVENT_TYPES), unique=True), default=[]),
        "active": Field(boolean, default=True),
    }
)


@dataclass
class ChannelSpec:
    name: str
    kind: str
    url: str
    team_id: str | None
    budget_period: str
    events: list[str]
    active: bool
    where: Located


def parse_alert_channels(node: Node, path: str) -> list[ChannelSpec]:
    """Read the section; no database access (teams are looked up in `apply_alert_channels`)."""
    specs, seen = [], {}
    for item in list_of(channel_reader)(node, path):
        key_path, line = item.where("name")
        if item["name"] in seen:
            raise ConfigError(
                f"channel {item['name']} is already defined on line {seen[item['name']]}",
                path=key_path,
                line=line,
            )
        seen[item["name"]] = line
        if item["budget_period"] and not item["team_id"]:
            period_path, period_line = item.where("budget_period")
            raise ConfigError(
                "a budget's channel needs the budget's department (team_id)",
                path=period_path,
                line=period_line,
            )
        specs.append(
            ChannelSpec(
                name=item["name"],
                kind=item["kind"],
                url=item["url"],
                team_id=item["team_id"],
                budget_period=item["budget_period"] or "",
                events=item["events"],
                active=item["active"],
                where=item,
            )
        )
    return specs


def _error(spec: ChannelSpec, key: str, message: str) -> ConfigError:
    path, line = spec.where.where(key)
    return ConfigError(message, path=path, line=line)


# The service's field names, as keys of the file.
FILE_KEYS = {"is_active": "active", "department": "team_id"}


def _refusal(spec: ChannelSpec, exc: ApplicationError) -> ConfigError:
    field = exc.field or "name"
    errors = getattr(exc, "errors", None) or {field: [exc.message]}
    field, messages = next(iter(errors.items()))
    return _error(spec, FILE_KEYS.get(field, field), messages[0])


def apply_alert_channels(ctx: ApplyContext, specs: list[ChannelSpec]) -> None:
    organization = ctx.organization
    for spec in specs:
        department = None
        if spec.team_id:
            department = Department.objects.filter(
                organization=organization, team_id=spec.team_id
            ).first()
            if department is None:
                raise _error(spec, "team_id", f"no department {spec.team_id} in this organization")
        values = {
            "url": spec.url,
            "department": department,
            "budget_period": spec.budget_period,
            "events": spec.events,
            "is_active": spec.active,
        }
        channel = (
            AlertChannel.objects.select_for_update()
            .filter(organization=organization, name=spec.name)
            .first()
        )
        try:
            if channel is None:
                services.channel_create(
                    organization=organization,
                    name=spec.name,
                    kind=spec.kind,
                    actor=ctx.actor,
                    via=ctx.via,
                    **values,
                )
                ctx.report.add("created", "alert_channel", spec.name)
                continue
            if channel.kind != spec.kind:
                raise _error(
                    spec,
                    "kind",
                    f"the channel is a {channel.kind} and its kind cannot change; "
                    "delete it (API or admin) and apply again",
                )
            changes = {k: v for k, v in values.items() if getattr(channel, k) != v}
            if not changes:
                ctx.report.same("alert_channel", spec.name)
                continue
            services.channel_update(channel=channel, actor=ctx.actor, via=ctx.via, **changes)
            fields = [FILE_KEYS.get(k, k) for k in changes]
            ctx.report.add("changed", "alert_channel", spec.name, fields)
        except ConfigError:
            raise
        except ApplicationError as exc:
            raise _refusal(spec, exc) from None


register_section(
    "alert_channels", parse=parse_alert_channels, apply=apply_alert_channels, order=ORDER
)
