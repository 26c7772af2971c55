"""`python manage.py events_partitions [--ahead 2]`: create the usage events' month partitions
ahead, moving rows that landed in the default partition into theirs (gateway/partitions.py)."""

from django.core.management.base import BaseCommand

from gateway.partitions import partitioned, partitions_ensure


class Command(BaseCommand):
    help = (
        "Create the usage events' partitions of this month and the next ones (PostgreSQL), "
        "moving rows that landed in the default partition into their month. Idempotent."
    )

    def add_arguments(self, parser):
        parser.add_argument("--ahead", type=int, default=2, help="months after this one")

    def handle(self, *args, ahead, **options):
        if not partitioned():
            self.stdout.write("usage events are not partitioned here (SQLite): nothing to do")
            return
        result = partitions_ensure(ahead=ahead)
        created = ", ".join(result.created) or "none"
        self.stdout.write(f"partitions created: {created}; rows moved from default: {result.moved}")
        if result.left_in_default:
            self.stderr.write(f"rows still in the default partition: {result.left_in_default}")
