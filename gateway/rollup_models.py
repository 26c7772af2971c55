"""Daily spend rollups: usage events summed per organization, department, day (the
organization's calendar), provider and model (SpendDaily), and per user and consumer group
(SpendUserDaily), so month figures do not sum a month of raw events.

Maintained by the database, in the transaction that writes the events: statement triggers on
the events table append the statement's sums (signed: an update or delete takes the old rows
back) to one delta table holding both rollups' keys, which takes no lock a concurrent request
could wait on; a job folds the deltas into both daily tables every minute. Readers add daily
rows and deltas (gateway/rollups.py), so a figure is exact whatever the fold's lag. SQL:
gateway/migrations/0013_one_delta_cache_cost.py (0008 and 0011 before it);
SpendUserMonth sums SpendUserDaily by month (0015_spend_user_month.py).

Repeated prompts (a successful request whose prompt fingerprint was already seen earlier in
the same department and calendar month) are counted at write time: PromptMonth keeps, per
department, month and fingerprint, how often it was asked and which event came first; the
rollups count `fingerprinted` requests and the `firsts` among them, so repeats are
`fingerprinted - firsts` and what caching would save `fingerprinted_cost - first_cost`, for any
grouping the rollup keys allow.
"""

from django.db import models

from chargeback.models import Department, Organization
from chargeback.money import ZERO, AmountField


def _organization():
    # Indexed by the keys below, which lead with it.
    return models.ForeignKey(
        Organization,
        on_delete=models.CASCADE,
        related_name="+",
        db_constraint=False,
        db_index=False,
    )


def _department():
    return models.ForeignKey(
        Department,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="+",
        db_constraint=False,
        db_index=False,
    )


class RollupFigures(models.Model):
    organization = _organization()
    department = _department()
    day = models.DateField(help_text="the organization's calendar day (its time zone)")
    requests = models.BigIntegerField(default=0)
    cost = AmountField(default=ZERO)
    prompt_tokens = models.BigIntegerField(default=0)
    completion_tokens = models.BigIntegerField(default=0)
    cache_hits = models.BigIntegerField(default=0)
    cache_saved = AmountField(default=ZERO, help_text="saved - cost of the cache hits")
    premium_requests = models.BigIntegerField(default=0)
    premium_cost = AmountField(default=ZERO, help_text="cost priced by a premium price row")
    fingerprinted = models.BigIntegerField(
        default=0, help_text="successful requests with a prompt fingerprint"
    )
    fingerprinted_cost = AmountField(default=ZERO)
    firsts = models.BigIntegerField(
        default=0, help_text="those that were the first of their fingerprint in the month"
    )
    first_cost = AmountField(default=ZERO)
    cache_cost = AmountField(
        default=ZERO, help_text="cost of the cache hits (what no provider billed)"
    )

    class Meta:
        abstract = True


class SpendFigures(RollupFigures):
    provider = models.CharField(max_length=20)
    model = models.CharField(max_length=200, help_text="the model requested")

    class Meta:
        abstract = True


class SpendDaily(SpendFigures):
    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "day", "department", "provider", "model"],
                name="spend_daily_key",
                nulls_distinct=False,
            )
        ]
        # A department's month (the admin's departments list, budgets).
        indexes = [
            models.Index(fields=["organization", "department", "day"], name="spend_daily_dept_day")
        ]

    def __str__(self):
        return f"{self.day} {self.provider} {self.model}: {self.cost}"


class UserFigures(RollupFigures):
    user = models.CharField(max_length=200, blank=True)
    # An id, not a reference: the events keep theirs the same way (no constraint, no index).
    consumer_group_id = models.BigIntegerField(null=True, blank=True)

    class Meta:
        abstract = True


class SpendUserDaily(UserFigures):
    """The same figures per user and consumer group (`/v1/spend?by=user|group`)."""

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "day", "department", "user", "consumer_group_id"],
                name="spend_user_daily_key",
                nulls_distinct=False,
            )
        ]

    def __str__(self):
        return f"{self.day} {self.user}: {self.cost}"


class SpendUserMonth(UserFigures):
    """SpendUserDaily summed by calendar month (`day` is the month's first day): a month's
    figures by user or consumer group without reading a row per user and day, which at 10 M
    events is about as many rows as the month has events. Kept by statement triggers on
    gateway_spenduserdaily (gateway/migrations/0015_spend_user_month.py), in the transaction
    of whatever writes the daily rows (the fold, a rebuild), so it always equals their sum."""

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "day", "department", "user", "consumer_group_id"],
                name="spend_user_month_key",
                nulls_distinct=False,
            )
        ]

    def __str__(self):
        return f"{self.day:%Y-%m} {self.user}: {self.cost}"


class SpendDelta(UserFigures):
    """Sums not folded into the daily rows yet: one row per event-writing statement and key,
    the keys of both rollups in one row (one row written per statement, not one per rollup)."""

    provider = models.CharField(max_length=20)
    model = models.CharField(max_length=200, help_text="the model requested")

    class Meta:
        indexes = [models.Index(fields=["organization", "day"], name="spend_delta_org_day")]

    def __str__(self):
        return f"delta {self.day} {self.provider} {self.model} {self.user}: {self.cost}"


class PromptMonth(models.Model):
    """One prompt fingerprint's successful requests in a department and calendar month (the
    organization's), and the first of them (by time, then id): what repeat detection needs,
    kept by the events' triggers. One row per distinct prompt and month."""

    organization = _organization()
    department = _department()
    month = models.DateField(help_text="first day of the organization's calendar month")
    fingerprint = models.CharField(max_length=64)
    requests = models.BigIntegerField(default=0)
    cost = AmountField(default=ZERO)
    first_at = models.DateTimeField()
    first_id = models.BigIntegerField()
    first_cost = AmountField(default=ZERO)
    # The first's id before the row's last upsert (its trigger compares the two to move the
    # `firsts` count from one event to the other when an earlier event arrives late).
    prev_first_id = models.BigIntegerField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "department", "month", "fingerprint"],
                name="prompt_month_key",
                nulls_distinct=False,
            )
        ]
        # The department page's most repeated prompts: only the repeated ones are indexed.
        indexes = [
            models.Index(
                fields=["organization", "department", "month", "-requests"],
                name="prompt_month_repeated",
                condition=models.Q(requests__gt=1),
            )
        ]

    def __str__(self):
        return f"{self.month:%Y-%m} {self.fingerprint}: {self.requests}"
