"""Parse, validate and apply a config file to one organization.

Everything that can be checked without the database is checked first (`config_parse`); the
apply then runs in one transaction with the organization row locked, so two applies to the same
organization queue up, and any error found while applying (a key another organization uses)
rolls the whole file back: a bad file changes nothing.
"""

from dataclasses import dataclass

from django.db import transaction

from chargeback.config import sections as _builtin_sections  # noqa: F401  (registers them)
from chargeback.config.registry import sections
from chargeback.config.report import ApplyContext, ConfigReport
from chargeback.config.schema import Field, compose, mapping, version
from chargeback.models import Organization


@dataclass
class ParsedConfig:
    version: str
    sections: dict  # key -> parsed value, only for the sections present in the file


def config_parse(*, text: str) -> ParsedConfig:
    """Read and check the whole file; raise ConfigError (key path, line) at the first problem."""
    if not isinstance(text, str):
        raise TypeError("config text must be a string")
    root = compose(text)
    registered = sections()
    fields = {"version": Field(version, required=True)}
    fields.update({s.key: Field(s.parse) for s in registered})
    located = mapping(fields)(root, "")
    present = {s.key: located[s.key] for s in registered if s.key in located.key_nodes}
    return ParsedConfig(version=located["version"], sections=present)


class _DryRun(Exception):
    """Raised inside the apply transaction to roll a dry run back."""


def config_apply(
    *,
    organization: Organization,
    text: str,
    actor: str,
    via: str,
    dry_run: bool = False,
) -> ConfigReport:
    """Make the organization match the file; idempotent (a second apply reports `no changes`
    and writes nothing, audit rows included). A dry run does the same work and rolls it back, so
    its report is exactly what a real apply would do."""
    parsed = config_parse(text=text)
    report = ConfigReport(dry_run=dry_run)
    try:
        with transaction.atomic():
            locked = Organization.objects.select_for_update().get(pk=organization.pk)
            ctx = ApplyContext(organization=locked, actor=actor, via=via, report=report)
            for section in sections():
                if section.key in parsed.sections:
                    section.apply(ctx, parsed.sections[section.key])
            if dry_run:
                raise _DryRun
    except _DryRun:
        pass
    if not dry_run:
        organization.refresh_from_db()
    return report


def config_validate(*, organization: Organization, text: str, actor: str, via: str) -> ConfigReport:
    """Check the file and say what applying it would change; writes nothing."""
    return config_apply(organization=organization, text=text, actor=actor, via=via, dry_run=True)
