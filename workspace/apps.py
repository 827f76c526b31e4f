from __future__ import annotations

from django.apps import AppConfig
from django.contrib.admin import apps as admin_apps  # the module: its AdminConfig must not look like ours


class WorkspaceConfig(AppConfig):
    """The members' landing page: what runs, what failed, what goes out next."""

    default = True
    name = "workspace"
    verbose_name = "Workspace"


class DossierAdminConfig(admin_apps.AdminConfig):
    """Django's admin with Dossier's site: the workspace as its index."""

    default = False
    default_site = "workspace.sites.DossierAdminSite"
