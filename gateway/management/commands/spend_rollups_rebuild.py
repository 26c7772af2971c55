"""`python manage.py spend_rollups_rebuild [--organization SLUG]`: recompute the daily spend
rollups from the usage events (gateway/rollups.py)."""

import time

from django.core.management.base import BaseCommand, CommandError

from chargeback.models import Organization
from gateway.rollups import RebuildRefused, rollups_fold, rollups_rebuild


class Command(BaseCommand):
    help = (
        "Recompute the daily spend rollups from the usage events, for one organization or all. "
        "Exact while the gateway is serving; one organization at a time, each in one statement."
    )

    def add_arguments(self, parser):
        parser.add_argument("--organization", metavar="SLUG", help="only this organization")

    def handle(self, *args, organization, **options):
        organizations = Organization.objects.order_by("id")
        if organization:
            organizations = organizations.filter(slug=organization)
            if not organizations.exists():
                raise CommandError(f"no organization with slug {organization!r}")
        rollups_fold()
        for org in organizations:
            began = time.monotonic()
            try:
                rollups_rebuild(organization=org)
            except RebuildRefused as exc:
                raise CommandError(f"refused: {exc}") from exc
            self.stdout.write(f"{org.slug}: rebuilt in {time.monotonic() - began:.1f} s")
