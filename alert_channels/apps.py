from django.apps import AppConfig


class AlertChannelsConfig(AppConfig):
    name = "alert_channels"
    verbose_name = "Alert channels (Slack, webhooks)"

    def ready(self):
        from alert_channels import config_section  # noqa: F401  (registers `alert_channels:`)
