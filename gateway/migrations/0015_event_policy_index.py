"""Events a routing policy changed, by department and time: the department page's policy table
without reading the department's month of events. Partial (few events carry a policy), built
concurrently (a year of events is millions of rows)."""

import importlib

from django.db import migrations, models

FUNDING = importlib.import_module("wallets.migrations.0005_ledger_funding_indexes")


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("gateway", "0014_spend_user_month"),
        ("wallets", "0005_ledger_funding_indexes"),
    ]

    operations = [
        FUNDING.AddIndexConcurrentlyOnPostgreSQL(
            model_name="usageevent",
            index=models.Index(
                condition=models.Q(("policy", ""), _negated=True),
                fields=["organization", "department", "created_at"],
                name="event_policy_time",
            ),
        ),
    ]
