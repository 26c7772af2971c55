from django.db import migrations

MOVED = ["budget", "budgetalert", "walletalert"]


def content_types_follow(apps, schema_editor):
    """The models' content types (which the admin's history, the roles' permissions and audit
    links point at) move with them, so nothing that refers to them is lost or duplicated."""
    content_type = apps.get_model("contenttypes", "ContentType")
    content_type.objects.filter(app_label="wallets", model__in=MOVED).update(app_label="budgets")


def content_types_go_back(apps, schema_editor):
    content_type = apps.get_model("contenttypes", "ContentType")
    content_type.objects.filter(app_label="budgets", model__in=MOVED).update(app_label="wallets")


class Migration(migrations.Migration):
    dependencies = [
        ("budgets", "0001_initial"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    # The tables move to the budgets app's names: wallets_budget -> budgets_budget, ...
    operations = [
        migrations.AlterModelTable(name="budget", table=None),
        migrations.AlterModelTable(name="budgetalert", table=None),
        migrations.AlterModelTable(name="walletalert", table=None),
        migrations.RunPython(content_types_follow, content_types_go_back),
    ]
