"""`manage.py demo_seed`: the demo organization's teams, wallets, budgets and simulated May 2026."""

import time

from django.core.management.base import BaseCommand

from demo.seed import ORG_SLUG, demo_seed


class Command(BaseCommand):
    help = "Seed the demo organization with departments, wallets, budgets and April-May 2026 usage."

    def add_arguments(self, parser):
        parser.add_argument("--org", default=ORG_SLUG, help="organization slug (default: acme)")

    def handle(self, *args, **options):
        started = time.monotonic()
        result = demo_seed(organization_slug=options["org"])
        org = result["organization"]
        if result["skipped"]:
            self.stdout.write(f"{org.slug}: May 2026 usage already present, nothing added")
            return
        self.stdout.write(
            f"{org.slug}: added {result['created']} usage events for April and May 2026 "
            f"in {time.monotonic() - started:.1f}s"
        )
