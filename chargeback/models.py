"""Tenancy: organizations, their departments, consumer groups, provider targets, admin tokens,
staff memberships and the audit log. Every tenant-owned row carries its organization."""

import re
import zoneinfo

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone

from chargeback.rate_limits import validate_rate_limit_defaults, validate_user_rate_limits


def validate_time_zone(value):
    if value not in zoneinfo.available_timezones():
        raise ValidationError(f"unknown time zone {value!r}")


ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# A prefix pattern needs 3+ characters before the `*`: `*` or `K*` would allow nearly anything.
ENV_PREFIX_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{2,}\*$")


def validate_env_ref_patterns(value):
    """`Organization.env_refs_allowed`: variable names or PREFIX_* patterns (chargeback/env_refs.py)."""
    if not isinstance(value, list):
        raise ValidationError("a list of variable names or PREFIX_* patterns")
    for pattern in value:
        if not isinstance(pattern, str) or not (
            ENV_NAME_RE.match(pattern) or ENV_PREFIX_RE.match(pattern)
        ):
            raise ValidationError(
                f"{pattern!r} is not a variable name or a PREFIX_* pattern (at least 3 "
                "characters before the *)"
            )


class Organization(models.Model):
    class RateLimitsUnavailable(models.TextChoices):
        """What the gateway does with a rate-limited group's request while it cannot count it
        (the rate-limit store, Redis, is down or too slow): docs/gateway.md."""

        OPEN = "open", "open: serve it without limits (logged and counted)"
        CLOSED = "closed", "closed: refuse it with 503 and retry-after"

    class AllocationPolicy(models.TextChoices):
        """What an allocation does when the organization's wallet cannot cover it
        (wallets/services/transfers.py)."""

        AUTO_FUND = "auto_fund", "auto_fund: credit the organization's wallet first (labelled)"
        STRICT = "strict", "strict: refuse (409), naming what is available"

    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=100, unique=True)
    time_zone = models.CharField(max_length=64, default="UTC", validators=[validate_time_zone])
    currency = models.CharField(max_length=3, default="USD")
    finance_emails = models.JSONField(default=list, blank=True)
    cost_tracking_enabled = models.BooleanField(default=True)
    wallet_enforcement = models.BooleanField(default=True)
    # The server environment variables this organization's config may name (`{env: NAME}`):
    # exact names or `PREFIX_*`. Set by the platform operator only (superusers,
    # `manage.py org_env_refs`), never by the tenant; empty means none (chargeback/env_refs.py).
    env_refs_allowed = models.JSONField(
        default=list, blank=True, validators=[validate_env_ref_patterns]
    )
    rate_limits_unavailable = models.CharField(
        max_length=10,
        choices=RateLimitsUnavailable.choices,
        default=RateLimitsUnavailable.OPEN,
        help_text="Rate-limited consumer groups while the rate-limit store (Redis) is unavailable.",
    )
    allocation_policy = models.CharField(
        max_length=10,
        choices=AllocationPolicy.choices,
        default=AllocationPolicy.AUTO_FUND,
        help_text="An allocation the organization's wallet cannot cover.",
    )
    # Every consumer group's limits where the group sets none, and each end user's (`per_user`):
    # the config file's `rate_limit_defaults` (chargeback/rate_limits.py, gateway/ratelimit.py).
    rate_limit_defaults = models.JSONField(
        default=dict, blank=True, validators=[validate_rate_limit_defaults]
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name

    @property
    def tz(self):
        return zoneinfo.ZoneInfo(self.time_zone)


class Department(models.Model):
    """A cost owner. `team_id` is the identifier users type (`team_engineering`)."""

    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="departments"
    )
    team_id = models.SlugField(max_length=100)
    name = models.CharField(max_length=200)
    owner_emails = models.JSONField(default=list, blank=True)
    # False ("strict"): the team wallet is a hard cap; nothing falls through to the
    # organization's wallet (wallets/cascade.py).
    fall_through = models.BooleanField(
        default=True,
        help_text="when the team wallet cannot cover a request, the organization's wallet pays",
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "team_id"], name="department_team_id_unique"
            )
        ]

    def __str__(self):
        return self.name


class ConsumerGroup(models.Model):
    """An application or team identity; its key routes spend to its department's wallet."""

    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="consumer_groups"
    )
    department = models.ForeignKey(
        Department, null=True, blank=True, on_delete=models.PROTECT, related_name="consumer_groups"
    )
    name = models.SlugField(max_length=100)
    key_prefix = models.CharField(max_length=16)
    key_hash = models.CharField(max_length=64, unique=True)
    key_env_ref = models.CharField(max_length=100, blank=True)
    previous_key_hash = models.CharField(max_length=64, blank=True, db_index=True)
    previous_key_expires_at = models.DateTimeField(null=True, blank=True)
    is_active = models.BooleanField(default=True)
    allowed_models = models.JSONField(default=list, blank=True)
    rpm_limit = models.PositiveIntegerField(null=True, blank=True)
    tpm_limit = models.PositiveIntegerField(null=True, blank=True)
    tpd_limit = models.PositiveIntegerField(null=True, blank=True)  # tokens per day
    parallel_limit = models.PositiveIntegerField(null=True, blank=True)  # requests in flight
    # The limits of each end user of the group: {"rpm", "tpm", "tpd", "parallel"}, any of them.
    user_rate_limits = models.JSONField(
        default=dict, blank=True, validators=[validate_user_rate_limits]
    )
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "name"], name="consumer_group_name_unique"
            )
        ]

    def __str__(self):
        return self.name


class ProviderSecret(models.Model):
    """A provider API key that belongs to one organization, encrypted at rest with the operator's
    KT_SECRETS_KEY (chargeback/secretbox.py). Entered once, never shown again: only `hint` (the
    last characters) and when it was set. Targets reference it by name (`{secret: NAME}`)."""

    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="provider_secrets"
    )
    name = models.SlugField(max_length=100)
    ciphertext = models.TextField()
    hint = models.CharField(max_length=8, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    rotated_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "name"], name="provider_secret_name_unique"
            )
        ]

    def __str__(self):
        return self.name


class ProviderTarget(models.Model):
    """An upstream the gateway may call. Its key is a stored secret of the organization
    (`secret`) or the name of an environment variable the operator allows (`secret_env`)."""

    PROVIDERS = [
        ("openai", "OpenAI-compatible"),
        ("anthropic", "Anthropic"),
        ("fake", "Built-in fake"),
    ]

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="targets")
    target_id = models.SlugField(max_length=100)
    provider = models.CharField(max_length=20, choices=PROVIDERS)
    base_url = models.URLField(max_length=500, blank=True)
    secret_env = models.CharField(max_length=100, blank=True)
    # RESTRICT: a secret in use cannot be deleted, unless its organization is (cascade).
    secret = models.ForeignKey(
        ProviderSecret, null=True, blank=True, on_delete=models.RESTRICT, related_name="targets"
    )
    served_models = models.JSONField(default=list, blank=True)
    options = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["target_id"]
        constraints = [
            models.UniqueConstraint(fields=["organization", "target_id"], name="target_id_unique")
        ]

    def __str__(self):
        return f"{self.target_id} ({self.provider})"


class AdminToken(models.Model):
    """A management-API bearer token; it reaches its organization and nothing else."""

    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="admin_tokens"
    )
    name = models.CharField(max_length=100)
    token_prefix = models.CharField(max_length=16)
    token_hash = models.CharField(max_length=64, unique=True)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now)
    last_used_at = models.DateTimeField(null=True, blank=True)

    def __str__(self):
        return f"{self.name} ({self.token_prefix}…)"


class Membership(models.Model):
    """A staff user's place in one organization; budget owners see only their departments."""

    class Role(models.TextChoices):
        OWNER = "owner"
        ADMIN = "admin"
        FINANCE = "finance"
        BUDGET_OWNER = "budget_owner"
        VIEWER = "viewer"

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="membership"
    )
    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="memberships"
    )
    role = models.CharField(max_length=20, choices=Role.choices, default=Role.VIEWER)
    departments = models.ManyToManyField(Department, blank=True, related_name="owners")

    def __str__(self):
        return f"{self.user} @ {self.organization} ({self.role})"


class AuditLog(models.Model):
    """Who changed what, written in the same transaction as the change.

    `organization` is empty only for platform rows a superuser changes that belong to no tenant
    (the shared default price catalog, creating an organization's first rows).
    """

    organization = models.ForeignKey(
        Organization, null=True, blank=True, on_delete=models.CASCADE, related_name="audit_log"
    )
    actor = models.CharField(max_length=200)
    via = models.CharField(max_length=20)  # admin, api, cli, config, system
    action = models.CharField(max_length=100)
    object_type = models.CharField(max_length=100)
    object_id = models.CharField(max_length=100, blank=True)
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["organization", "-created_at"], name="audit_org_time")]

    def __str__(self):
        return f"{self.action} {self.object_type}:{self.object_id} by {self.actor}"
