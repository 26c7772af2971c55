"""`python manage.py create_admin_token --org SLUG [--token RAW] [--name NAME]`: print a new
management-API token once (only its prefix and hash are stored)."""

from django.core.management.base import BaseCommand, CommandError

from chargeback.errors import ApplicationError
from chargeback.management.commands.apply_config import _actor, organization_for
from chargeback.services import admin_token_create


class Command(BaseCommand):
    help = "Create an admin token for one organization and print it (shown only this once)."

    def add_arguments(self, parser):
        parser.add_argument("--org", required=True, help="organization slug")
        parser.add_argument("--token", help="use this raw token instead of a random one")
        parser.add_argument("--name", default="admin token", help="a label for the token")

    def handle(self, *args, **options):
        organization = organization_for(options["org"])
        try:
            _, raw = admin_token_create(
                organization=organization,
                name=options["name"],
                raw=options["token"],
                actor=_actor(),
                via="cli",
            )
        except ApplicationError as exc:
            raise CommandError(exc.message) from None
        self.stdout.write(raw)
