"""Indexes that earn their size (issue 18; bench/index_cost.py, docs/performance.md): the holds'
request id is unique by one index (a constraint) instead of two (`unique=True` added a `_like`
copy no query uses); the ledger's wallet_id index goes (ledger_wallet_time starts with it), its
organization_id and created_at indexes become one ledger_org_time, ledger_wallet_time is
ascending (newest first is a backward scan; descending, every insert split a page in half), and
transfer_id is indexed only where set (it is blank on every capture)."""

import django.db.models.deletion
import django.utils.timezone
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("chargeback", "0007_organization_allocation_policy"),
        ("wallets", "0007_hold_department"),
    ]

    operations = [
        # The new indexes first, then the ones they replace.
        migrations.AddConstraint(
            model_name="hold",
            constraint=models.UniqueConstraint(
                fields=("request_id",), name="hold_request_id_unique"
            ),
        ),
        migrations.AddIndex(
            model_name="ledgerentry",
            index=models.Index(fields=["organization", "created_at"], name="ledger_org_time"),
        ),
        migrations.AddIndex(
            model_name="ledgerentry",
            index=models.Index(
                condition=models.Q(("transfer_id", ""), _negated=True),
                fields=["transfer_id"],
                name="ledger_transfer",
            ),
        ),
        migrations.RemoveIndex(model_name="ledgerentry", name="ledger_wallet_time"),
        migrations.AddIndex(
            model_name="ledgerentry",
            index=models.Index(fields=["wallet", "created_at"], name="ledger_wallet_time"),
        ),
        migrations.AlterField(
            model_name="hold",
            name="request_id",
            field=models.CharField(max_length=100),
        ),
        migrations.AlterField(
            model_name="ledgerentry",
            name="created_at",
            field=models.DateTimeField(default=django.utils.timezone.now),
        ),
        migrations.AlterField(
            model_name="ledgerentry",
            name="organization",
            field=models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="ledger_entries",
                to="chargeback.organization",
            ),
        ),
        migrations.AlterField(
            model_name="ledgerentry",
            name="transfer_id",
            field=models.CharField(blank=True, max_length=40),
        ),
        migrations.AlterField(
            model_name="ledgerentry",
            name="wallet",
            field=models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="entries",
                to="wallets.wallet",
            ),
        ),
    ]
