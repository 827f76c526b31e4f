"""The stamp-clearing trigger and the waiting parties' index on SQLite too (0003 made them
on PostgreSQL): exports on SQLite now read the pseudonyms made ahead as well.

SQLite has no ``BEFORE`` trigger that can change the row being written: an ``AFTER
UPDATE`` trigger clears the stamp of a row whose role or identifying field changed, in the
same statement, whatever wrote it (the ORM's ``save``, which writes the old stamp back with
the new name, a bulk ``update``, SQL). Django rebuilds a SQLite table to alter it, which
drops its triggers and this index: a later migration that alters ``cases_party`` must make
them again (``exports.tests.test_party_pseudonyms`` fails on SQLite if it does not).
"""

from django.db import migrations

IDENTITY = ("role", "full_name", "email", "phone", "employee_id")
CLEAR_STAMP = f"""
CREATE TRIGGER cases_party_pseudonyms_clear AFTER UPDATE OF {", ".join(IDENTITY)} ON cases_party
FOR EACH ROW WHEN {" OR ".join(f"OLD.{field} IS NOT NEW.{field}" for field in IDENTITY)}
BEGIN
    UPDATE cases_party SET pseudonym_stamp = '' WHERE id = NEW.id;
END
"""
STALE_INDEX = "CREATE INDEX party_pseudonyms_stale_idx ON cases_party (organization_id) WHERE pseudonym_stamp = ''"


def trigger_create(apps, schema_editor):  # type: ignore[no-untyped-def]
    if schema_editor.connection.vendor == "sqlite":
        schema_editor.execute(CLEAR_STAMP)
        schema_editor.execute(STALE_INDEX)


def trigger_drop(apps, schema_editor):  # type: ignore[no-untyped-def]
    if schema_editor.connection.vendor == "sqlite":
        schema_editor.execute("DROP INDEX IF EXISTS party_pseudonyms_stale_idx")
        schema_editor.execute("DROP TRIGGER IF EXISTS cases_party_pseudonyms_clear")


class Migration(migrations.Migration):
    dependencies = [
        ("cases", "0003_party_pseudonyms"),
    ]

    operations = [migrations.RunPython(trigger_create, trigger_drop)]
