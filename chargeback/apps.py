from django.apps import AppConfig


class ChargebackConfig(AppConfig):
    name = "chargeback"
    verbose_name = "Organizations"

    def ready(self):
        # Bind @shared_task to our Celery app when Django starts, not on `import chargeback`:
        # the `kt` CLI imports this package and must not pay for importing Celery.
        from chargeback.celery import app  # noqa: F401
