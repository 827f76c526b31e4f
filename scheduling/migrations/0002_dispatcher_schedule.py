"""Install the every-minute scheduling tick (dispatch, delivery retries, recovery).

Idempotent: keyed by name. Several clusters may run it at once: the dispatcher is safe.
"""

from django.db import migrations

NAME = "dossier.scheduling.tick"


def install(apps, schema_editor):
    from config.periodic import install_periodic_tasks

    install_periodic_tasks(apps.get_model("django_q", "Schedule"), names=(NAME,))


def uninstall(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.filter(name=NAME).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("scheduling", "0001_initial"),
        ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more"),
    ]

    operations = [migrations.RunPython(install, uninstall)]
