from django.apps import AppConfig


class BudgetsConfig(AppConfig):
    name = "budgets"
    verbose_name = "Budgets and alerts"

    def ready(self):
        from budgets import alerts, config_section  # noqa: F401  (registers `budgets:`)
        from gateway.hooks import on_spend_recorded

        # The gateway announces each charged call; budgets decide whether that crossed anything.
        on_spend_recorded(alerts.spend_recorded)
