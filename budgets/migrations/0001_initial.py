import chargeback.money
import django.db.models.deletion
import django.utils.timezone
from decimal import Decimal
from django.db import migrations, models


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        ('chargeback', '0004_organization_rate_limits_unavailable'),
        ('wallets', '0004_budgets_move_to_their_app'),
    ]

    # The models come from the wallets app with their tables (wallets_budget, ...): state only,
    # nothing is created; budgets/0002 renames the tables.
    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[],
            state_operations=[
        migrations.CreateModel(
            name='Budget',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('amount', chargeback.money.AmountField(decimal_places=8, max_digits=20)),
                ('currency', models.CharField(default='USD', max_length=3)),
                ('period', models.CharField(choices=[('month', 'Month'), ('quarter', 'Quarter')], default='month', max_length=10)),
                ('thresholds', models.JSONField(default=list)),
                ('owner_emails', models.JSONField(blank=True, default=list)),
                ('created_at', models.DateTimeField(default=django.utils.timezone.now)),
                ('updated_at', models.DateTimeField(auto_now=True)),
                ('department', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='budgets', to='chargeback.department')),
                ('organization', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='budgets', to='chargeback.organization')),
            ],
            options={
                'db_table': 'wallets_budget',
            },
        ),
        migrations.CreateModel(
            name='BudgetAlert',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('period_start', models.DateField()),
                ('kind', models.CharField(choices=[('threshold', 'Threshold'), ('forecast', 'Forecast')], max_length=20)),
                ('threshold', models.PositiveIntegerField(default=0)),
                ('spend', chargeback.money.AmountField(decimal_places=8, default=Decimal('0'), max_digits=20)),
                ('forecast', chargeback.money.AmountField(blank=True, decimal_places=8, help_text='period-end projection (forecast)', max_digits=20, null=True)),
                ('status', models.CharField(choices=[('pending', 'Pending'), ('sent', 'Sent'), ('failed', 'Failed')], default='pending', max_length=20)),
                ('attempts', models.PositiveIntegerField(default=0)),
                ('error', models.TextField(blank=True)),
                ('created_at', models.DateTimeField(default=django.utils.timezone.now)),
                ('sent_at', models.DateTimeField(blank=True, null=True)),
                ('budget', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='alerts', to='budgets.budget')),
                ('organization', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='budget_alerts', to='chargeback.organization')),
            ],
            options={
                'db_table': 'wallets_budgetalert',
            },
        ),
        migrations.CreateModel(
            name='WalletAlert',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('state', models.CharField(choices=[('healthy', 'Healthy'), ('low', 'Low'), ('depleted', 'Depleted')], max_length=20)),
                ('available', chargeback.money.AmountField(decimal_places=8, default=Decimal('0'), max_digits=20)),
                ('status', models.CharField(choices=[('pending', 'Pending'), ('sent', 'Sent'), ('failed', 'Failed')], default='pending', max_length=20)),
                ('attempts', models.PositiveIntegerField(default=0)),
                ('error', models.TextField(blank=True)),
                ('created_at', models.DateTimeField(default=django.utils.timezone.now)),
                ('sent_at', models.DateTimeField(blank=True, null=True)),
                ('funding_entry', models.ForeignKey(blank=True, help_text='the allocation (or credit) whose funds ran low', null=True, on_delete=django.db.models.deletion.CASCADE, related_name='+', to='wallets.ledgerentry')),
                ('organization', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='wallet_alerts', to='chargeback.organization')),
                ('wallet', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='alerts', to='wallets.wallet')),
            ],
            options={
                'db_table': 'wallets_walletalert',
            },
        ),
        migrations.AddConstraint(
            model_name='budget',
            constraint=models.UniqueConstraint(fields=('department', 'period'), name='one_budget_per_department_period'),
        ),
        migrations.AddConstraint(
            model_name='budgetalert',
            constraint=models.UniqueConstraint(fields=('budget', 'period_start', 'kind', 'threshold'), name='budget_alert_once'),
        ),
        migrations.AddConstraint(
            model_name='walletalert',
            constraint=models.UniqueConstraint(fields=('wallet', 'funding_entry', 'state'), name='wallet_alert_once'),
        ),
                ],
        ),
    ]
