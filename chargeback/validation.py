"""Small rules that several services state about what people type (one definition each)."""

import re

from django.core.exceptions import ValidationError
from django.core.validators import validate_email

MAX_EMAILS = 50
SLUG_RE = re.compile(r"^[A-Za-z0-9_-]+$")  # team ids, group names, organization slugs


def email_problem(value) -> str | None:
    """Why `value` is not an email address (None: it is one)."""
    if not isinstance(value, str):
        return "an email address is text"
    try:
        validate_email(value)
    except ValidationError:
        return f"{value!r} is not an email address"
    return None


def email_list_problems(values, *, maximum: int = MAX_EMAILS) -> list[str]:
    """Everything wrong with a list of email addresses ([] when it is fine)."""
    if not isinstance(values, list):
        return ["give a list of email addresses"]
    if len(values) > maximum:
        return [f"at most {maximum} addresses"]
    problems = [p for p in (email_problem(v) for v in values) if p]
    if len(set(values)) != len(values):
        problems.append("an address is listed twice")
    return problems
