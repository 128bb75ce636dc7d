"""Install the curated spider patterns of trackable/fixtures/trackable_spiders.json (existing rows are kept)."""
import json
from pathlib import Path

from django.db import migrations

FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "trackable_spiders.json"


def add_patterns(apps, schema_editor):
    Spider = apps.get_model("trackable", "Spider")
    db = schema_editor.connection.alias
    existing = set(Spider.objects.using(db).values_list("pattern", flat=True))
    rows = [entry["fields"] for entry in json.loads(FIXTURE.read_text(encoding="utf-8"))]
    Spider.objects.using(db).bulk_create(
        [Spider(pattern=r["pattern"], description=r["description"], is_active=r["is_active"]) for r in rows if r["pattern"] not in existing]
    )


def remove_patterns(apps, schema_editor):
    Spider = apps.get_model("trackable", "Spider")
    rows = [entry["fields"]["pattern"] for entry in json.loads(FIXTURE.read_text(encoding="utf-8"))]
    Spider.objects.using(schema_editor.connection.alias).filter(pattern__in=rows).delete()


class Migration(migrations.Migration):
    dependencies = [("trackable", "0001_initial")]

    operations = [migrations.RunPython(add_patterns, remove_patterns)]
