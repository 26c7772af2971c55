"""Tenancy writes: organizations, departments, provider targets, consumer groups, admin tokens,
staff memberships. Each function makes one change and writes its audit row in the caller's
transaction; secrets never reach the database in clear (keys are hashed: chargeback/keys.py;
provider secrets encrypted: chargeback/provider_secrets.py, or the name of a variable the
operator allows: chargeback/env_refs.py). Callers use `from chargeback import services`.
"""

from chargeback.services.admin_tokens import (
    admin_token_create,
    admin_token_delete,
    admin_token_update,
)
from chargeback.services.consumer_groups import (
    consumer_group_deactivate,
    consumer_group_department_check,
    consumer_group_key_in_use,
    consumer_group_upsert,
)
from chargeback.services.departments import (
    department_create,
    department_delete,
    department_get_or_create,
    department_name_from_team_id,
    department_update,
)
from chargeback.services.memberships import membership_delete, membership_save
from chargeback.services.organizations import (
    ORGANIZATION_EDITABLE,
    organization_cost_tracking_set,
    organization_create,
    organization_delete,
    organization_get_or_create,
    organization_rate_limit_defaults_set,
    organization_rate_limits_unavailable_set,
    organization_update,
)
from chargeback.targets import target_delete, target_upsert

__all__ = [
    "ORGANIZATION_EDITABLE",
    "admin_token_create",
    "admin_token_delete",
    "admin_token_update",
    "consumer_group_deactivate",
    "consumer_group_department_check",
    "consumer_group_key_in_use",
    "consumer_group_upsert",
    "department_create",
    "department_delete",
    "department_get_or_create",
    "department_name_from_team_id",
    "department_update",
    "membership_delete",
    "membership_save",
    "organization_cost_tracking_set",
    "organization_create",
    "organization_delete",
    "organization_get_or_create",
    "organization_rate_limit_defaults_set",
    "organization_rate_limits_unavailable_set",
    "organization_update",
    "target_delete",
    "target_upsert",
]
