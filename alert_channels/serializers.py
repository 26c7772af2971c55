"""Shapes of the webhooks API (/v1/webhooks). The rules are the service's
(alert_channels/services/channels.py channel_check), so the API, the admin and the config file
refuse the same things in the same words."""

from rest_framework import serializers

from alert_channels import selectors
from alert_channels.models import EVENT_TYPES, AlertChannel
from alert_channels.services.channels import url_shown
from chargeback.serializers import StrictSerializer


class ChannelCreateInput(StrictSerializer):
    name = serializers.CharField(max_length=100)
    kind = serializers.ChoiceField(choices=AlertChannel.Kind.choices, default="webhook")
    url = serializers.CharField(max_length=2000)
    team_id = serializers.CharField(
        max_length=100, required=False, allow_blank=True, help_text="only this department's events"
    )
    # A string, checked by the service: an enum here would be a second name in the schema for
    # the budgets' own period choices.
    budget_period = serializers.CharField(
        max_length=10,
        required=False,
        allow_blank=True,
        help_text="`month` or `quarter`: only the department's budget of this period (with team_id)",
    )
    events = serializers.ListField(
        child=serializers.ChoiceField(choices=EVENT_TYPES), required=False, default=list
    )
    is_active = serializers.BooleanField(default=True)


class DeliveryOutput(serializers.Serializer):
    id = serializers.IntegerField()
    event_id = serializers.UUIDField()
    event_type = serializers.CharField()
    status = serializers.CharField()
    attempts = serializers.IntegerField()
    response_code = serializers.IntegerField(allow_null=True)
    last_error = serializers.CharField()
    created_at = serializers.DateTimeField()
    sent_at = serializers.DateTimeField(allow_null=True)


class ChannelOutput(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    kind = serializers.CharField()
    url = serializers.SerializerMethodField(help_text="a Slack URL shows its host only")
    scope = serializers.CharField(help_text="organization, department or budget")
    team_id = serializers.CharField(source="department.team_id", allow_null=True, default=None)
    budget_period = serializers.CharField()
    events = serializers.ListField(child=serializers.CharField())
    is_active = serializers.BooleanField()
    created_at = serializers.DateTimeField()
    recent_deliveries = serializers.SerializerMethodField()

    def get_url(self, channel) -> str:
        return url_shown(channel)

    def get_recent_deliveries(self, channel) -> list[dict]:
        return DeliveryOutput(selectors.delivery_list(channel=channel, limit=5), many=True).data


class ChannelCreatedOutput(ChannelOutput):
    secret = serializers.CharField(
        help_text="the webhook's signing secret, shown this once (empty for Slack)"
    )


class WebhookSecretOutput(serializers.Serializer):
    secret = serializers.CharField(help_text="the new signing secret, shown this once")
