from django.apps import AppConfig


class AlertChannelsConfig(AppConfig):
    name = "alert_channels"
    verbose_name = "Alert channels (Slack, webhooks)"

    def ready(self):
        from alert_channels import config_section  # noqa: F401  (registers `alert_channels:`)
        from alert_channels.ticket_events import ticket_event_heard
        from wallets.tickets.events import on_ticket_event

        # Cost tickets (the wallets app, below) announce their events; this publishes them.
        on_ticket_event(ticket_event_heard)
