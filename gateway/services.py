"""Writes of the gateway's own settings (gateway.models.GatewaySettings): failover, the circuit
breaker, fallback models and routing policies of one organization, from its config file
(gateway/config_routing.py, gateway/config_policies.py). Gateway processes see a change within
KT_KEY_CACHE_SECONDS (the settings are cached with the targets and the group keys)."""

from django.db import transaction

from chargeback.audit import audit_record
from chargeback.errors import ApplicationError
from chargeback.models import Organization
from gateway.models import GatewaySettings

EDITABLE = ("fallback", "circuit_breaker", "model_mapping", "routing_policies")


def gateway_settings_update(
    *, organization: Organization, actor: str, via: str, **changes
) -> list[str]:
    """Set some of the organization's gateway settings (values as the config readers store
    them; an empty value switches the feature off); return the names that changed. No row, no
    write and no audit row when nothing changed: an organization that never configured any of
    them keeps having no row at all."""
    unknown = set(changes) - set(EDITABLE)
    if unknown:
        raise ApplicationError(f"cannot change {', '.join(sorted(unknown))}")
    with transaction.atomic():
        row = GatewaySettings.objects.select_for_update().filter(organization=organization).first()
        current = row or GatewaySettings(organization=organization)
        before = {field: getattr(current, field) for field in changes}
        changed = [field for field, value in changes.items() if before[field] != value]
        if not changed:
            return []
        for field in changed:
            setattr(current, field, changes[field])
        current.save()
        audit_record(
            organization=organization,
            actor=actor,
            via=via,
            action="gateway_settings.update",
            obj=current,
            before={field: before[field] for field in changed},
            after={field: changes[field] for field in changed},
        )
    return changed
