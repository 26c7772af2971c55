"""The config file's `cost_tickets` keys (wallets/tickets/policy.py): the organization's at the top
level, a consumer group's own under `consumer_groups[].cost_tickets`.

    cost_tickets: {mode: reject}                 # default: 402 at once, with the ticket
    consumer_groups:
      - name: batch
        cost_tickets: {mode: wait, wait_seconds: 120}

A group without the key (in a file with `consumer_groups`) inherits the organization's (its own
row is removed). Registered from WalletsConfig.ready().
"""

from chargeback.config import register_group_key, register_section
from chargeback.config.schema import Field, Located, choice, integer, mapping
from chargeback.errors import ApplicationError, ConfigError
from wallets.models_tickets import CostTicketPolicy
from wallets.tickets.policy import MAX_WAIT_SECONDS, Mode, ticket_policy_delete, ticket_policy_set

reader = mapping(
    {
        "mode": Field(choice(*Mode.values), default=Mode.REJECT),
        "wait_seconds": Field(integer(minimum=1, maximum=MAX_WAIT_SECONDS)),
    }
)


def _apply(ctx, located: Located, group=None) -> bool:
    mode, wait = located["mode"], located["wait_seconds"]
    if mode == Mode.WAIT and wait is None:
        path, line = located.where("mode")
        raise ConfigError("mode wait needs wait_seconds", path=path, line=line)
    try:
        _, changed = ticket_policy_set(
            organization=ctx.organization,
            consumer_group=group,
            mode=mode,
            wait_seconds=wait or 0,
            actor=ctx.actor,
            via=ctx.via,
        )
    except ApplicationError as exc:
        path, line = located.where(exc.field) if exc.field else (located.path, None)
        raise ConfigError(exc.message, path=path, line=line) from None
    return changed


def apply_organization(ctx, located: Located) -> None:
    if _apply(ctx, located):
        ctx.report.add("changed", "cost_tickets", ctx.organization.slug, ["cost_tickets"])
    else:
        ctx.report.same("cost_tickets", ctx.organization.slug)


def apply_group(ctx, group, located: Located | None) -> list[str]:
    if located is not None:
        return ["cost_tickets"] if _apply(ctx, located, group) else []
    own = CostTicketPolicy.objects.filter(consumer_group=group).first()
    if own is None:
        return []
    ticket_policy_delete(policy=own, actor=ctx.actor, via=ctx.via)
    return ["cost_tickets"]


register_section("cost_tickets", parse=reader, apply=apply_organization, order=35)
register_group_key("cost_tickets", parse=reader, apply=apply_group)
