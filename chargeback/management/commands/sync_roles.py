from django.core.management.base import BaseCommand

from chargeback.models import Membership
from chargeback.roles import membership_sync, roles_sync


class Command(BaseCommand):
    help = "Create or refresh the staff role groups and re-apply every membership's role."

    def handle(self, *args, **options):
        for name, count in roles_sync().items():
            self.stdout.write(f"{name}: {count} permissions")
        for membership in Membership.objects.select_related("user"):
            membership_sync(membership)
