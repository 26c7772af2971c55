from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ('wallets', '0003_budgets_alert_fields'),
    ]

    # Budget, BudgetAlert and WalletAlert now belong to the budgets app (budgets/0001 takes them
    # over). Only Django's idea of them moves here; their tables stay, renamed by budgets/0002.
    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[],
            state_operations=[
        migrations.RemoveField(
            model_name='budgetalert',
            name='budget',
        ),
        migrations.RemoveField(
            model_name='budgetalert',
            name='organization',
        ),
        migrations.RemoveField(
            model_name='walletalert',
            name='funding_entry',
        ),
        migrations.RemoveField(
            model_name='walletalert',
            name='organization',
        ),
        migrations.RemoveField(
            model_name='walletalert',
            name='wallet',
        ),
        migrations.DeleteModel(
            name='Budget',
        ),
        migrations.DeleteModel(
            name='BudgetAlert',
        ),
        migrations.DeleteModel(
            name='WalletAlert',
        ),
                ],
        ),
    ]
