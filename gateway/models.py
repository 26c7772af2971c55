"""The pricing catalog and the priced usage events the gateway writes."""

from django.db import models
from django.db.models import Q
from django.utils import timezone

from chargeback import display
from chargeback.models import ConsumerGroup, Department, Organization
from chargeback.money import ZERO, AmountField, PriceField, RateField


class Price(models.Model):
    """A model's price per million tokens from `effective_from` until `effective_to` (open).

    A row with no organization is the default catalog; an organization's own row wins.
    """

    class Kind(models.TextChoices):
        CHAT = "chat"
        EMBEDDING = "embedding"

    organization = models.ForeignKey(
        Organization, null=True, blank=True, on_delete=models.CASCADE, related_name="prices"
    )
    provider = models.CharField(max_length=20)
    model = models.CharField(max_length=200)
    kind = models.CharField(max_length=20, choices=Kind.choices, default=Kind.CHAT)
    input_per_mtok = PriceField()
    output_per_mtok = PriceField(default=ZERO)
    cached_input_per_mtok = PriceField(null=True, blank=True)
    cache_write_per_mtok = PriceField(null=True, blank=True)
    max_output_tokens = models.PositiveIntegerField(default=4096)
    context_window = models.PositiveIntegerField(default=128_000)
    currency = models.CharField(max_length=3, default="USD")
    premium = models.BooleanField(default=False)
    effective_from = models.DateTimeField()
    effective_to = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["provider", "model", "-effective_from"]
        indexes = [
            models.Index(fields=["provider", "model", "effective_from"], name="price_lookup")
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(effective_to__isnull=True)
                | Q(effective_to__gt=models.F("effective_from")),
                name="price_period_ordered",
            )
        ]

    def __str__(self):
        return f"{self.provider}/{self.model} from {self.effective_from:%Y-%m-%d}"


class ExchangeRate(models.Model):
    """Units of `to_currency` per unit of `from_currency`, in force from `effective_from` until
    the pair's next row. A row with no organization is the shared table; an organization's own
    rows for a pair, when it has any in force, win (like prices). Rows are only added: a rate
    an event was converted at stays, so every event can be recomputed (gateway/exchange.py)."""

    organization = models.ForeignKey(
        Organization,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="exchange_rates",
    )
    from_currency = models.CharField(max_length=3)
    to_currency = models.CharField(max_length=3)
    rate = RateField()
    effective_from = models.DateTimeField()
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["from_currency", "to_currency", "-effective_from"]
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "from_currency", "to_currency", "effective_from"],
                name="exchange_rate_unique_start",
                nulls_distinct=False,
            ),
            models.CheckConstraint(condition=Q(rate__gt=0), name="exchange_rate_positive"),
        ]

    def __str__(self):
        return f"1 {self.from_currency} = {self.rate} {self.to_currency} from {self.effective_from:%Y-%m-%d}"


class UsageEvent(models.Model):
    """One gateway request, priced and attributed. Written once; never edited, but for one
    case: a late capture replaces its request's $0 placeholder (gateway/recording.py
    usage_settle)."""

    class Status(models.TextChoices):
        OK = "ok"
        ERROR = "error"
        PROVIDER_ERROR = "provider_error"
        TIMEOUT = "timeout"
        CLIENT_DISCONNECT = "client_disconnect"
        REJECTED = "rejected"
        EXPIRED = "expired"
        # Answered from the response cache (gateway/response_cache): no provider call, no
        # hold; `cost` is the organization's cache price (0 unless set), `saved` what the
        # provider call would have cost.
        CACHE_HIT = "cache_hit"

    class UsageSource(models.TextChoices):
        PROVIDER = "provider"
        ESTIMATED = "estimated"
        NONE = "none"

    # The references below are kept by Django (on_delete) but not as database constraints: a
    # constraint check on each insert locked the referenced organization, department, group,
    # price and wallet rows (FOR KEY SHARE), which all concurrent requests of a department
    # share; that and the indexes dropped with it were about a fifth of PostgreSQL's CPU per
    # gateway request (docs/performance.md). The gateway writes ids it has just read, and
    # nothing that events point at is deleted while events exist (PROTECT, or CASCADE from the
    # organization). The organization needs no index of its own: every event index starts
    # with it.
    organization = models.ForeignKey(
        Organization,
        on_delete=models.CASCADE,
        related_name="usage_events",
        db_constraint=False,
        db_index=False,
    )
    department = models.ForeignKey(
        Department,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="usage_events",
        db_constraint=False,
    )
    consumer_group = models.ForeignKey(
        ConsumerGroup,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="usage_events",
        db_constraint=False,
    )
    wallet = models.ForeignKey(
        "wallets.Wallet",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="usage_events",
        db_constraint=False,
    )
    # Unique as a constraint, not `unique=True`, which would add a second (LIKE) index.
    request_id = models.CharField(max_length=100)
    user = models.CharField(max_length=200, blank=True)
    tags = models.JSONField(default=dict, blank=True)
    endpoint = models.CharField(max_length=50)
    provider = models.CharField(max_length=20)
    target_id = models.CharField(max_length=100, blank=True)
    model_requested = models.CharField(max_length=200)
    model_served = models.CharField(max_length=200, blank=True)
    stream = models.BooleanField(default=False)
    prompt_tokens = models.PositiveIntegerField(default=0)
    completion_tokens = models.PositiveIntegerField(default=0)
    cached_tokens = models.PositiveIntegerField(default=0)
    cache_write_tokens = models.PositiveIntegerField(default=0)
    cost = AmountField(default=ZERO)
    currency = models.CharField(max_length=3, default="USD")
    price = models.ForeignKey(
        Price,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        db_constraint=False,
    )
    usage_source = models.CharField(
        max_length=20, choices=UsageSource.choices, default=UsageSource.PROVIDER
    )
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.OK)
    http_status = models.PositiveSmallIntegerField(default=200)
    error_code = models.CharField(max_length=100, blank=True)
    latency_ms = models.PositiveIntegerField(default=0)
    ttft_ms = models.PositiveIntegerField(null=True, blank=True)
    prompt_fingerprint = models.CharField(max_length=64, blank=True)
    # Failover (gateway/failover.py): the targets tried before the one that served, or skipped
    # because their circuit was open, each with why: [{"target", "model", "reason"}].
    attempts = models.JSONField(default=list, blank=True)
    # The routing policy that changed the model, as "policy:rule" (gateway/policies.py), and
    # what it saved: the usage at the price of the model it replaced, minus the cost.
    policy = models.CharField(max_length=120, blank=True)
    policy_saved = AmountField(default=ZERO)
    # The cost exceeded the request's hold: the provider reported more usage than the hold's
    # worst case allowed (charged anyway, the provider billed it). Rare; see docs/pricing.md.
    above_hold = models.BooleanField(default=False)
    # A cache hit: what the call would have cost at the price in force (its tokens, the
    # price in `price`). Realised savings are `saved - cost` over cache hits (gateway/selectors.py).
    saved = AmountField(default=ZERO)
    # Priced in another currency than the wallet's (docs/pricing.md, "Currencies"): the cost
    # in the price's currency, the rate it was converted at, and that currency; `cost` and
    # `currency` are the wallet's. All three NULL: priced in the wallet's currency (the common
    # path's capture statement leaves them out: gateway/fastpath.py).
    price_currency = models.CharField(max_length=3, null=True, blank=True)  # noqa: DJ001 (NULL: not converted)
    price_cost = AmountField(null=True, blank=True)
    exchange_rate = RateField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["organization", "created_at"], name="event_org_time"),
            models.Index(
                fields=["organization", "department", "created_at"], name="event_dept_time"
            ),
            # No index on prompt_fingerprint: repeat detection reads one range of events by the
            # two indexes above (reports/dashboards/selectors.py); it cost 1.3 GB at 11 M rows.
            # Only events a routing policy changed (the department page's policy table): a busy
            # department's month is 200 k events, of which these are few or none.
            models.Index(
                fields=["organization", "department", "created_at"],
                condition=~Q(policy=""),
                name="event_policy_time",
            ),
        ]
        constraints = [
            models.UniqueConstraint(fields=["request_id"], name="event_request_id_unique"),
        ]

    def __str__(self):
        return f"{self.request_id} {self.model_requested} {display.amount(self.cost)}"

    @property
    def total_tokens(self):
        return self.prompt_tokens + self.completion_tokens


class EventArchive(models.Model):
    """A month (UTC) of usage events exported and its partition dropped (PostgreSQL;
    reports/event_archive.py): the file, checked against the partition before the drop. The
    daily rollups keep the month; its raw events are in the file only."""

    month = models.DateField(unique=True, help_text="first day of the month, UTC")
    path = models.CharField(max_length=500)
    sha256 = models.CharField(max_length=64)
    rows = models.BigIntegerField()
    costs = models.JSONField(help_text="summed cost per currency, as text")
    archived_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["month"]

    def __str__(self):
        return f"events {self.month:%Y-%m}: {self.rows} rows in {self.path}"


class ResponseCachePolicy(models.Model):
    """The response cache's settings (gateway/response_cache): one row per organization with
    its defaults (`consumer_group` empty) and one per consumer group that overrides them. An
    empty field inherits (the organization's value, else the built-in default in
    gateway/response_cache/rules.py); excluded models add up. Written by
    gateway.response_cache.services only (config file, admin)."""

    class Scope(models.TextChoices):
        CONSUMER_GROUP = "consumer_group", "consumer group: each group its own entries"
        ORGANIZATION = "organization", "organization: every group that shares it"
        USER = "user", "user: each end user of the group their own entries"

    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="cache_policies"
    )
    consumer_group = models.ForeignKey(
        ConsumerGroup,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="cache_policies",
        help_text="Empty: the organization's defaults for every group.",
    )
    enabled = models.BooleanField(null=True, blank=True)
    ttl_seconds = models.PositiveIntegerField(null=True, blank=True)
    max_entry_bytes = models.PositiveIntegerField(null=True, blank=True)
    scope = models.CharField(max_length=20, choices=Scope.choices, blank=True)
    excluded_models = models.JSONField(default=list, blank=True)
    # The organization's internal price of a cache hit (organization row only; empty: free).
    hit_price = AmountField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["organization", "consumer_group__name"]
        verbose_name = "response cache policy"
        verbose_name_plural = "response cache policies"
        constraints = [
            models.UniqueConstraint(
                fields=["organization"],
                condition=Q(consumer_group__isnull=True),
                name="one_org_cache_policy",
            ),
            models.UniqueConstraint(fields=["consumer_group"], name="one_group_cache_policy"),
        ]

    def __str__(self):
        return f"cache: {self.consumer_group.name if self.consumer_group_id else 'organization'}"


class GatewaySettings(models.Model):
    """An organization's routing, from its config file: failover across the targets that serve
    a model (`fallback`), the circuit breaker, the models to fall back to (`model_mapping`) and
    the routing policies of its groups and departments (gateway/config_routing.py). Empty
    values mean the feature is off; an organization without a row has none of them."""

    organization = models.OneToOneField(
        Organization, on_delete=models.CASCADE, related_name="gateway_settings"
    )
    fallback = models.JSONField(default=dict, blank=True)
    circuit_breaker = models.JSONField(default=dict, blank=True)
    model_mapping = models.JSONField(default=dict, blank=True)
    routing_policies = models.JSONField(default=list, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "gateway settings"

    def __str__(self):
        return f"gateway settings of {self.organization}"


from gateway.rollup_models import SpendDaily, SpendDelta  # noqa: E402,F401  (daily rollups)
