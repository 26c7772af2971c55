"""Reads of alert channels and deliveries, always within one organization."""

from django.db.models import QuerySet

from alert_channels.models import AlertChannel, ChannelDelivery
from chargeback.errors import NotFound
from chargeback.models import Organization


def channel_list(*, organization: Organization) -> QuerySet[AlertChannel]:
    return (
        AlertChannel.objects.filter(organization=organization)
        .select_related("department")
        .order_by("name")
    )


def channel_get(*, organization: Organization, channel_id: int) -> AlertChannel:
    """The organization's channel; another organization's is a 404, like a missing one."""
    channel = channel_list(organization=organization).filter(pk=channel_id).first()
    if channel is None:
        raise NotFound(f"no webhook {channel_id}")
    return channel


def delivery_list(*, channel: AlertChannel, limit: int = 20) -> list[ChannelDelivery]:
    return list(channel.deliveries.order_by("-created_at", "-pk")[:limit])
