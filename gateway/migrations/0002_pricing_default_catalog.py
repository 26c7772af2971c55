"""Every fresh database starts with the shipped catalog (gateway/data/prices.yaml).

This runs once. Later catalog changes are loaded with `python manage.py load_prices`
(docs/pricing.md); the loader is idempotent, so running it after this migration changes nothing.
"""

from django.db import migrations


def load_default_catalog(apps, schema_editor):
    from gateway.catalog import catalog_load

    catalog_load(price_model=apps.get_model("gateway", "Price"))


class Migration(migrations.Migration):
    dependencies = [("gateway", "0001_initial")]
    operations = [migrations.RunPython(load_default_catalog, migrations.RunPython.noop)]
