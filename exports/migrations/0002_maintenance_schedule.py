"""Install the every-minute maintenance task (recover dead workers' jobs, expire files).

Idempotent: keyed by name, so re-running migrations or several clusters never duplicate it.
"""

from django.db import migrations

NAME = "dossier.exports.maintenance"


def install(apps, schema_editor):
    from config.periodic import install_periodic_tasks

    install_periodic_tasks(apps.get_model("django_q", "Schedule"), names=(NAME,))


def uninstall(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.filter(name=NAME).delete()


class Migration(migrations.Migration):
    dependencies = [("exports", "0001_initial"), ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more")]

    operations = [migrations.RunPython(install, uninstall)]
