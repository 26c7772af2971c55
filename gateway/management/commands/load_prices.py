"""`python manage.py load_prices [FILE] [--organization SLUG]`: load a pricing catalog."""

from django.core.management.base import BaseCommand, CommandError

from chargeback.errors import ApplicationError
from chargeback.models import Organization
from gateway.catalog import DEFAULT_CATALOG, catalog_load


class Command(BaseCommand):
    help = (
        "Load a pricing catalog (default: the shipped gateway/data/prices.yaml). Idempotent; a "
        "changed price closes the old row and opens a new one at its effective_from."
    )

    def add_arguments(self, parser):
        parser.add_argument("file", nargs="?", default=str(DEFAULT_CATALOG))
        parser.add_argument(
            "--organization",
            metavar="SLUG",
            help="load the file as this organization's own prices (they win over the default)",
        )

    def handle(self, *args, file, organization, **options):
        organization_id = None
        if organization:
            org = Organization.objects.filter(slug=organization).first()
            if org is None:
                raise CommandError(f"no organization with slug {organization!r}")
            organization_id = org.pk
        try:
            report = catalog_load(path=file, organization_id=organization_id)
        except FileNotFoundError as exc:
            raise CommandError(f"no such file: {file}") from exc
        except ApplicationError as exc:
            raise CommandError(f"{file}: {exc.message} (nothing was loaded)") from exc
        for label in report.closed:
            self.stdout.write(f"closed the previous price of {label.split(' from ')[0]}")
        for label in report.created:
            self.stdout.write(f"created {label}")
        for label in report.corrected:
            self.stdout.write(f"corrected {label} (no event used it yet)")
        self.stdout.write(
            self.style.SUCCESS(
                f"{len(report.created)} created, {len(report.closed)} closed, "
                f"{len(report.corrected)} corrected, {report.unchanged} unchanged"
            )
        )
