from django.apps import AppConfig


class WalletsConfig(AppConfig):
    name = "wallets"
    verbose_name = "Wallets"

    def ready(self):
        # The config file's `cost_tickets` keys (top level and consumer_groups[]).
        from wallets import config_section  # noqa: F401
