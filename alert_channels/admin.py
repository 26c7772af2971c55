"""Alert channels (through alert_channels/services, like the API and the config file), with
"send test event", and their deliveries (read-only records) with "redeliver"."""

from django.contrib import admin, messages

from alert_channels.models import AlertChannel, ChannelDelivery
from alert_channels.services import channels as services
from alert_channels.services.deliveries import channel_test_send, delivery_redeliver
from chargeback.admin_audit import audited_by_service
from chargeback.admin_base import ReadOnlyOrgScopedAdmin, actor_of
from chargeback.admin_services import ServiceAdmin


@admin.register(AlertChannel)
class AlertChannelAdmin(ServiceAdmin):
    list_display = ["name", "kind", "scope", "department", "budget_period", "is_active"]
    list_filter = ["kind", "is_active"]
    search_fields = ["name"]
    fields = [
        "organization",
        "name",
        "kind",
        "url",
        "department",
        "budget_period",
        "events",
        "is_active",
    ]
    actions = ["send_test_event"]

    def get_readonly_fields(self, request, obj=None):
        fixed = ["organization", "name", "kind"] if obj is not None else []
        return [*super().get_readonly_fields(request, obj), *fixed]

    def service_save(self, request, form, change):
        data = form.cleaned_data
        editable = {k: data[k] for k in services.EDITABLE if k in data}
        editable["budget_period"] = editable.get("budget_period") or ""
        if change:
            return services.channel_update(
                channel=form.instance, actor=actor_of(request), via="admin", **editable
            )
        channel, secret = services.channel_create(
            organization=data["organization"],
            name=data["name"],
            kind=data["kind"],
            actor=actor_of(request),
            via="admin",
            **editable,
        )
        channel.new_secret = secret
        return channel

    def response_add(self, request, obj, post_url_continue=None):
        if getattr(obj, "new_secret", ""):
            messages.warning(
                request,
                f"Signing secret of {obj.name}, shown this once (keep it in the receiver): "
                f"{obj.new_secret}",
            )
        return super().response_add(request, obj, post_url_continue)

    def service_delete(self, request, obj):
        services.channel_delete(channel=obj, actor=actor_of(request), via="admin")

    @admin.action(description="Send a test event", permissions=["change"])
    @audited_by_service  # channel_test_send writes alert_channel.test
    def send_test_event(self, request, queryset):
        for channel in queryset:
            channel_test_send(channel=channel, actor=actor_of(request), via="admin")
        messages.info(request, f"Test event queued for {queryset.count()} channel(s).")


@admin.register(ChannelDelivery)
class ChannelDeliveryAdmin(ReadOnlyOrgScopedAdmin):
    list_display = [
        "event_type",
        "channel",
        "status",
        "attempts",
        "response_code",
        "short_error",
        "created_at",
        "sent_at",
    ]
    list_filter = ["status", "event_type", "channel"]
    list_select_related = ["channel"]
    search_fields = ["event_id", "event_key"]
    actions = ["redeliver"]

    @admin.display(description="last error")
    def short_error(self, delivery):
        return delivery.last_error[:80]

    def has_redeliver_permission(self, request):
        # A delivery is a record (read-only); sending it again is a change of its channel.
        return self._in_scope(request) and request.user.has_perm(
            "alert_channels.change_alertchannel"
        )

    @admin.action(description="Redeliver (same event, signed anew)", permissions=["redeliver"])
    @audited_by_service  # delivery_redeliver writes channel_delivery.redeliver
    def redeliver(self, request, queryset):
        for delivery in queryset.select_related("channel__organization"):
            delivery_redeliver(delivery=delivery, actor=actor_of(request), via="admin")
        messages.info(request, f"{queryset.count()} delivery(ies) queued again.")
