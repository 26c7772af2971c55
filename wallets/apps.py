from django.apps import AppConfig


class WalletsConfig(AppConfig):
    name = "wallets"
    verbose_name = "Wallets and budgets"

    def ready(self):
        from wallets.budgets import config_section  # noqa: F401  (registers `budgets:`)
