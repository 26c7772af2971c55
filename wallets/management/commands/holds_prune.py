"""`python manage.py holds_prune [--days N]`: delete the resolved holds older than
KT_HOLD_RETENTION_DAYS (wallets/retention.py; also a daily beat task)."""

from django.core.management.base import BaseCommand, CommandError

from wallets.retention import holds_prune


class Command(BaseCommand):
    help = (
        "Delete the holds resolved (captured, released, expired) more than N days ago "
        "(default KT_HOLD_RETENTION_DAYS), in short batches; captures only when their ledger "
        "entry names the request. The ledger is not touched."
    )

    def add_arguments(self, parser):
        parser.add_argument("--days", type=int, help="override KT_HOLD_RETENTION_DAYS")
        parser.add_argument("--batch", type=int, default=5000, help="holds per transaction")

    def handle(self, *args, days, batch, **options):
        if days is not None and days < 1:
            raise CommandError("--days must be at least 1")
        if batch < 1:
            raise CommandError("--batch must be at least 1")
        result = holds_prune(days=days, batch=batch)
        if result.cutoff is None:
            self.stdout.write("KT_HOLD_RETENTION_DAYS is 0: every hold is kept")
            return
        self.stdout.write(
            f"{result.deleted} holds resolved before {result.cutoff:%Y-%m-%d %H:%M} UTC deleted"
            + (f"; {result.kept} captures kept (no audited ledger entry)" if result.kept else "")
        )
