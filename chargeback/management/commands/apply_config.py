"""`python manage.py apply_config FILE [--org SLUG] [--dry-run]`: make an organization match a
config file and print what changed (`no changes` the second time)."""

import getpass
import sys
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from chargeback.config import config_apply
from chargeback.errors import ConfigError
from chargeback.models import Organization
from chargeback.services import organization_create


def organization_for(slug: str | None, *, create_name: str | None = None) -> Organization:
    """The organization by slug; without a slug, the only one there is."""
    if slug:
        organization = Organization.objects.filter(slug=slug).first()
        if organization is None and create_name:
            return organization_create(name=create_name, slug=slug, actor=_actor(), via="config")
        if organization is None:
            raise CommandError(
                f"no organization with slug {slug!r} (add --create-org 'Name' to create it)"
            )
        return organization
    organizations = list(Organization.objects.all()[:2])
    if len(organizations) != 1:
        raise CommandError("say which organization with --org SLUG")
    return organizations[0]


def _actor() -> str:
    try:
        return f"os:{getpass.getuser()}"
    except (KeyError, OSError):
        return "os:unknown"


class Command(BaseCommand):
    help = "Apply a config file (version '1') to one organization; idempotent."

    def add_arguments(self, parser):
        parser.add_argument("file", help="path to the YAML file, or - for standard input")
        parser.add_argument("--org", help="organization slug (optional when there is only one)")
        parser.add_argument(
            "--create-org", metavar="NAME", help="create the --org organization with this name"
        )
        parser.add_argument("--dry-run", action="store_true", help="report only, write nothing")

    def handle(self, *args, **options):
        path = options["file"]
        try:
            text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise CommandError(f"cannot read {path}: {exc}") from None
        if options["create_org"] and not options["org"]:
            raise CommandError("--create-org needs --org SLUG")
        organization = organization_for(options["org"], create_name=options["create_org"])
        try:
            report = config_apply(
                organization=organization,
                text=text,
                actor=_actor(),
                via="config",
                dry_run=options["dry_run"],
            )
        except ConfigError as exc:
            raise CommandError(f"{path}: {exc.message}") from None
        self.stdout.write(report.text())
