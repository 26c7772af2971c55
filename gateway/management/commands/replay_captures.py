"""`python manage.py replay_captures [--failed] [--list]`: replay the capture outbox now."""

from django.core.management.base import BaseCommand, CommandError

from gateway.outbox import PendingCapture, outbox_dir, outbox_pending, outbox_replay


class Command(BaseCommand):
    help = (
        "Replay the captures the gateway could not commit while its database was away "
        "(KT_CAPTURE_OUTBOX_DIR). Exactly once: a capture already committed writes nothing. "
        "The gateway processes do this by themselves once the database is back."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--failed", action="store_true", help="also retry the records set aside (*.failed)"
        )
        parser.add_argument("--list", action="store_true", help="only list what is waiting")

    def handle(self, *args, failed, list, **options):
        paths = outbox_pending(failed=failed)
        if list:
            for path in paths:
                record = PendingCapture.from_json(path.read_bytes())
                self.stdout.write(
                    f"{path.name}  cost {record.amount}  "
                    f"organization {record.event_fields.get('organization_id')}  "
                    f"answered {record.event_fields.get('created_at')}"
                )
            self.stdout.write(f"{len(paths)} waiting in {outbox_dir()}")
            return
        report = outbox_replay(failed=failed)
        outcomes = ", ".join(f"{k}: {v}" for k, v in sorted((report.outcomes or {}).items()))
        self.stdout.write(
            f"replayed {report.replayed} ({outcomes or 'none'}), set aside {report.failed}, "
            f"still waiting {report.remaining}"
        )
        if report.remaining:
            raise CommandError("the database is still unavailable; run again later")
