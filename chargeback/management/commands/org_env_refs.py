"""The platform operator's list of server environment variables one organization's config may
name (`{env: NAME}`; exact names or `PREFIX_*`). Tenants cannot change it.

    python manage.py org_env_refs --org SLUG [--create-org NAME] [--allow NAME] [--deny NAME]
    python manage.py org_env_refs --org SLUG --clear

Without options it shows the list and the variables the organization's targets and groups
name, allowed or not (what to allow after an upgrade)."""

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from chargeback.env_refs import env_ref_allowed, organization_env_refs_set
from chargeback.management.commands.apply_config import _actor, organization_for
from chargeback.models import ConsumerGroup, ProviderTarget


class Command(BaseCommand):
    help = "Show or set which environment variables an organization's config may name."

    def add_arguments(self, parser):
        parser.add_argument("--org", required=True, help="organization slug")
        parser.add_argument("--create-org", metavar="NAME", help="create it (first time)")
        parser.add_argument("--allow", action="append", default=[], metavar="NAME_OR_PREFIX_*")
        parser.add_argument("--deny", action="append", default=[], metavar="NAME_OR_PREFIX_*")
        parser.add_argument("--clear", action="store_true", help="allow none")

    def handle(self, *args, **options):
        organization = organization_for(options["org"], create_name=options["create_org"])
        patterns = [] if options["clear"] else list(organization.env_refs_allowed or [])
        patterns = [p for p in patterns + options["allow"] if p not in options["deny"]]
        if options["allow"] or options["deny"] or options["clear"]:
            try:
                organization_env_refs_set(
                    organization=organization, patterns=patterns, actor=_actor(), via="cli"
                )
            except ValidationError as exc:
                raise CommandError("; ".join(exc.messages)) from None
        allowed = organization.env_refs_allowed
        self.stdout.write(f"{organization.slug}: allowed: {', '.join(allowed) or '(none)'}")
        used = [
            (f"target {t.target_id}", t.secret_env)
            for t in ProviderTarget.objects.filter(organization=organization).exclude(secret_env="")
        ] + [
            (f"consumer_group {g.name}", g.key_env_ref)
            for g in ConsumerGroup.objects.filter(organization=organization).exclude(key_env_ref="")
        ]
        for owner, name in used:
            state = "allowed" if env_ref_allowed(allowed, name) else "NOT allowed"
            self.stdout.write(f"  {owner} names {name}: {state}")
