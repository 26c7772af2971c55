"""Rate limits in the config file: a group's `rate_limits` and the organization's
`rate_limit_defaults` (stored as chargeback/rate_limits.py describes, enforced by
gateway/ratelimit.py).

    rate_limits:                  # consumer_groups[]; rate_limit_defaults takes the same keys
      requests_per_minute: 600    # or rpm (the older name)
      tokens_per_minute: 200000   # or tpm
      tokens_per_day: 5000000
      max_parallel_requests: 20
      per_user:                   # each end user of the group, the same four keys
        requests_per_minute: 30

`rate_limit_defaults` applies to every group where the group sets no value of its own (limit
by limit, and `per_user` likewise). A key left out of the section means no default; a file
without the section leaves the organization's defaults as they are.
"""

from chargeback import services
from chargeback.config.report import ApplyContext
from chargeback.config.schema import Field, Located, at_most_one, integer, mapping
from chargeback.rate_limits import LIMITS, PER_USER

# The file's names of each stored limit; the first is the documented one.
NAMES = {
    "rpm": ("requests_per_minute", "rpm"),
    "tpm": ("tokens_per_minute", "tpm"),
    "tpd": ("tokens_per_day",),
    "parallel": ("max_parallel_requests",),
}
FILE_NAME = {stored: names[0] for stored, names in NAMES.items()}


def _one_name_each(block: Located) -> None:
    for names in NAMES.values():
        at_most_one(
            block, names, lambda first, second: f"{second} and {first} are the same limit; give one"
        )


def _fields() -> dict:
    return {
        name: Field(integer(minimum=1, maximum=LIMITS[stored]))
        for stored, names in NAMES.items()
        for name in names
    }


_user_block = mapping(_fields(), check=_one_name_each)
_block = mapping({**_fields(), PER_USER: Field(_user_block)}, check=_one_name_each)


def _stored(block: Located) -> dict:
    limits = {}
    for stored, names in NAMES.items():
        for name in names:
            if block[name] is not None:
                limits[stored] = block[name]
    return limits


def rate_limits_reader(node, path: str) -> dict:
    """A limits block as stored: {"rpm", "tpm", "tpd", "parallel", "per_user": {...}}, the keys
    given only."""
    block = _block(node, path)
    limits = _stored(block)
    if block[PER_USER] is not None:
        limits[PER_USER] = _stored(block[PER_USER])
    return limits


# --- rate_limit_defaults -----------------------------------------------------------------------


def parse_rate_limit_defaults(node, path: str) -> dict:
    return rate_limits_reader(node, path)


def apply_rate_limit_defaults(ctx: ApplyContext, value: dict) -> None:
    before = dict(ctx.organization.rate_limit_defaults or {})
    if services.organization_rate_limit_defaults_set(
        organization=ctx.organization, value=value, actor=ctx.actor, via=ctx.via
    ):
        changed = limit_names_changed(before, value, "")
        ctx.report.add("changed", "rate_limit_defaults", ctx.organization.slug, changed)
    else:
        ctx.report.same("rate_limit_defaults", ctx.organization.slug)


def limit_names_changed(before: dict, after: dict, prefix: str) -> list[str]:
    """The file's names of the limits that differ, e.g. `rate_limits.tokens_per_day`,
    `rate_limits.per_user.requests_per_minute`."""
    before, after, lead = before or {}, after or {}, f"{prefix}." if prefix else ""
    changed = [
        f"{lead}{name}"
        for stored, name in FILE_NAME.items()
        if before.get(stored) != after.get(stored)
    ]
    if PER_USER in before or PER_USER in after:
        changed += limit_names_changed(
            before.get(PER_USER), after.get(PER_USER), f"{lead}{PER_USER}"
        )
    return changed
