"""The finished file reaches a local export storage moved into place, not copied byte by
byte (an S3 storage reads it: ``tests/test_s3_storage.py``)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from exports import services
from exports.services import export_job_create, export_job_run, exports_storage
from exports.tests.factories import org_with_cases

pytestmark = pytest.mark.django_db


@pytest.fixture
def folders(settings, tmp_path):
    settings.EXPORTS_TMP_DIR = str(tmp_path / "tmp")
    Path(settings.EXPORTS_TMP_DIR).mkdir()
    settings.STORAGES = {
        **settings.STORAGES,
        "exports": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(tmp_path / "exports"), "base_url": None},
        },
    }
    return tmp_path


def test_a_local_storage_gets_the_finished_file_moved_in_with_the_usual_permissions(folders, monkeypatch):
    org, _ = org_with_cases()
    job = export_job_create(organization=org, dataset="cases", format="csv", enqueue_run=False)
    written: dict[str, int] = {}
    hash_file = services._hash_file

    def hashed(path):  # the temporary file, as it was when the export finished writing it
        written["inode"] = os.stat(path).st_ino
        return hash_file(path)

    monkeypatch.setattr(services, "_hash_file", hashed)
    done = export_job_run(job_id=str(job.pk))

    assert done is not None and done.status == "completed"
    stored = Path(exports_storage().path(done.storage_key))
    assert stored.stat().st_ino == written["inode"]  # moved, not copied
    assert stored.stat().st_mode & 0o777 == 0o644  # FILE_UPLOAD_PERMISSIONS, not the temp file's 0o600
    assert hashlib.sha256(stored.read_bytes()).hexdigest() == done.sha256
    assert stored.read_bytes().count(b"\r\n") == done.row_count + 1
    assert list((folders / "tmp").iterdir()) == []
