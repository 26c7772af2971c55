"""Daily spend rollups: usage events summed per organization, department, day (the
organization's calendar), provider and model, so month figures do not sum a month of raw events.

Maintained by the database, in the transaction that writes the events: statement triggers on
the events table append the statement's sums (signed: an update or delete takes the old rows
back) to SpendDelta, which takes no lock a concurrent request could wait on; a job folds the
deltas into SpendDaily every minute. Readers add both (gateway/rollups.py), so a figure is exact
whatever the fold's lag. SQL: gateway/migrations/0006_spend_rollups.py.
"""

from django.db import models

from chargeback.models import Department, Organization
from chargeback.money import ZERO, AmountField


class SpendFigures(models.Model):
    # Indexed by the keys below, which lead with it.
    organization = models.ForeignKey(
        Organization,
        on_delete=models.CASCADE,
        related_name="+",
        db_constraint=False,
        db_index=False,
    )
    department = models.ForeignKey(
        Department,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="+",
        db_constraint=False,
        db_index=False,
    )
    day = models.DateField(help_text="the organization's calendar day (its time zone)")
    provider = models.CharField(max_length=20)
    model = models.CharField(max_length=200, help_text="the model requested")
    requests = models.BigIntegerField(default=0)
    cost = AmountField(default=ZERO)
    prompt_tokens = models.BigIntegerField(default=0)
    completion_tokens = models.BigIntegerField(default=0)
    cache_hits = models.BigIntegerField(default=0)
    cache_saved = AmountField(default=ZERO, help_text="saved - cost of the cache hits")

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


class SpendDelta(SpendFigures):
    """Sums not folded into SpendDaily yet (one row per event-writing statement and key)."""

    class Meta:
        indexes = [models.Index(fields=["organization", "day"], name="spend_delta_org_day")]

    def __str__(self):
        return f"delta {self.day} {self.provider} {self.model}: {self.cost}"
