"""The shape of a rate-limit set, stored on a consumer group (its own limits and those of each
of its end users) and on an organization (the defaults of every group). The gateway enforces
them (gateway/ratelimit.py); this module only says what a valid set is.

A set is a dict with any of `rpm` (requests per minute), `tpm` (tokens per minute), `tpd`
(tokens per day) and `parallel` (requests in flight at once), each a positive integer. An
organization's defaults may also hold `per_user`, a set for each end user of every group.
"""

from django.core.exceptions import ValidationError

# The stored name of each limit, with the longest value it may take.
LIMITS = {"rpm": 10_000_000, "tpm": 2_000_000_000, "tpd": 2_000_000_000, "parallel": 100_000}
PER_USER = "per_user"


def rate_limits_problem(value, *, nested: bool) -> str | None:
    """Why `value` is not a rate-limit set (None: it is). `nested` allows a `per_user` set."""
    if not isinstance(value, dict):
        return "a mapping of limits"
    for name, limit in value.items():
        if nested and name == PER_USER:
            problem = rate_limits_problem(limit, nested=False)
            if problem:
                return f"per_user: {problem}"
            continue
        if name not in LIMITS:
            allowed = ", ".join([*LIMITS, PER_USER] if nested else LIMITS)
            return f"unknown limit {name!r} (allowed: {allowed})"
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= LIMITS[name]:
            return f"{name} must be an integer from 1 to {LIMITS[name]}"
    return None


def validate_user_rate_limits(value):
    """`ConsumerGroup.user_rate_limits`: the limits of each end user of the group."""
    problem = rate_limits_problem(value, nested=False)
    if problem:
        raise ValidationError(problem)


def validate_rate_limit_defaults(value):
    """`Organization.rate_limit_defaults`: every group's limits where it sets none."""
    problem = rate_limits_problem(value, nested=True)
    if problem:
        raise ValidationError(problem)
