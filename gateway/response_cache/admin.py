"""The response cache's settings in the admin: the organization's defaults and each consumer
group's own, written through gateway.response_cache.services like the config file's."""

from django.contrib import admin

from chargeback.admin_base import actor_of
from chargeback.admin_services import ServiceAdmin
from chargeback.money import exact_str
from gateway.models import ResponseCachePolicy
from gateway.response_cache.services import FIELDS, cache_policy_delete, cache_policy_set


@admin.register(ResponseCachePolicy)
class ResponseCachePolicyAdmin(ServiceAdmin):
    """Empty fields inherit: a group's from its organization's row, that from the built-in
    defaults (cache off, one hour, 1 MiB, each group its own entries)."""

    list_display = [
        "applies_to",
        "enabled",
        "scope",
        "ttl_seconds",
        "max_entry_bytes",
        "excluded_models",
        "hit_price_column",
        "updated_at",
    ]
    list_select_related = ["consumer_group"]
    fields = ["organization", "consumer_group", *FIELDS]

    def get_readonly_fields(self, request, obj=None):
        fixed = ["organization", "consumer_group"] if obj is not None else []
        return [*super().get_readonly_fields(request, obj), *fixed]

    @admin.display(description="Applies to", ordering="consumer_group__name")
    def applies_to(self, obj):
        return obj.consumer_group.name if obj.consumer_group_id else "(organization default)"

    @admin.display(description="Cache price", ordering="hit_price", empty_value="—")
    def hit_price_column(self, obj):
        return exact_str(obj.hit_price)

    def service_save(self, request, form, change):
        data = form.cleaned_data
        instance = form.instance
        policy, _ = cache_policy_set(
            organization=instance.organization if change else data["organization"],
            consumer_group=instance.consumer_group if change else data.get("consumer_group"),
            new=not change,
            actor=actor_of(request),
            via="admin",
            **{name: data.get(name) for name in FIELDS},
        )
        return policy

    def service_delete(self, request, obj):
        cache_policy_delete(policy=obj, actor=actor_of(request), via="admin")
