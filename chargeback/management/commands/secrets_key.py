"""`python manage.py secrets_key generate|rotate`: keys of the stored provider secrets.

- `generate` prints a new Fernet key for KT_SECRETS_KEY.
- `rotate` re-encrypts every stored secret with the first key of KT_SECRETS_KEY. To rotate the
  key: set KT_SECRETS_KEY=NEW,OLD on every process, run this, then set KT_SECRETS_KEY=NEW.
"""

from cryptography.fernet import Fernet
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from chargeback import secretbox
from chargeback.errors import NotConfigured
from chargeback.models import ProviderSecret


class Command(BaseCommand):
    help = "Generate a KT_SECRETS_KEY, or re-encrypt every stored secret with its first key."

    def add_arguments(self, parser):
        parser.add_argument("action", choices=["generate", "rotate"])

    def handle(self, *args, **options):
        if options["action"] == "generate":
            self.stdout.write(Fernet.generate_key().decode())
            return
        done = 0
        try:
            with transaction.atomic():
                for secret in ProviderSecret.objects.select_for_update().order_by("pk"):
                    secret.ciphertext = secretbox.reseal(secret.ciphertext)
                    secret.save(update_fields=["ciphertext"])
                    done += 1
        except (NotConfigured, secretbox.SecretUnreadable) as exc:
            raise CommandError(f"{exc}; nothing was changed") from None
        self.stdout.write(f"re-encrypted {done} provider secret(s) with the first key")
