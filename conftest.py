"""Fixtures shared by every test: files and mail go to the test's own temporary folder."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.db import connection


@pytest.fixture(autouse=True)
def _isolated_files(settings: Any, tmp_path: Path) -> None:
    """Point media, the exports storage and the file mail backend at ``tmp_path``."""
    settings.MEDIA_ROOT = str(tmp_path / "media")
    storages = {**settings.STORAGES}
    exports = {**storages["exports"]}
    if exports["BACKEND"].endswith("FileSystemStorage"):
        exports["OPTIONS"] = {**exports.get("OPTIONS", {}), "location": str(tmp_path / "media" / "exports")}
    storages["exports"] = exports
    settings.STORAGES = storages
    settings.EMAIL_FILE_PATH = str(tmp_path / "mail")


def pytest_collection_modifyitems(config: Any, items: list[Any]) -> None:
    postgres = settings.DATABASES["default"]["ENGINE"].endswith("postgresql")
    chromium = shutil.which("chromium") is not None
    for item in items:
        if "postgres" in item.keywords and not postgres:
            item.add_marker(pytest.mark.skip(reason="needs DATABASE_URL=postgres://…"))
        if "browser" in item.keywords and not chromium:
            item.add_marker(pytest.mark.skip(reason="needs Debian's chromium (make browser)"))


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup: Any, django_db_blocker: Any) -> Any:
    """After the run, end sessions left on the PostgreSQL test database (subprocess workers,
    threads) so that it can be dropped instead of piling up on the server."""
    yield
    if connection.vendor == "postgresql":
        with django_db_blocker.unblock(), connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )


@pytest.fixture
def is_postgres() -> bool:
    return connection.vendor == "postgresql"
